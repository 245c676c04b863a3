// The local environment, for real: QEMU instances behind HAProxy, traffic from wrk during every
// swap. v1 → v2 under load: every request answered 2xx and answers switch from v1 to v2; a
// release that never gets healthy: 0 failed requests, v2 still serving, its VMs gone; rollback:
// v1 back with 0 errors; kiln killed mid-promote: a re-run converges and leaks no process.
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bake } from "../../src/bake/bake.js";
import { destroyEnv, envStatus, promote, rollback } from "../../src/deploy/promote.js";
import { startWrk, type WrkSummary } from "../../src/loadgen/wrk.js";
import { haproxyPaths, haproxyPid } from "../../src/providers/local/haproxy.js";
import { localEnvDir } from "../../src/providers/local/provider.js";
import { readState } from "../../src/providers/local/state.js";
import { findFreePort } from "../../src/run/ports.js";
import { cli, processAlive, quiet, repo, sharedHome } from "./harness.js";

const home = sharedHome();
let app: string;
let port: number;
let refs: { v1: string; v2: string; bad: string; errors: string };
const APP = "swapdemo";

/** Sequential GETs recording which image answered, alongside wrk's load. */
function watchBodies(url: string): { stop: () => Promise<{ images: string[]; failures: number }> } {
  let running = true;
  const images: string[] = [];
  let failures = 0;
  const loop = (async () => {
    while (running) {
      try {
        const response = await fetch(url);
        const body = (await response.json()) as { image: string };
        if (response.status !== 200) failures++;
        if (images.at(-1) !== body.image) images.push(body.image);
      } catch {
        failures++;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return { images, failures };
    },
  };
}

function expectNoErrors(summary: WrkSummary): void {
  expect(summary.requests).toBeGreaterThan(100);
  expect(summary.non2xx).toBe(0);
  expect(summary.socketErrors).toEqual({ connect: 0, read: 0, write: 0, timeout: 0 });
}

async function envPids(): Promise<{ haproxy: number | undefined; vms: number[] }> {
  const dir = localEnvDir(home, APP, "dev");
  const state = await readState(dir);
  return { haproxy: await haproxyPid(haproxyPaths(dir)), vms: state.releases.flatMap((r) => r.instances.map((i) => i.pid)) };
}

const opts = () => ({ home, config: app, envName: "dev", progress: quiet });

/** Every QEMU running from this home's VM directories, known to a state file or not. */
function qemusOfHome(): number[] {
  let listed = "";
  try {
    listed = execFileSync("pgrep", ["-f", "qemu-system-x86_64"], { encoding: "utf8" });
  } catch {
    // pgrep exits 1 when nothing matches
  }
  const pids = listed.split("\n").filter(Boolean).map(Number);
  return pids.filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(`${home.vms}/`);
    } catch {
      return false;
    }
  });
}
let qemusBefore: number[] = [];

