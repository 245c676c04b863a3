/**
 * CloudWatch Logs: every call kiln makes to it. The environment's log group (created by promote,
 * with its retention; deleted by destroy unless kept) and reading what instances shipped to it.
 */
import {
  CreateLogGroupCommand,
  DeleteLogGroupCommand,
  DescribeLogGroupsCommand,
  PutRetentionPolicyCommand,
} from "@aws-sdk/client-cloudwatch-logs";
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
