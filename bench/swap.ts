/**
 * npm run bench:swap — a local environment (2 QEMU instances behind HAProxy) on v1, wrk against
 * the load balancer before, during and after the blue/green swap to v2. "Before" is the baseline
 * measured in the same run: the swap's p99 is reported against it. The last stdout line is one
 * JSON object: requests, non2xx, socketErrors, p50Ms, p99Ms, swapSeconds (of the swap window), …
 * A last phase swaps back to v1 with a 20 % canary for 20 s, also under wrk.
 */
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { bake } from "../src/bake/bake.js";
import { destroyEnv, promote } from "../src/deploy/promote.js";
import { installRoot, kilnHome } from "../src/home.js";
import { startWrk, type WrkSummary } from "../src/loadgen/wrk.js";
import { localEnvDir } from "../src/providers/local/provider.js";
import { readState } from "../src/providers/local/state.js";
import type { Progress } from "../src/progress.js";
import { findFreePort } from "../src/run/ports.js";

const quiet: Progress = { step: async (_l, work) => work(), info: () => undefined };
const repo = installRoot();
const home = kilnHome();
const APP = "swapbench";

async function window(url: string, seconds: number): Promise<WrkSummary> {
  const load = startWrk(url, { connections: 4, maxSeconds: seconds });
  await new Promise((r) => setTimeout(r, seconds * 1000));
  return load.stop();
}

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
}

execFileSync("make", ["-s", "-C", path.join(repo, "examples", "hello-native")]);
const app = mkdtempSync(path.join(os.tmpdir(), "kiln-bench-swap-"));
cpSync(path.join(repo, "examples", "hello-native"), app, { recursive: true });
const port = await findFreePort();
writeFileSync(
  path.join(app, "kiln.yml"),
  `name: ${APP}\ncmd: ./server --listen 8080\nport: 8080\nhealthcheck: { path: /healthz }\nenvironments:\n  dev:\n    target: local\n    port: ${port}\n    instances: 2\n    deregistrationDelay: 2\n    healthcheck: { path: /healthz, interval: 1, healthyThreshold: 2, timeout: 120 }\n`,
);
const opts = { home, config: app, envName: "dev", progress: quiet };
const url = `http://127.0.0.1:${port}/`;
try {
  const v1 = await bake(app, { version: "1.0.0" }, home, quiet);
  const v2 = await bake(app, { version: "2.0.0" }, home, quiet);
  await destroyEnv({ ...opts, app: APP }).catch(() => undefined);
  await promote({ ...opts, ref: v1.image.ref });
  const before = await window(url, 10);
  const load = startWrk(url, { connections: 4, maxSeconds: 600 });
  const started = performance.now();
  await promote({ ...opts, ref: v2.image.ref });
  const swapSeconds = (performance.now() - started) / 1000;
  const during = await load.stop();
  const after = await window(url, 10);
  // The same swap back to v1, with a 20 % canary for 20 s before the full switch.
  const canaryLoad = startWrk(url, { connections: 4, maxSeconds: 600 });
  const canaryStarted = performance.now();
  await promote({ ...opts, ref: v1.image.ref, canary: { percent: 20, seconds: 20 } });
  const canarySwapSeconds = (performance.now() - canaryStarted) / 1000;
  const canary = await canaryLoad.stop();
  const state = await readState(localEnvDir(home, APP, "dev"));
  const pids = state.releases.flatMap((r) => r.instances.map((i) => i.pid));
  const memoryPerInstanceMiB = pids.reduce((a, p) => a + rssMiB(p), 0) / Math.max(1, pids.length);
  const line = (label: string, w: WrkSummary) =>
    `${label.padEnd(7)} ${String(w.requests).padStart(7)} requests in ${w.seconds.toFixed(1)}s, non-2xx ${w.non2xx}, socket errors ${JSON.stringify(w.socketErrors)}, p50 ${w.p50Ms.toFixed(2)} ms, p99 ${w.p99Ms.toFixed(2)} ms`;
  process.stdout.write(`${[line("before", before), line("during", during), line("after", after), line("canary", canary)].join("\n")}\n`);
  process.stdout.write(
    `swap ${swapSeconds.toFixed(1)}s (launch 2 VMs, health gate, switch, drain, stop blue); p99 during/before ${(during.p99Ms / before.p99Ms).toFixed(2)}x; QEMU memory per instance ${memoryPerInstanceMiB.toFixed(0)} MiB RSS\n`,
  );
  process.stdout.write(
    `swap back with --canary 20% for 20s: ${canarySwapSeconds.toFixed(1)}s (${(canarySwapSeconds / swapSeconds).toFixed(2)}x the plain swap)\n`,
  );
  const socketErrors = Object.values(during.socketErrors).reduce((a, b) => a + b, 0);
  process.stdout.write(
    `${JSON.stringify({ requests: during.requests, non2xx: during.non2xx, socketErrors, p50Ms: during.p50Ms, p99Ms: during.p99Ms, swapSeconds, before, during, after, canary, canarySwapSeconds, memoryPerInstanceMiB })}\n`,
  );
} finally {
  await destroyEnv({ ...opts, app: APP }).catch(() => undefined);
  rmSync(app, { recursive: true, force: true });
}
