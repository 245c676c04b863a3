/**
 * The environment's CloudWatch Logs group, /kiln/<app>/<env>: its instances ship their lines
 * there (one stream per instance). Promote creates it with the environment's retention and
 * observes a retention changed since as drift; destroy deletes it unless asked to keep it.
 * With `logs: { cloudwatch: false }` promote creates none (a group left from before stays until destroy).
 */
import { deleteLogGroup, describeLogGroup, ensureLogGroup } from "../../aws/logs.js";
import type { AwsClients } from "../../aws/clients.js";
import type { AwsEnvironment } from "../../config/environments.js";
import { logGroupName } from "./names.js";

/**
 * The group as observe() reports it: its name when it exists (destroy deletes or keeps it), and
 * what differs from the environment's logs: settings, in words for the plan (drift is only
 * looked for once the environment's other shared resources exist: `infrastructure`).
 */
export async function observeLogGroup(
  clients: AwsClients,
  env: AwsEnvironment,
  infrastructure: boolean,
): Promise<{ logGroup?: string; drift: string[] }> {
  const name = logGroupName(env.app, env.name);
  const group = await describeLogGroup(clients, name);
  const found = group ? { logGroup: name } : {};
  if (!env.logs.cloudwatch || !infrastructure) return { ...found, drift: [] };
  if (!group) return { drift: [`there is no log group ${name}`] };
  if (group.retentionDays === env.logs.retentionDays) return { ...found, drift: [] };
  const now = group.retentionDays === undefined ? "forever" : `${group.retentionDays} days`;
  return { ...found, drift: [`log group ${name} keeps logs ${now}, the environment asks for ${env.logs.retentionDays} days`] };
}

/** Creates the group (tagged like the environment's other resources) and sets its retention. */
export async function ensureEnvironmentLogGroup(clients: AwsClients, env: AwsEnvironment): Promise<void> {
  if (!env.logs.cloudwatch) return;
  await ensureLogGroup(clients, logGroupName(env.app, env.name), env.logs.retentionDays, { "kiln:app": env.app, "kiln:env": env.name });
}

/** Deletes the group and its streams; nothing to do when it is already gone. */
export async function deleteEnvironmentLogGroup(clients: AwsClients, env: AwsEnvironment): Promise<void> {
  await deleteLogGroup(clients, logGroupName(env.app, env.name));
}
