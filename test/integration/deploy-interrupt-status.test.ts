// Issue 18, items 4, 6 and 7 on the local target, through the real CLI: Ctrl-C during a promote
// says where it stopped and what is left, releases the lock, and a re-run converges; a VM killed
// behind kiln's back makes `status` say DEGRADED (exit code 8, `state` in --json); destroy
// records `destroyed`, says what it removed and prints no URL, and rollback afterwards explains.
import { existsSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { destroyEnv, promote } from "../../src/deploy/promote.js";
import { localEnvDir } from "../../src/providers/local/provider.js";
import { readState } from "../../src/providers/local/state.js";
import { findFreePort } from "../../src/run/ports.js";
import { bakeNativeReleases, cli, processAlive, quiet, sharedHome } from "./harness.js";

const home = sharedHome();
const APP = "interruptdemo";
let app: string;
let port: number;
let v1: string;
let v2: string;
const envDir = () => localEnvDir(home, APP, "dev");
const kiln = (args: string[], onStderr?: Parameters<typeof cli>[2]) =>
  cli([...args, "--env", "dev", "--config", app], { KILN_HOME: home.root }, onStderr);

beforeAll(async () => {
  port = await findFreePort();
  const config = (dir: string) =>
    writeFileSync(
      path.join(dir, "kiln.yml"),
      `name: ${APP}\ncmd: ./server --listen 8080\nport: 8080\nhealthcheck:\n  path: /healthz\nenvironments:\n  dev:\n` +
        `    target: local\n    port: ${port}\n    instances: 1\n    deregistrationDelay: 1\n` +
        "    healthcheck: { path: /healthz, interval: 1, healthyThreshold: 2, timeout: 90 }\n",
    );
  const baked = await bakeNativeReleases(APP, ["1.0.0", "2.0.0"], home, config);
  app = baked.app;
  [v1, v2] = baked.images.map((i) => i.ref) as [string, string];
  await promote({ home, config: app, envName: "dev", progress: quiet, ref: v1 });
}, 600_000);

afterAll(async () => {
  await destroyEnv({ home, config: app, envName: "dev", progress: quiet, app: APP }).catch(() => undefined);
  const state = await readState(envDir());
  for (const pid of state.releases.flatMap((r) => r.instances.map((i) => i.pid))) expect(processAlive(pid)).toBe(false);
});

describe.sequential("the local environment's day-to-day truths", () => {
  it("Ctrl-C during wait-healthy: says where it stopped and what is left, exits 130, unlocks; a re-run converges", async () => {
    let sent = false;
    // The launch step's line is printed when it ends: the promote is then waiting for health.
    const interrupted = await kiln(["promote", v2, "--json"], (stderr, child) => {
      if (!sent && /\n {2}launch /.test(`\n${stderr}`)) {
        sent = true;
        child.kill("SIGINT");
      }
    });
    expect(sent).toBe(true);
    expect(interrupted.code, interrupted.stderr).toBe(130);
    expect(interrupted.stderr).toMatch(/promote of .* to dev interrupted at step \d+ of \d+ \(wait until every instance of .* is healthy/);
    expect(interrupted.stderr).toMatch(/still running: release .*2-0-0.* \(1 × interruptdemo:2\.0\.0\), which receives no traffic/);
    expect(interrupted.stderr).toMatch(/traffic stays on .*1-0-0/);
    expect(interrupted.stderr).toContain(`kiln promote ${v2} --env dev`);
    const json = JSON.parse(interrupted.stdout) as { interrupted: boolean; step: { kind: string }; left: string[] };
    expect(json).toMatchObject({ interrupted: true, step: { kind: "wait-healthy" } });
    expect(json.left.length).toBeGreaterThan(0);
    expect(existsSync(path.join(envDir(), "lock"))).toBe(false);
    const midway = await readState(envDir());
    expect(midway.releases.map((r) => [r.image.ref, r.serving])).toEqual([
      [v1, true],
      [v2, false],
    ]);

    const again = await kiln(["promote", v2]);
    expect(again.code, again.stderr).toBe(0);
    const state = await readState(envDir());
    expect(state.releases.map((r) => [r.image.ref, r.serving, r.instances.length])).toEqual([[v2, true, 1]]);
    expect(((await (await fetch(`http://127.0.0.1:${port}/`)).json()) as { image: string }).image).toBe(v2);
  }, 600_000);

  it("a VM killed behind kiln's back: status says DEGRADED with exit code 8, and --json says so", async () => {
    const healthy = await kiln(["status"]);
    expect(healthy.code, healthy.stderr).toBe(0);
    expect(healthy.stdout).toMatch(/zone-a {2}healthy/);
    const state = await readState(envDir());
    const pid = state.releases[0]!.instances[0]!.pid;
    process.kill(-pid, "SIGKILL");
    for (let i = 0; i < 50 && processAlive(pid); i++) await new Promise((r) => setTimeout(r, 100));

    const status = await kiln(["status"]);
    expect(status.code, status.stdout).toBe(8);
    expect(status.stdout).toMatch(/DEGRADED/);
    expect(status.stdout).toMatch(/0 of 1 instances running/);
    const json = await kiln(["status", "--json"]);
    expect(json.code).toBe(8);
    const parsed = JSON.parse(json.stdout) as { state: string; releases: { state: string; instances: unknown[] }[] };
    expect(parsed.state).toBe("degraded");
    expect(parsed.releases[0]).toMatchObject({ state: "degraded", instances: [] });
    // What the hint says: promoting the live image again replaces the missing instance.
    expect(status.stdout).toContain(`kiln promote ${v2} --env dev`);
    const repaired = await kiln(["promote", v2]);
    expect(repaired.code, repaired.stderr).toBe(0);
    const after = await kiln(["status"]);
    expect(after.code, after.stdout).toBe(0);
    expect(after.stdout).toMatch(/LIVE .* 1 of 1 instances running/);
  });

  it("destroy records destroyed, says what it removed, no URL; history and rollback make sense afterwards", async () => {
    const destroyed = await kiln(["destroy", "--yes"]);
    expect(destroyed.code, destroyed.stderr).toBe(0);
    expect(destroyed.stdout).not.toMatch(/serving at/);
    expect(destroyed.stdout).toMatch(/removed release .*2-0-0/);
    expect(destroyed.stdout).toMatch(/removed the environment's HAProxy load balancer/);
    const history = await kiln(["history"]);
    expect(history.stdout.trim().split("\n").at(-1)).toMatch(/destroyed/);
    const status = await kiln(["status", "--json"]);
    expect(status.code).toBe(0);
    expect((JSON.parse(status.stdout) as { state: string }).state).toBe("destroyed");
    const rollback = await kiln(["rollback"]);
    expect(rollback.code).toBe(2);
    expect(rollback.stderr).toMatch(/dev was destroyed/);
    expect(rollback.stderr).toMatch(/kiln promote/);
  });
});
