/**
 * CloudWatch Logs limits moto does not check (moto 5.2: any retention number, any group name up
 * to 512 characters, PutLogEvents batches of any size, count and time span). Real AWS refuses
 * them with InvalidParameterException (400), which kiln's promote (CreateLogGroup,
 * PutRetentionPolicy) and the guest's shipper (PutLogEvents) must never meet. What moto does
 * check is left to it: events out of chronological order, events older than 14 days or more
 * than 2 hours ahead (rejectedLogEventsInfo). Events older than a group's retention
 * (expiredLogEventEndIndex) are not modelled here.
 *
 * AWS documentation (CloudWatch Logs API Reference):
 * - "PutRetentionPolicy": retentionInDays "Valid Values: 1 | 3 | 5 | 7 | 14 | 30 | 60 | 90 | 120 |
 *   150 | 180 | 365 | 400 | 545 | 731 | 1096 | 1827 | 2192 | 2557 | 2922 | 3288 | 3653"
 *   (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutRetentionPolicy.html);
 * - "CreateLogGroup": logGroupName "Length Constraints: Minimum length of 1. Maximum length of
 *   512. Pattern: [\.\-_/#A-Za-z0-9]+" (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_CreateLogGroup.html);
 * - "PutLogEvents": "The maximum batch size is 1,048,576 bytes. This size is calculated as the sum
 *   of all event messages in UTF-8, plus 26 bytes for each log event"; "A batch of log events in
 *   a single request cannot span more than 24 hours. Otherwise, the operation fails"; "The
 *   maximum number of log events in a batch is 10,000"; logEvents "Array Members: Minimum number
 *   of 1 item" (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html).
 */
import type { StrictRule } from "../layer.js";
import { type AwsRequest, awsError } from "../protocol.js";

/** As the API reference lists them (kept apart from kiln's own list on purpose: this is the oracle). */
const RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];
const GROUP_NAME = /^[.\-_/#A-Za-z0-9]{1,512}$/;
const MAX_BATCH_BYTES = 1_048_576;
const EVENT_OVERHEAD_BYTES = 26;
const MAX_EVENTS = 10_000;
const MAX_SPAN_MS = 24 * 3600 * 1000;

const isLogs = (request: AwsRequest, action: string) => request.service === "logs" && request.action === action;
const invalid = (request: AwsRequest, message: string) => awsError(request, 400, "InvalidParameterException", message);

export const logsRetentionRule: StrictRule = {
  name: "logs-retention",
  source:
    "PutRetentionPolicy, CloudWatch Logs API Reference: https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutRetentionPolicy.html",
  before(request) {
    if (!isLogs(request, "PutRetentionPolicy")) return undefined;
    const days = request.json?.retentionInDays;
    if (typeof days === "number" && RETENTION_DAYS.includes(days)) return undefined;
    return invalid(
      request,
      `1 validation error detected: Value '${String(days)}' at 'retentionInDays' failed to satisfy constraint: ` +
        `Member must satisfy enum value set: [${RETENTION_DAYS.join(", ")}]`,
    );
  },
};

export const logsGroupNameRule: StrictRule = {
  name: "logs-group-name",
  source:
    "CreateLogGroup, CloudWatch Logs API Reference: https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_CreateLogGroup.html",
  before(request) {
    if (!isLogs(request, "CreateLogGroup")) return undefined;
    const name = request.json?.logGroupName;
    if (typeof name === "string" && GROUP_NAME.test(name)) return undefined;
    return invalid(
      request,
      `1 validation error detected: Value '${String(name)}' at 'logGroupName' failed to satisfy constraint: ` +
        "Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+ and have length between 1 and 512",
    );
  },
};

export const logsPutEventsRule: StrictRule = {
  name: "logs-put-events",
  source:
    "PutLogEvents, CloudWatch Logs API Reference: https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html",
  before(request) {
    if (!isLogs(request, "PutLogEvents")) return undefined;
    const events = request.json?.logEvents;
    if (!Array.isArray(events) || events.length === 0)
      return invalid(
        request,
        "1 validation error detected: Value at 'logEvents' failed to satisfy constraint: Member must have length greater than or equal to 1",
      );
    if (events.length > MAX_EVENTS)
      return invalid(
        request,
        `1 validation error detected: Value at 'logEvents' failed to satisfy constraint: Member must have length less than or equal to ${MAX_EVENTS}`,
      );
    const list = events as { timestamp?: unknown; message?: unknown }[];
    const bytes = list.reduce((n, e) => n + Buffer.byteLength(String(e.message ?? ""), "utf8") + EVENT_OVERHEAD_BYTES, 0);
    if (bytes > MAX_BATCH_BYTES) return invalid(request, `Upload too large: ${bytes} bytes exceeds limit of ${MAX_BATCH_BYTES}`);
    const times = list.map((e) => Number(e.timestamp)).filter((t) => Number.isFinite(t));
    if (times.length && Math.max(...times) - Math.min(...times) > MAX_SPAN_MS)
      return invalid(request, "The batch of log events in a single PutLogEvents request cannot span more than 24 hours.");
    return undefined;
  },
};
