/**
 * What every AWS release launches from, in both modes: the image's AMI (pushed if this region
 * lacks it), the release's tags, and one launch template per release with the environment's
 * user-data, IMDSv2 only, and an instance role when secrets or log shipping need one.
 */
import { InputError } from "../../errors.js";
import type { AwsClients } from "../../aws/clients.js";
import { putLaunchTemplateVersion } from "../../aws/ec2-deploy.js";
import { findKilnAmis, waitAmiAvailable } from "../../aws/ec2.js";
import { ensureInstanceRole, logShippingStatement, mergePolicies, secretsStatements } from "../../aws/iam.js";
import { describeLogGroup } from "../../aws/logs.js";
import type { ImageRef } from "../../deploy/types.js";
import type { KilnHome } from "../../home.js";
import { ImageStore } from "../../image/store.js";
import { pushImage } from "../../push/push.js";
import { renderUserData } from "../../run/seed.js";
import type { AwsEnvironment } from "../../config/environments.js";
import { instanceRoleName, launchTemplateName, logGroupName } from "./names.js";

export interface ReleaseImage {
  readonly ami: string;
  /** The port the app listens on (from the image manifest). */
  readonly port: number;
  /** Baked environment values: secret references among them need an instance role. */
  readonly bakedEnv: Readonly<Record<string, string>>;
  /** Size of the AMI's root volume, which launch templates restate with its encryption. */
  readonly volumeGiB: number;
}

export async function releaseImage(clients: AwsClients, home: KilnHome, image: ImageRef): Promise<ReleaseImage> {
  const stored = await new ImageStore(home).resolve(image.digest);
  const port = stored.manifest.port;
  if (port === undefined)
    throw new InputError(`${image.ref} has no port`, { hint: "set port: in kiln.yml; an AWS environment sends traffic to the app's port" });
  const found = (await findKilnAmis(clients, { "kiln:digest": image.digest })).find((a) => a.state !== "failed");
  // A copy from another region (push --copy-to) may still be pending: it cannot launch yet.
  if (found && found.state !== "available") await waitAmiAvailable(clients, found.imageId);
  const ami = found?.imageId ?? (await pushImage({ ref: image.digest, clients, home })).ami;
  return { ami, port, bakedEnv: stored.manifest.env, volumeGiB: stored.manifest.layout.volumeGiB };
}

export function releaseTags(env: AwsEnvironment, release: string, image: ImageRef): Record<string, string> {
  return { "kiln:app": env.app, "kiln:env": env.name, "kiln:release": release, "kiln:digest": image.digest, "kiln:ref": image.ref };
}

export interface TemplateInput {
  readonly release: string;
  readonly image: ImageRef;
  readonly launch: ReleaseImage;
  /** In the template (Auto Scaling), or left to RunInstances' network interface (single instance). */
  readonly securityGroup?: string;
  readonly tags: Readonly<Record<string, string>>;
}

/**
 * One launch template per release (deleted with it, or kept for rollback): versions of a shared template would do
 * too, but moto corrupts UserData on CreateLaunchTemplateVersion, and per-release templates
 * make "delete the release" remove everything the release created.
 */
export async function putReleaseTemplate(
  clients: AwsClients,
  env: AwsEnvironment,
  input: TemplateInput,
): Promise<{ id: string; version: number; reused: boolean }> {
  const instanceProfile = await instanceRole(clients, env, input.launch.bakedEnv);
  return putLaunchTemplateVersion(
    clients,
    launchTemplateName(input.release),
    {
      ami: input.launch.ami,
      instanceType: env.instanceType,
      ...(input.securityGroup ? { securityGroup: input.securityGroup } : {}),
      ...(instanceProfile ? { instanceProfile } : {}),
      ...(env.kmsKeyId ? { rootVolumeKmsKeyId: env.kmsKeyId } : {}),
      rootVolumeGiB: input.launch.volumeGiB,
      userData: renderUserData(releaseUserData(env)),
      description: `${input.release} ${input.image.digest}`.slice(0, 255),
    },
    input.tags,
  );
}

/**
 * The variables the release's instances boot with: the environment's name, its env: values, and
 * with CloudWatch Logs on the group the guest ships to (KILN_CLOUDWATCH_LOGS; its region is
 * the instance's own, from IMDS). Pure (env: cannot name KILN_* variables: the schema refuses them).
 */
export function releaseUserData(env: AwsEnvironment): Record<string, string> {
  return {
    KILN_ENV: env.name,
    ...env.env,
    ...(env.logs.cloudwatch ? { KILN_CLOUDWATCH_LOGS: logGroupName(env.app, env.name) } : {}),
  };
}

/**
 * The instance role's policy: what the secret references among baked or environment values
 * need, and with CloudWatch Logs on, writing to the environment's log group; undefined (no
 * role) when neither applies. `account`: the account id, `*` when unknown. Pure.
 */
export function instancePolicy(
  env: AwsEnvironment,
  bakedEnv: Readonly<Record<string, string>>,
  region: string,
  account: string,
): Record<string, unknown> | undefined {
  const refs = [...Object.values(bakedEnv), ...Object.values(env.env)].filter((v) => /^(ssm|kms):/.test(v));
  const logs = env.logs.cloudwatch ? [logShippingStatement(logGroupName(env.app, env.name), region, account)] : [];
  return mergePolicies(...secretsStatements(refs, region), ...logs);
}

/** The account id in a CloudWatch Logs ARN (arn:aws:logs:REGION:ACCOUNT:log-group:NAME), else `*`. */
export function accountOf(arn: string | undefined): string {
  return /^arn:[\w-]+:logs:[\w-]*:(\d{12}):/.exec(arn ?? "")?.[1] ?? "*";
}

/** A role when the instances need one (secrets, log shipping), with exactly those permissions. */
async function instanceRole(
  clients: AwsClients,
  env: AwsEnvironment,
  bakedEnv: Readonly<Record<string, string>>,
): Promise<string | undefined> {
  // The log group's ARN names the account (kiln has no STS client): the role then grants exactly that group.
  const account = env.logs.cloudwatch ? accountOf((await describeLogGroup(clients, logGroupName(env.app, env.name)))?.arn) : "*";
  const policy = instancePolicy(env, bakedEnv, clients.region, account);
  if (!policy) return undefined;
  return ensureInstanceRole(clients.iam, instanceRoleName(env.app, env.name), policy, { "kiln:app": env.app, "kiln:env": env.name });
}