function runningProcess(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

beforeAll(async () => {
  qemusBefore = qemusOfHome();
  execFileSync("make", ["-s", "-C", path.join(repo, "examples", "hello-native")]);
  app = mkdtempSync(path.join(os.tmpdir(), "kiln-swap-"));
  cpSync(path.join(repo, "examples", "hello-native"), app, { recursive: true });
  port = await findFreePort();
  const yml = (cmd: string) =>
    `name: ${APP}\ncmd: ${cmd}\nport: 8080\nhealthcheck:\n  path: /healthz\nrestarts: { maxQuickExits: 100 }\nenvironments:\n  dev:\n    target: local\n    port: ${port}\n    instances: 2\n    deregistrationDelay: 2\n    healthcheck: { path: /healthz, interval: 1, healthyThreshold: 2, timeout: 60 }\n`;
  writeFileSync(path.join(app, "kiln.yml"), yml("./server --listen 8080"));
  const v1 = await bake(app, { version: "1.0.0" }, home, quiet);
  const v2 = await bake(app, { version: "2.0.0" }, home, quiet);
  writeFileSync(path.join(app, "kiln.yml"), yml("./server --listen 8080 --fail-health"));
  const bad = await bake(app, { version: "3.0.0-bad" }, home, quiet);
  writeFileSync(path.join(app, "kiln.yml"), yml("./server --listen 8080 --fail-requests"));
  const errors = await bake(app, { version: "4.0.0-errors" }, home, quiet);
  writeFileSync(path.join(app, "kiln.yml"), yml("./server --listen 8080"));
  refs = { v1: v1.image.ref, v2: v2.image.ref, bad: bad.image.ref, errors: errors.image.ref };
  await promote({ ...opts(), ref: refs.v1 });
});

afterAll(async () => {
  await destroyEnv({ ...opts(), app: APP }).catch(() => undefined);
  const left = await envPids();
  expect(left.haproxy).toBeUndefined();
  expect(left.vms).toEqual([]);
  // Nothing leaked: no QEMU of this home started during this file still runs.
  expect(qemusOfHome().filter((pid) => !qemusBefore.includes(pid))).toEqual([]);
});

describe.sequential("local environment: blue/green under load", () => {
  it("v1 → v2: every request gets a 2xx and answers switch from v1 to v2", async () => {
    const url = `http://127.0.0.1:${port}/`;
    expect(((await (await fetch(url)).json()) as { image: string }).image).toBe(refs.v1);
    const before = await envPids();
    const load = startWrk(url, { connections: 4, maxSeconds: 240 });
    const bodies = watchBodies(url);
    await promote({ ...opts(), ref: refs.v2 });
    await new Promise((r) => setTimeout(r, 1000));
    const seen = await bodies.stop();
    expectNoErrors(await load.stop());
    expect(seen.failures).toBe(0);
    expect(seen.images).toEqual([refs.v1, refs.v2]);
    const status = await envStatus({ ...opts(), app: APP });
    expect(status.live.releases.map((r) => r.image.ref)).toEqual([refs.v2]);
    expect(status.live.releases[0]!.instances.map((i) => i.zone).sort()).toEqual(["zone-a", "zone-b"]);
    for (const pid of before.vms) expect(processAlive(pid)).toBe(false);
  });

  it("a release that never gets healthy: traffic stays on v2, 0 failed requests, its VMs are gone", async () => {
    const url = `http://127.0.0.1:${port}/`;
    const load = startWrk(url, { connections: 4, maxSeconds: 240 });
    await expect(promote({ ...opts(), ref: refs.bad })).rejects.toThrow(/did not become healthy/);
    expectNoErrors(await load.stop());
    expect(((await (await fetch(url)).json()) as { image: string }).image).toBe(refs.v2);
    const state = await readState(localEnvDir(home, APP, "dev"));
    expect(state.releases.map((r) => r.image.ref)).toEqual([refs.v2]);
    expect(state.history.at(-1)).toMatchObject({ result: "failed", image: { ref: refs.bad } });
    const vmsNow = (await envPids()).vms;
    expect(vmsNow.length).toBe(2);
  });

  it("rollback returns to v1 with 0 errors", async () => {
    const url = `http://127.0.0.1:${port}/`;
    const load = startWrk(url, { connections: 4, maxSeconds: 240 });
    await rollback({ ...opts(), app: APP });
    expectNoErrors(await load.stop());
    expect(((await (await fetch(url)).json()) as { image: string }).image).toBe(refs.v1);
  });

  it("kiln killed in the middle of a promote: running it again converges and leaks nothing", async () => {
    const killed = await cli(["promote", refs.v2, "--env", "dev", "--config", app], {
      KILN_HOME: home.root,
      KILN_TEST_DIE_BEFORE_STEP: "switch-traffic",
    });
    expect(killed.code, killed.stderr).toBeNull(); // SIGKILL
    const midway = await readState(localEnvDir(home, APP, "dev"));
    expect(midway.releases.length).toBe(2); // green launched, traffic not switched
    const again = await cli(["promote", refs.v2, "--env", "dev", "--config", app], { KILN_HOME: home.root });
    expect(again.code, again.stderr).toBe(0);
    const state = await readState(localEnvDir(home, APP, "dev"));
    expect(state.releases.map((r) => [r.image.ref, r.serving, r.instances.length])).toEqual([[refs.v2, true, 2]]);
    const pids = await envPids();
    for (const pid of pids.vms) expect(processAlive(pid)).toBe(true);
    // Every QEMU that belongs to this environment is one the state knows about.
    const qemus = execFileSync("pgrep", ["-f", "qemu-system-x86_64"], { encoding: "utf8" }).split("\n").filter(Boolean).map(Number);
    const ours = qemus.filter(
      (pid) => readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(`/vms/`) && readFileSync(`/proc/${pid}/environ`, "utf8") !== null,
    );
    for (const pid of pids.vms) expect(ours).toContain(pid);
    expect(((await (await fetch(`http://127.0.0.1:${port}/`)).json()) as { image: string }).image).toBe(refs.v2);
  });

  it("a canary that answers errors: the split ends, traffic goes back to v2, the canary release is gone", async () => {
    const url = `http://127.0.0.1:${port}/`;
    const load = startWrk(url, { connections: 4, maxSeconds: 300 });
    await expect(promote({ ...opts(), ref: refs.errors, canary: { percent: 20, seconds: 30 } })).rejects.toThrow(
      /canary .* failed after \d+s: canary answered \d+ requests with \d+ errors/,
    );
    const summary = await load.stop();
    console.log(`failed canary (20%): ${summary.non2xx} of ${summary.requests} requests got an error answer`);
    // Some requests reached the canary (that is what a canary is for), never all of them.
    expect(summary.non2xx).toBeGreaterThan(0);
    expect(summary.non2xx / summary.requests).toBeLessThan(0.5);
    expect(summary.socketErrors).toEqual({ connect: 0, read: 0, write: 0, timeout: 0 });
    const after = await fetch(url);
    expect(after.status).toBe(200);
    expect(((await after.json()) as { image: string }).image).toBe(refs.v2);
    const state = await readState(localEnvDir(home, APP, "dev"));
    expect(state.releases.map((r) => [r.image.ref, r.serving])).toEqual([[refs.v2, true]]);
    expect(state.history.at(-1)).toMatchObject({ result: "failed", image: { ref: refs.errors } });
  });

  it("a healthy canary: both releases answer during the split, then only the new one, 0 errors", async () => {
    const url = `http://127.0.0.1:${port}/`;
    const load = startWrk(url, { connections: 4, maxSeconds: 300 });
    const bodies = watchBodies(url);
    await promote({ ...opts(), ref: refs.v1, canary: { percent: 50, seconds: 8 } });
    await new Promise((r) => setTimeout(r, 1000));
    const seen = await bodies.stop();
    expectNoErrors(await load.stop());
    expect(seen.failures).toBe(0);
    // v2 → (v1 and v2 alternating during the canary) → v1.
    expect(seen.images[0]).toBe(refs.v2);
    expect(seen.images.at(-1)).toBe(refs.v1);
    expect(seen.images.length).toBeGreaterThan(2);
    const state = await readState(localEnvDir(home, APP, "dev"));
    expect(state.releases.map((r) => [r.image.ref, r.serving])).toEqual([[refs.v1, true]]);
    // What a person sees: where it serves, the live release and its healthy instances per zone.
    const status = await cli(["status", "--env", "dev", "--config", app], { KILN_HOME: home.root });
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain(`dev (local)  serving at http://127.0.0.1:${port}/`);
    expect(status.stdout).toMatch(new RegExp(`LIVE .*${refs.v1.replace(/[.]/g, "\\.")}`));
    expect(status.stdout.match(/zone-[ab] {2}healthy/g)).toHaveLength(2);
  });

  // Issue 18, items 1 and 2: a release is an image plus its configuration, and the load balancer follows kiln.yml.
  it("config set releases the live image with the new value (0 errors), restart replaces the VMs, a new port moves HAProxy", async () => {
    const url = `http://127.0.0.1:${port}/`;
    const load = startWrk(url, { connections: 4, maxSeconds: 300 });
    const set = await cli(["config", "set", "GREETING=bonjour", "--env", "dev", "--config", app], { KILN_HOME: home.root });
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toMatch(/same image, launch configuration changed: env\.GREETING added/);
    expectNoErrors(await load.stop());
    const body = (await (await fetch(url)).json()) as { image: string; message: string };
    expect([body.image, body.message]).toEqual([refs.v1, "bonjour"]);
    expect(readFileSync(path.join(app, "kiln.yml"), "utf8")).toContain("GREETING: bonjour");

    const before = (await envPids()).vms;
    const released = (await readState(localEnvDir(home, APP, "dev"))).releases.find((r) => r.serving)!.id;
    const restart = await cli(["restart", "--env", "dev", "--config", app], { KILN_HOME: home.root });
    expect(restart.code, restart.stderr).toBe(0);
    const after = await readState(localEnvDir(home, APP, "dev"));
    // A copy of the live release: its id plus -rN (N counts the restarts history knows of).
    expect(after.releases.map((r) => [r.id.replace(/-r\d+$/, ""), r.id !== released, r.image.ref, r.serving])).toEqual([
      [released, true, refs.v1, true],
    ]);
    // Gone, or a zombie: QEMUs started by an exited kiln are reaped by PID 1, which in some containers takes its time.
    for (const pid of before) expect(runningProcess(pid)).toBe(false);

    const oldPort = port;
    port = await findFreePort();
    const yml = readFileSync(path.join(app, "kiln.yml"), "utf8");
    writeFileSync(path.join(app, "kiln.yml"), yml.replace(`    port: ${oldPort}\n`, `    port: ${port}\n`));
    const status = await cli(["status", "--env", "dev", "--config", app], { KILN_HOME: home.root });
    expect(status.stdout).toContain(`drift: HAProxy listens on 127.0.0.1:${oldPort}, the environment says ${port}`);
    const moved = await cli(["promote", refs.v1, "--env", "dev", "--config", app], { KILN_HOME: home.root });
    expect(moved.code, moved.stderr).toBe(0);
    expect(moved.stdout).toContain(`${refs.v1} is already live in dev; only the shared resources change`);
    const answer = await fetch(`http://127.0.0.1:${port}/`);
    expect(((await answer.json()) as { message: string }).message).toBe("bonjour");
    await expect(fetch(`http://127.0.0.1:${oldPort}/`)).rejects.toThrow();
  });
});
