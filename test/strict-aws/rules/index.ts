/**
 * The rules every AWS test runs under: one module per documented AWS behaviour moto skips.
 * Order matters only between rules that refuse the same request (the first refusal answers).
 */
import type { StrictRule } from "../layer.js";
import { createTargetGroupRule } from "./create-target-group.js";
import { ebsEventualRule } from "./ebs-eventual.js";
import { ebsParentBlocksRule } from "./ebs-parent-blocks.js";
import { ebsStartSnapshotRule } from "./ebs-start-snapshot.js";
import { launchTemplateNames } from "./launch-template-names.js";
import { sslPolicyRule } from "./ssl-policy.js";
import { targetHealthRule } from "./target-health.js";

export const STRICT_RULES: readonly StrictRule[] = [
  launchTemplateNames,
  ebsStartSnapshotRule(),
  ebsEventualRule({ windowMs: 1000 }),
  ebsParentBlocksRule(),
  sslPolicyRule,
  createTargetGroupRule,
  targetHealthRule,
];
