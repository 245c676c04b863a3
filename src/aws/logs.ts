/** CloudWatch Logs: every call kiln makes to it. */
import { FilterLogEventsCommand } from "@aws-sdk/client-cloudwatch-logs";
import { NotFoundError } from "../errors.js";
import type { AwsClients } from "./clients.js";
import { awsService } from "./errors.js";

const logsCall = awsService("logs");

// ---- reading an environment's logs (kiln logs --env)

/** One event as FilterLogEvents returns it; `stream` is the instance id. */
export interface ReadLogEvent {
  readonly time: number;
  readonly stream: string;
  readonly id: string;
  readonly message: string;
}

export interface ReadLogOptions {
  readonly group: string;
  /** Only these streams (--release: its instances); undefined reads every stream. */
  readonly streams?: readonly string[];
  /** Epoch milliseconds: events at or after it. */
  readonly startTime: number;
  /** Events per page (tests make it small to page); CloudWatch's own default otherwise. */
  readonly pageSize?: number;
  readonly signal?: AbortSignal;
  /** What to say when the group does not exist (why it may be missing, what to do). */
  readonly missingHint?: string;
}

/** FilterLogEvents takes at most 100 stream names; a longer list is read whole and narrowed here. */
const MAX_STREAM_NAMES = 100;

/**
 * The group's events from `startTime` on, page by page (FilterLogEvents interleaves the streams
 * in time order; nextToken goes to the next page). `last` marks the final page of this read.
 */
export async function* readLogEvents(
  clients: AwsClients,
  options: ReadLogOptions,
): AsyncGenerator<{ events: ReadLogEvent[]; last: boolean }> {
  const wanted = options.streams ? new Set(options.streams) : undefined;
  if (wanted?.size === 0) {
    yield { events: [], last: true };
    return;
  }
  const names = wanted && wanted.size <= MAX_STREAM_NAMES ? [...wanted] : undefined;
  let token: string | undefined;
  do {
    const out = await logsCall("FilterLogEvents", `log group ${options.group}`, async () => {
      try {
        return await clients.logs.send(
          new FilterLogEventsCommand({
            logGroupName: options.group,
            startTime: Math.max(0, Math.floor(options.startTime)),
            ...(names ? { logStreamNames: names } : {}),
            ...(options.pageSize ? { limit: options.pageSize } : {}),
            ...(token ? { nextToken: token } : {}),
          }),
          options.signal ? { abortSignal: options.signal } : {},
        );
      } catch (error) {
        if ((error as { name?: string }).name === "ResourceNotFoundException")
          throw new NotFoundError(`no log group ${options.group}`, {
            ...(options.missingHint ? { hint: options.missingHint } : {}),
            cause: error,
          });
        throw error;
      }
    });
    token = out.nextToken || undefined;
    const events = (out.events ?? [])
      .map((e) => ({ time: e.timestamp ?? 0, stream: e.logStreamName ?? "", id: e.eventId ?? "", message: e.message ?? "" }))
      .filter((e) => !wanted || wanted.has(e.stream));
    yield { events, last: token === undefined };
  } while (token);
}
