/**
 * The rules every AWS test runs under: one module per documented AWS behaviour moto skips.
 * Order matters only between rules that refuse the same request (the first refusal answers).
 */
import type { StrictRule } from "../layer.js";
import { albDeletionProtectionRule } from "./alb-deletion-protection.js";
import { albEniLinger } from "./alb-eni-linger.js";
import { amiNamesRule } from "./ami-names.js";
import { asgNamesRule } from "./asg-names.js";
import { clientTokenRule } from "./client-token.js";
import { logsGroupNameRule, logsPutEventsRule, logsRetentionRule } from "./cloudwatch-logs.js";
import { createLoadBalancerRule } from "./create-load-balancer.js";
import { createTargetGroupRule } from "./create-target-group.js";
import { defaultVpcInternetRule } from "./default-vpc-internet.js";
import { ebsEventualRule } from "./ebs-eventual.js";
import { ebsParentBlocksRule } from "./ebs-parent-blocks.js";
import { ebsStartSnapshotRule } from "./ebs-start-snapshot.js";
import { ec2CopiedImagePending } from "./ec2-copied-image-pending.js";
import { ec2DescribeAfterCreate } from "./ec2-describe-after-create.js";
import { iamProfilePropagation } from "./iam-profile-propagation.js";
import { launchTemplateNames } from "./launch-template-names.js";
import { logsInterleavedRule } from "./logs-interleaved.js";
import { sslPolicyRule } from "./ssl-policy.js";
import { targetGroupNamesRule } from "./target-group-names.js";
import { targetHealthRule } from "./target-health.js";

/** How long a deleted ALB's network interfaces hold its security groups in tests (minutes on AWS). */
export const ALB_ENI_LINGER_MS = 1000;

// Consistency windows are seconds to minutes on AWS and about a second here: kiln meets the same
// refusal and retries the same way, and the suite stays inside its time budget.
export const STRICT_RULES: readonly StrictRule[] = [
  defaultVpcInternetRule,
  launchTemplateNames,
  createLoadBalancerRule,
  albDeletionProtectionRule,
  albEniLinger(ALB_ENI_LINGER_MS),
  ebsStartSnapshotRule(),
  ebsEventualRule({ windowMs: 1000 }),
  ebsParentBlocksRule(),
  sslPolicyRule,
  createTargetGroupRule,
  targetGroupNamesRule,
  asgNamesRule,
  clientTokenRule,
  amiNamesRule,
  targetHealthRule,
  iamProfilePropagation({ windowMs: 1000 }),
  ec2DescribeAfterCreate({ windowMs: 2000 }),
  ec2CopiedImagePending({ windowMs: 1000 }),
  logsRetentionRule,
  logsGroupNameRule,
  logsPutEventsRule,
  logsInterleavedRule,
];
