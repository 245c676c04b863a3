/**
 * Rule iam-profile-propagation: a new instance profile is not usable by EC2 for a while.
 *
 * "Troubleshoot IAM — Changes that I make are not always immediately visible"
 * https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency
 * IAM "uses a distributed computing model called eventual consistency. Any change that you make
 * in IAM (or other AWS services) … takes time to become visible from all possible endpoints";
 * AddRoleToInstanceProfile's reference adds "You must then wait for the change to appear across
 * all of Amazon Web Services because of eventual consistency."
 *
 * What a launch sees meanwhile (the texts AWS answers, as reported in aws/aws-sdk-js-v3#5253 and
 * hashicorp/terraform-provider-aws#4769):
 * - RunInstances: InvalidParameterValue "Value (NAME) for parameter iamInstanceProfile.name is
 *   invalid. Invalid IAM Instance Profile name"
 * - CreateAutoScalingGroup: ValidationError "You must use a valid fully-formed launch template.
 *   Value (NAME) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name"
 * CreateLaunchTemplate itself does not check the profile, so the refusal comes at the launch
 * that uses the template: the rule reads the template's profile from moto.
 *
 * The window starts at CreateInstanceProfile and again at AddRoleToInstanceProfile (AWS is said
 * to take ~10 s; tests use 2 s).
 */
import type { StrictRule } from "../layer.js";
import { type AwsRequest, awsError } from "../protocol.js";

type Fresh = Map<string, number>;

const PROFILE_CHANGES = new Set(["CreateInstanceProfile", "AddRoleToInstanceProfile"]);

/** The instance profile name inside a launch template version, as moto describes it. */
function profileOfTemplate(xml: string): string | undefined {
  const block = /<iamInstanceProfile>([\s\S]*?)<\/iamInstanceProfile>/.exec(xml)?.[1] ?? "";
  return /<name>([^<]+)<\/name>/.exec(block)?.[1] ?? /<arn>[^<]*instance-profile\/([^<]+)<\/arn>/.exec(block)?.[1];
}

/** The launch template a launch names: RunInstances' LaunchTemplate.* or CreateAutoScalingGroup's. */
function templateOf(request: AwsRequest): { id?: string; name?: string; version: string } | undefined {
  const id = request.params.get("LaunchTemplate.LaunchTemplateId") ?? undefined;
  const name = request.params.get("LaunchTemplate.LaunchTemplateName") ?? undefined;
  if (!id && !name) return undefined;
  return { ...(id ? { id } : {}), ...(name ? { name } : {}), version: request.params.get("LaunchTemplate.Version") ?? "$Default" };
}

export function iamProfilePropagation(options: { windowMs?: number } = {}): StrictRule {
  const windowMs = options.windowMs ?? 2000;
  const name = "iam-profile-propagation";
  return {
    name,
    source:
      "Troubleshoot IAM: Changes that I make are not always immediately visible — " +
      "https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency",
    async before(request, ctx) {
      const launch =
        (request.service === "ec2" && request.action === "RunInstances") ||
        (request.service === "autoscaling" && request.action === "CreateAutoScalingGroup");
      if (!launch) return undefined;
      const fresh = ctx.state<Fresh>(name, () => new Map());
      for (const [profile, at] of fresh) if (ctx.now() - at >= windowMs) fresh.delete(profile);
      if (fresh.size === 0) return undefined;
      let profile = request.params.get("IamInstanceProfile.Name") ?? undefined;
      const template = templateOf(request);
      if (!profile && template) {
        const xml = await ctx.query("ec2", request.region, {
          Action: "DescribeLaunchTemplateVersions",
          Version: "2016-11-15",
          ...(template.id ? { LaunchTemplateId: template.id } : { LaunchTemplateName: template.name ?? "" }),
          "LaunchTemplateVersion.1": template.version,
        });
        profile = profileOfTemplate(xml);
      }
      if (!profile || !fresh.has(profile)) return undefined;
      const detail = `Value (${profile}) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name`;
      return request.service === "ec2"
        ? awsError(request, 400, "InvalidParameterValue", detail)
        : awsError(request, 400, "ValidationError", `You must use a valid fully-formed launch template. ${detail}`);
    },
    after(request, response, ctx) {
      if (request.service === "iam" && PROFILE_CHANGES.has(request.action) && response.status < 300) {
        const profile = request.params.get("InstanceProfileName");
        if (profile) ctx.state<Fresh>(name, () => new Map()).set(profile, ctx.now());
      }
      return response;
    },
  };
}
