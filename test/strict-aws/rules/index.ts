/**
 * The rules every AWS test runs under: one module per documented AWS behaviour moto skips.
 * Order matters only between rules that refuse the same request (the first refusal answers).
 */
import type { StrictRule } from "../layer.js";
import { ec2CopiedImagePending } from "./ec2-copied-image-pending.js";
import { ec2DescribeAfterCreate } from "./ec2-describe-after-create.js";
import { iamProfilePropagation } from "./iam-profile-propagation.js";

export const STRICT_RULES: readonly StrictRule[] = [
  iamProfilePropagation({ windowMs: 2000 }),
  ec2DescribeAfterCreate({ windowMs: 2000 }),
  ec2CopiedImagePending({ windowMs: 2000 }),
];
