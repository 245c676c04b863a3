/** Canary arithmetic for the local load balancer: HAProxy weights for a traffic share, and the error-rate verdict. Pure. */
import { compareErrorRates, sumCounts } from "../../deploy/canary-verdict.js";
import type { ServerStatus } from "./haproxy.js";

/** Per-server weights that give the canary servers `percent` of the total (HAProxy weights: 0–256). */
export function canaryWeights(percent: number, canaryServers: number, currentServers: number): { canary: number; current: number } {
  return {
    canary: Math.min(256, Math.max(1, Math.round((2 * percent) / canaryServers))),
    current: Math.min(256, Math.max(1, Math.round((2 * (100 - percent)) / currentServers))),
  };
}

/** Canary error rate against the current release's, from HAProxy's per-server counters (the rule: ../../deploy/canary-verdict.ts). */
export function judgeErrorRates(canary: readonly ServerStatus[], current: readonly ServerStatus[]): { ok: boolean; detail: string } {
  const counts = (servers: readonly ServerStatus[]) => sumCounts(servers.map((s) => ({ requests: s.responses, errors: s.errors })));
  return compareErrorRates(counts(canary), counts(current));
}
