/**
 * The health gate of a single instance, which has no load balancer to ask: this machine sends
 * HTTP GETs to the instance's own public IP and wants `threshold` good answers in a row.
 */
import http from "node:http";
import type { HealthResult } from "../../deploy/types.js";

export interface ProbeResult {
  /** A 2xx or 3xx answer. */
  readonly ok: boolean;
  /** What happened, for the error message: `HTTP 503`, `ECONNREFUSED`, `timed out after 5s`. */
  readonly detail: string;
}

/** One health check; tests inject their own (instances in the emulator run nothing). */
export type InstanceHealthSource = (target: {
  readonly release: string;
  readonly instanceId: string;
  readonly url: string;
}) => Promise<ProbeResult>;

/**
 * A GET on a new connection each time (no keep-alive pool: a check must see whether the app
 * accepts connections now), redirects not followed: 3xx counts as healthy, like the ALB's 200-399.
 */
export function httpProbe(timeoutMs: number): InstanceHealthSource {
  return ({ url }) =>
    new Promise((resolve) => {
      const request = http.get(url, { agent: false, timeout: timeoutMs }, (response) => {
        response.resume();
        const status = response.statusCode ?? 0;
        resolve({ ok: status >= 200 && status < 400, detail: `HTTP ${status}` });
      });
      request.on("timeout", () => request.destroy(Object.assign(new Error("timeout"), { code: "TIMEOUT" })));
      request.on("error", (error: NodeJS.ErrnoException) => {
        resolve({ ok: false, detail: error.code === "TIMEOUT" ? `no answer within ${timeoutMs / 1000}s` : (error.code ?? error.message) });
      });
    });
}

export interface GateOptions {
  readonly threshold: number;
  readonly intervalMs: number;
  readonly deadline: number;
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
}

/**
 * Checks until `threshold` consecutive checks pass or the deadline comes. Polling is the only
 * way to learn when an app starts answering; a failure resets the count, as in an ALB.
 */
export async function gateHealthy(check: () => Promise<ProbeResult>, options: GateOptions): Promise<HealthResult> {
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const threshold = Math.max(1, options.threshold);
  let passed = 0;
  let last = "not checked yet";
  while (now() < options.deadline) {
    const result = await check();
    passed = result.ok ? passed + 1 : 0;
    last = result.detail;
    if (passed >= threshold) return { healthy: true, detail: `${passed} checks in a row passed (${last})` };
    await sleep(options.intervalMs);
  }
  return { healthy: false, detail: `${passed} of ${threshold} checks in a row passed; last answer: ${last}` };
}
