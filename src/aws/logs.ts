/**
 * CloudWatch Logs: every call kiln makes to it. The environment's log group (created by promote,
 * with its retention; deleted by destroy unless kept) and reading what instances shipped to it.
 */
import {
  CreateLogGroupCommand,
  DeleteLogGroupCommand,
  DescribeLogGroupsCommand,
  FilterLogEventsCommand,
  PutRetentionPolicyCommand,
} from "@aws-sdk/client-cloudwatch-logs";
import { NotFoundError } from "../errors.js";
import type { AwsClients } from "./clients.js";
import { awsDelete, awsService, translateAwsError } from "./errors.js";

const aws = awsService("logs");

// ---- environment log groups (promote/destroy)

/** What kiln reconciles of a log group: its retention (undefined: kept forever); and its ARN (it names the account). */
export interface LogGroupFacts {
  readonly retentionDays: number | undefined;
  readonly arn: string | undefined;
}

/**
 * Creates the group with the environment's tags (an existing one is left as it is: tags are set
 * once, at creation) and sets its retention. Safe to run again after an interruption.
 */
export async function ensureLogGroup(
  clients: AwsClients,
  name: string,
  retentionDays: number,
  tags: Readonly<Record<string, string>>,
): Promise<void> {
  await clients.logs.send(new CreateLogGroupCommand({ logGroupName: name, tags: { ...tags } })).catch((e: { name?: string }) => {
    // Already there: a re-run, or a group kept by `destroy --keep-logs` that the environment takes back.
    if (e.name === "ResourceAlreadyExistsException") return;
    throw translateAwsError(e, "CreateLogGroup", name, "logs");
  });
  await setLogRetention(clients, name, retentionDays);
}

export async function setLogRetention(clients: AwsClients, name: string, retentionDays: number): Promise<void> {
  await aws("PutRetentionPolicy", name, () =>
    clients.logs.send(new PutRetentionPolicyCommand({ logGroupName: name, retentionInDays: retentionDays })),
  );
}

/** The group's facts, or undefined when there is no group of exactly that name. */
export async function describeLogGroup(clients: AwsClients, name: string): Promise<LogGroupFacts | undefined> {
  // The prefix matches longer names too (/kiln/app/prod-eu for /kiln/app/prod): keep the exact one.
  let nextToken: string | undefined;
  do {
    const page = await aws("DescribeLogGroups", name, () =>
      clients.logs.send(new DescribeLogGroupsCommand({ logGroupNamePrefix: name, ...(nextToken ? { nextToken } : {}) })),
    );
    const group = page.logGroups?.find((g) => g.logGroupName === name);
    if (group) return { retentionDays: group.retentionInDays, arn: group.arn };
    nextToken = page.nextToken;
  } while (nextToken);
  return undefined;
}

/** Deletes the group and every stream in it; a group already gone is fine (a re-run of destroy). */
export async function deleteLogGroup(clients: AwsClients, name: string): Promise<"deleted" | "already-gone"> {
  return awsDelete(
    "DeleteLogGroup",
    name,
    () => clients.logs.send(new DeleteLogGroupCommand({ logGroupName: name })),
    (code) => code === "ResourceNotFoundException",
    "logs",
  );
}

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
    const out = await aws("FilterLogEvents", `log group ${options.group}`, async () => {
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
