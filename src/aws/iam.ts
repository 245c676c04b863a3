/**
 * IAM: the instance role of an environment, created when its instances need one (boot-time
 * ssm:/kms: secrets, shipping logs to CloudWatch Logs), with exactly the permissions those need.
 */
import {
  AddRoleToInstanceProfileCommand,
  CreateInstanceProfileCommand,
  CreateRoleCommand,
  DeleteInstanceProfileCommand,
  DeleteRoleCommand,
  DeleteRolePolicyCommand,
  GetInstanceProfileCommand,
  PutRolePolicyCommand,
  RemoveRoleFromInstanceProfileCommand,
} from "@aws-sdk/client-iam";
import type { AwsClients } from "./clients.js";
import { awsDelete, awsService, translateAwsError } from "./errors.js";

const aws = awsService("iam");

const ASSUME_EC2 = JSON.stringify({
  Version: "2012-10-17",
  Statement: [{ Effect: "Allow", Principal: { Service: "ec2.amazonaws.com" }, Action: "sts:AssumeRole" }],
});
/** The role's one inline policy: what the instances' secrets and log shipping need. */
const POLICY_NAME = "kiln-instance";
/** Its name before the role also carried the log permissions: removed from roles that still have it. */
const LEGACY_POLICY_NAME = "kiln-secrets";

/** The statements a set of secret references (`ssm:NAME`, `kms:CIPHERTEXT`) needs; none without any. Pure. */
export function secretsStatements(refs: readonly string[], region: string): Record<string, unknown>[] {
  const parameters = [...new Set(refs.filter((r) => r.startsWith("ssm:")).map((r) => r.slice(4)))].sort();
  const statements: Record<string, unknown>[] = [];
  if (parameters.length) {
    statements.push({
      Effect: "Allow",
      Action: "ssm:GetParameter",
      Resource: parameters.map((p) => (p.startsWith("arn:") ? p : `arn:aws:ssm:${region}:*:parameter${p.startsWith("/") ? p : `/${p}`}`)),
    });
    // SecureStrings under a customer managed key: decrypt only on SSM's behalf.
    statements.push({
      Effect: "Allow",
      Action: "kms:Decrypt",
      Resource: "*",
      Condition: { StringEquals: { "kms:ViaService": `ssm.${region}.amazonaws.com` } },
    });
  }
  // A kms: ciphertext names its key inside the blob, which kiln cannot read offline.
  if (refs.some((r) => r.startsWith("kms:"))) statements.push({ Effect: "Allow", Action: "kms:Decrypt", Resource: "*" });
  return statements;
}

/**
 * What an instance's log shipper needs on its environment's group, and nothing else: a stream
 * per instance and the lines into it. The ARN ends in `:*`, the form CloudWatch Logs checks
 * stream-level actions against (the group's ARN followed by `:log-stream:NAME`). `account`: the
 * account's id when kiln knows it, else `*`. Pure.
 */
export function logShippingStatement(group: string, region: string, account: string): Record<string, unknown> {
  return {
    Effect: "Allow",
    Action: ["logs:CreateLogStream", "logs:PutLogEvents"],
    Resource: `arn:aws:logs:${region}:${account}:log-group:${group}:*`,
  };
}

/** One policy of the statements of several; undefined when there are none. Pure. */
export function mergePolicies(...statements: readonly Record<string, unknown>[]): Record<string, unknown> | undefined {
  return statements.length ? { Version: "2012-10-17", Statement: statements } : undefined;
}

/** Ensures role + instance profile named `name` with the given inline policy; returns the profile name. */
export async function ensureInstanceRole(
  client: AwsClients["iam"],
  name: string,
  policy: Record<string, unknown>,
  tags: Readonly<Record<string, string>>,
): Promise<string> {
  const exists = await client.send(new GetInstanceProfileCommand({ InstanceProfileName: name })).then(
    () => true,
    (e: { name?: string }) => {
      if (e.name === "NoSuchEntityException" || e.name === "NoSuchEntity") return false;
      throw translateAwsError(e, "GetInstanceProfile", name, "iam");
    },
  );
  if (!exists) {
    const tagList = Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
    await aws("CreateRole", name, () =>
      client.send(
        new CreateRoleCommand({ RoleName: name, AssumeRolePolicyDocument: ASSUME_EC2, Tags: tagList, Description: "kiln instance role" }),
      ),
    );
    await aws("CreateInstanceProfile", name, () =>
      client.send(new CreateInstanceProfileCommand({ InstanceProfileName: name, Tags: tagList })),
    );
    await aws("AddRoleToInstanceProfile", name, () =>
      client.send(new AddRoleToInstanceProfileCommand({ InstanceProfileName: name, RoleName: name })),
    );
  }
  await aws("PutRolePolicy", name, () =>
    client.send(new PutRolePolicyCommand({ RoleName: name, PolicyName: POLICY_NAME, PolicyDocument: JSON.stringify(policy) })),
  );
  // A role made before the policy was renamed keeps no permissions the new one does not state.
  if (exists) await deleteRolePolicy(client, name, LEGACY_POLICY_NAME);
  return name;
}

export async function deleteInstanceRole(client: AwsClients["iam"], name: string): Promise<void> {
  const gone = (code: string) => code === "NoSuchEntityException" || code === "NoSuchEntity";
  // Only a profile that still holds the role has it removed: a re-run after an interrupted
  // destroy finds it already removed (AWS answers NoSuchEntity; moto fails with a server error).
  const profile = await client.send(new GetInstanceProfileCommand({ InstanceProfileName: name })).then(
    (out) => out.InstanceProfile,
    (e: { name?: string }) => {
      if (gone(e.name ?? "")) return undefined;
      throw translateAwsError(e, "GetInstanceProfile", name, "iam");
    },
  );
  const holdsRole = profile?.Roles?.some((r) => r.RoleName === name) ?? false;
  if (holdsRole)
    await awsDelete(
      "RemoveRoleFromInstanceProfile",
      name,
      () => client.send(new RemoveRoleFromInstanceProfileCommand({ InstanceProfileName: name, RoleName: name })),
      gone,
      "iam",
    );
  await awsDelete(
    "DeleteInstanceProfile",
    name,
    () => client.send(new DeleteInstanceProfileCommand({ InstanceProfileName: name })),
    gone,
    "iam",
  );
  for (const policy of [POLICY_NAME, LEGACY_POLICY_NAME]) await deleteRolePolicy(client, name, policy);
  await awsDelete("DeleteRole", name, () => client.send(new DeleteRoleCommand({ RoleName: name })), gone, "iam");
}

async function deleteRolePolicy(client: AwsClients["iam"], role: string, policy: string): Promise<void> {
  await awsDelete(
    "DeleteRolePolicy",
    role,
    () => client.send(new DeleteRolePolicyCommand({ RoleName: role, PolicyName: policy })),
    (code) => code === "NoSuchEntityException" || code === "NoSuchEntity",
    "iam",
  );
}
