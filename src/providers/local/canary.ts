/** Canary arithmetic for the local load balancer: HAProxy weights for a traffic share, and the error-rate verdict. Pure. */
import type { ServerStatus } from "./haproxy.js";

/** Per-server weights that give the canary servers `percent` of the total (HAProxy weights: 0–256). */
export function canaryWeights(percent: number, canaryServers: number, currentServers: number): { canary: number; current: number } {
  return {
    canary: Math.min(256, Math.max(1, Math.round((2 * percent) / canaryServers))),
    current: Math.min(256, Math.max(1, Math.round((2 * (100 - percent)) / currentServers))),
  };
}

/** Canary error rate against the current release's, from HAProxy's per-server counters. */
export function judgeErrorRates(canary: readonly ServerStatus[], current: readonly ServerStatus[]): { ok: boolean; detail: string } {
  const rate = (servers: readonly ServerStatus[]) => {
    const responses = servers.reduce((n, s) => n + s.responses, 0);
    const errors = servers.reduce((n, s) => n + s.errors, 0);
    return { responses, errors, rate: responses > 0 ? errors / responses : 0 };
  };
  const c = rate(canary);
  const b = rate(current);
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  const detail = `canary answered ${c.responses} requests with ${c.errors} errors (${pct(c.rate)}); current release ${pct(b.rate)}`;
  return { ok: c.errors === 0 || c.rate <= b.rate + 0.01, detail };
}
