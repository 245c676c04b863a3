/**
 * FilterLogEvents always interleaves the streams of a group in time order on AWS, whatever the
 * request says; moto interleaves only when the request sets the deprecated `interleaved` flag,
 * and otherwise answers stream after stream. The rule asks moto for AWS's behaviour, so a reader
 * that relies on time order across streams and pages is tested against the order AWS gives.
 *
 * AWS: "FilterLogEvents", Amazon CloudWatch Logs API Reference, Request Parameters, interleaved:
 * "This parameter has been deprecated. Starting on June 17, 2019, this parameter is ignored and
 * the value is assumed to be true. The response from this operation always interleaves events
 * from multiple log streams within a log group."
 * (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_FilterLogEvents.html).
 */
import type { StrictRule } from "../layer.js";

export const logsInterleavedRule: StrictRule = {
  name: "logs-interleaved",
  source:
    "FilterLogEvents, Amazon CloudWatch Logs API Reference: https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_FilterLogEvents.html",
  around(request, ctx, next) {
    if (request.service !== "logs" || request.action !== "FilterLogEvents" || !request.json) return next();
    const body = Buffer.from(JSON.stringify({ ...request.json, interleaved: true }));
    return ctx.forward({ ...request, body, headers: { ...request.headers, "content-length": String(body.length) } });
  },
};
