/**
 * Traffic for swap tests and benchmarks: wrk against the load balancer for as long as a
 * deploy takes (stopped with SIGINT, on which wrk prints its summary), parsed into numbers.
 */
import { spawnCapture } from "../exec.js";

export interface WrkSummary {
  readonly requests: number;
  readonly non2xx: number;
  readonly socketErrors: { readonly connect: number; readonly read: number; readonly write: number; readonly timeout: number };
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly seconds: number;
}

function toMs(value: string, unit: string): number {
  const n = Number(value);
  return unit === "us" ? n / 1000 : unit === "s" ? n * 1000 : unit === "m" ? n * 60_000 : n;
}

export function parseWrkOutput(text: string): WrkSummary {
  const requests = /(\d+) requests in ([\d.]+)(ms|s|m)/.exec(text);
  if (!requests) throw new Error(`not wrk output:\n${text.slice(0, 500)}`);
  const latency = (pct: string) => {
    const m = new RegExp(`^\\s*${pct}%\\s+([\\d.]+)(us|ms|s|m)`, "m").exec(text);
    return m ? toMs(m[1]!, m[2]!) : NaN;
  };
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(text);
  return {
    requests: Number(requests[1]),
    seconds: toMs(requests[2]!, requests[3]!) / 1000,
    non2xx: non2xx ? Number(non2xx[1]) : 0,
    socketErrors: errors
      ? { connect: Number(errors[1]), read: Number(errors[2]), write: Number(errors[3]), timeout: Number(errors[4]) }
      : { connect: 0, read: 0, write: 0, timeout: 0 },
    p50Ms: latency("50"),
    p99Ms: latency("99"),
  };
}

export interface RunningLoad {
  stop(): Promise<WrkSummary>;
}

/** Starts wrk (bounded by maxSeconds even if never stopped) against a loopback URL. */
/**
 * timeoutSeconds: how long one request may take before wrk counts it as failed. The default
 * (30 s) judges availability; slow answers under TCG show up in the latency figures instead.
 */
export function startWrk(
  url: string,
  options: { connections?: number; threads?: number; maxSeconds?: number; timeoutSeconds?: number } = {},
): RunningLoad {
  if (!/^http:\/\/127\.0\.0\.1:\d+\//.test(url)) throw new Error(`load is only generated against loopback URLs, not ${url}`);
  const load = spawnCapture([
    "wrk",
    "-t",
    String(options.threads ?? 1),
    "-c",
    String(options.connections ?? 4),
    "-d",
    `${options.maxSeconds ?? 300}s`,
    "--latency",
    "--timeout",
    `${options.timeoutSeconds ?? 30}s`,
    url,
  ]);
  return {
    async stop() {
      load.signal("SIGINT");
      const result = await load.done;
      return parseWrkOutput(result.stdout);
    },
  };
}
