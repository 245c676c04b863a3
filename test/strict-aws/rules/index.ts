/**
 * The rules every AWS test runs under: one module per documented AWS behaviour moto skips.
 * Order matters only between rules that refuse the same request (the first refusal answers).
 */
import type { StrictRule } from "../layer.js";
import { albDeletionProtectionRule } from "./alb-deletion-protection.js";
import { albEniLinger } from "./alb-eni-linger.js";
import { createLoadBalancerRule } from "./create-load-balancer.js";
import { defaultVpcInternetRule } from "./default-vpc-internet.js";

/** How long a deleted ALB's network interfaces hold its security groups in tests (minutes on AWS). */
export const ALB_ENI_LINGER_MS = 2000;

export const STRICT_RULES: readonly StrictRule[] = [
  defaultVpcInternetRule,
  createLoadBalancerRule,
  albDeletionProtectionRule,
  albEniLinger(ALB_ENI_LINGER_MS),
];
