/**
 * The rules every AWS test runs under: one module per documented AWS behaviour moto skips.
 * Order matters only between rules that refuse the same request (the first refusal answers).
 */
import type { StrictRule } from "../layer.js";
import { createTargetGroupRule } from "./create-target-group.js";
import { targetHealthRule } from "./target-health.js";

export const STRICT_RULES: readonly StrictRule[] = [createTargetGroupRule, targetHealthRule];
