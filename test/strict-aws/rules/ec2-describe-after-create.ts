/**
 * Rule ec2-describe-after-create: the first call that names a resource EC2 has just created
 * answers that it does not exist.
 *
 * "Eventual consistency in the Amazon EC2 API"
 * https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html
 * "if you run a command to modify or describe the resource that you just created, its ID might
 * not have propagated throughout the system, and you will get an error responding that the
 * resource does not exist." The page names InvalidInstanceID.NotFound after RunInstances and
 * InvalidGroup.NotFound after CreateSecurityGroup, and asks for Describe retried with
 * exponential backoff.
 *
 * Modelled: ids returned by CreateSecurityGroup, CreateLaunchTemplate, RunInstances,
 * RegisterImage and CopyImage are unknown to the first request that names them by id
 * (Describe*, CreateTags, AuthorizeSecurityGroupIngress, a launch from the template) within
 * `windowMs` of their creation. Lookups by filter are left alone: a filter answers "none"
 * rather than an error, and kiln's filter lookups come before it creates.
 */
import type { StrictRule } from "../layer.js";
import { type AwsRequest, awsError } from "../protocol.js";

interface Created {
  readonly at: number;
  refused: boolean;
}

/** Each created kind: the response element holding its id, and AWS's not-found answer. */
const KINDS: Record<string, { element: string; code: string; message: (id: string) => string }> = {
  CreateSecurityGroup: { element: "groupId", code: "InvalidGroup.NotFound", message: (id) => `The security group '${id}' does not exist` },
  CreateLaunchTemplate: {
    element: "launchTemplateId",
    code: "InvalidLaunchTemplateId.NotFound",
    message: (id) => `The specified launch template, with template ID ${id}, does not exist.`,
  },
  RunInstances: { element: "instanceId", code: "InvalidInstanceID.NotFound", message: (id) => `The instance ID '${id}' does not exist` },
  RegisterImage: { element: "imageId", code: "InvalidAMIID.NotFound", message: (id) => `The image id '[${id}]' does not exist` },
  CopyImage: { element: "imageId", code: "InvalidAMIID.NotFound", message: (id) => `The image id '[${id}]' does not exist` },
};

const PREFIX_KIND: readonly [string, string][] = [
  ["sg-", "CreateSecurityGroup"],
  ["lt-", "CreateLaunchTemplate"],
  ["i-", "RunInstances"],
  ["ami-", "RegisterImage"],
];

/** Requests that name resources by id: the parameters holding the ids. */
const REFERENCES: Record<string, RegExp> = {
  DescribeSecurityGroups: /^GroupId\.\d+$/,
  AuthorizeSecurityGroupIngress: /^GroupId$/,
  DescribeLaunchTemplates: /^LaunchTemplateId\.\d+$/,
  DescribeLaunchTemplateVersions: /^LaunchTemplateId$/,
  CreateLaunchTemplateVersion: /^LaunchTemplateId$/,
  RunInstances: /^LaunchTemplate\.LaunchTemplateId$/,
  DescribeInstances: /^InstanceId\.\d+$/,
  DescribeImages: /^ImageId\.\d+$/,
  CreateTags: /^ResourceId\.\d+$/,
};

function referencedIds(request: AwsRequest): string[] {
  const pattern = REFERENCES[request.action];
  if (!pattern) return [];
  return [...request.params.entries()].filter(([k]) => pattern.test(k)).map(([, v]) => v);
}

export function ec2DescribeAfterCreate(options: { windowMs?: number } = {}): StrictRule {
  const windowMs = options.windowMs ?? 2000;
  const name = "ec2-describe-after-create";
  const state = (ctx: Parameters<NonNullable<StrictRule["before"]>>[1]) => ctx.state<Map<string, Created>>(name, () => new Map());
  return {
    name,
    source: "Eventual consistency in the Amazon EC2 API — https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html",
    before(request, ctx) {
      if (request.service !== "ec2") return undefined;
      const created = state(ctx);
      for (const id of referencedIds(request)) {
        const entry = created.get(id);
        if (!entry || entry.refused || ctx.now() - entry.at >= windowMs) continue;
        entry.refused = true;
        const kind = PREFIX_KIND.find(([prefix]) => id.startsWith(prefix))?.[1];
        const answer = kind ? KINDS[kind] : undefined;
        if (answer) return awsError(request, 400, answer.code, answer.message(id));
      }
      return undefined;
    },
    after(request, response, ctx) {
      const kind = request.service === "ec2" && response.status < 300 ? KINDS[request.action] : undefined;
      if (!kind) return response;
      const created = state(ctx);
      const pattern = new RegExp(`<${kind.element}>([^<]+)</${kind.element}>`, "g");
      // RunInstances answers with every instance; the security groups inside it are not new.
      for (const match of response.body.toString("utf8").matchAll(pattern))
        if (!created.has(match[1]!)) created.set(match[1]!, { at: ctx.now(), refused: false });
      return response;
    },
  };
}
