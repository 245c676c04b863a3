// `kiln iam-policy` must let kiln make every call it can make: the operations are read from the
// source (every command, paginator and waiter imported from @aws-sdk), so a new call without its
// permission fails here rather than with AccessDenied on a user's first real deploy. Calls that
// need a second permission (tagging at creation, passing a role) are listed with the AWS page
// that says so.
import path from "node:path";
import { describe, expect, it } from "vitest";
import { iamPolicy } from "../../src/push/iam-policy.js";
import { policyAllows, scanSdkCalls } from "./helpers/sdk-operations.js";

const SRC = path.join(import.meta.dirname, "..", "..", "src");

/**
 * Permissions a call needs besides its own action:
 * - tags given at creation need the service's tagging action ("Grant permission to tag resources
 *   during creation", Amazon EC2 User Guide: https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/supported-iam-actions-tagging.html;
 *   Elastic Load Balancing and IAM name AddTags / TagRole / TagInstanceProfile the same way);
 * - launching with an instance profile needs iam:PassRole on its role ("Using an IAM role to grant
 *   permissions to applications running on Amazon EC2 instances", IAM User Guide:
 *   https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_switch-role-ec2.html);
 * - an Auto Scaling group launched from a launch template needs ec2:RunInstances for the caller
 *   ("Control Amazon EC2 launch template usage in Auto Scaling groups", Amazon EC2 Auto Scaling
 *   User Guide: https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-launch-template-permissions.html);
 * - a log group created with tags needs logs:TagResource too ("CreateLogGroup", CloudWatch Logs API
 *   Reference, parameter tags: https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_CreateLogGroup.html).
 */
const ALSO_NEEDS: Record<string, readonly string[]> = {
  "ec2:RunInstances": ["ec2:CreateTags", "iam:PassRole"],
  "ec2:CreateSecurityGroup": ["ec2:CreateTags"],
  "ec2:CreateLaunchTemplate": ["ec2:CreateTags", "iam:PassRole"],
  "ec2:CreateLaunchTemplateVersion": ["iam:PassRole"],
  "ec2:AllocateAddress": ["ec2:CreateTags"],
  "ec2:RegisterImage": ["ec2:CreateTags"],
  "ec2:CopyImage": ["ec2:CreateTags"],
  "ebs:StartSnapshot": ["ec2:CreateTags"],
  "autoscaling:CreateAutoScalingGroup": ["autoscaling:CreateOrUpdateTags", "ec2:RunInstances", "iam:PassRole"],
  "elasticloadbalancing:CreateLoadBalancer": ["elasticloadbalancing:AddTags"],
  "elasticloadbalancing:CreateTargetGroup": ["elasticloadbalancing:AddTags"],
  "iam:CreateRole": ["iam:TagRole"],
  "iam:CreateInstanceProfile": ["iam:TagInstanceProfile"],
  "logs:CreateLogGroup": ["logs:TagResource"],
};

describe("kiln iam-policy", () => {
  const calls = scanSdkCalls(SRC);

  it("finds kiln's AWS calls in the source (the scan itself works)", () => {
    const actions = new Set(calls.map((c) => c.action));
    // One from each kind of import: a command, a waiter, a paginator, and each service.
    for (const known of [
      "ec2:RunInstances",
      "ebs:PutSnapshotBlock",
      "autoscaling:DescribeAutoScalingGroups",
      "elasticloadbalancing:DescribeLoadBalancers",
      "iam:CreateRole",
      "cloudwatch:GetMetricData",
      "logs:CreateLogGroup",
    ])
      expect(actions).toContain(known);
    expect(actions.size).toBeGreaterThan(50);
  });

  it("grants every action kiln's source can call, and what those calls also need", () => {
    const policy = iamPolicy();
    const needed = new Map<string, string>();
    for (const call of calls) {
      needed.set(call.action, call.file);
      for (const extra of ALSO_NEEDS[call.action] ?? []) needed.set(extra, `${call.file} (${call.action})`);
    }
    const missing = [...needed].filter(([action]) => !policyAllows(policy, action)).map(([action, file]) => `${action} (${file})`);
    expect(missing).toEqual([]);
  });
});
