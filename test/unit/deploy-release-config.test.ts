// Issue 18: a release is an image plus its environment's launch configuration (item 1), restart
// (item 1), rollback --to (item 5), and the plan's zones and health gate (item 12).
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadEnvironment } from "../../src/config/environments.js";
import { configChanges, launchConfig } from "../../src/deploy/launch-config.js";
import { describeStep, findRollbackTarget, planBlueGreen, planScale, releaseId } from "../../src/deploy/plan.js";
import type { HistoryEntry, LiveState } from "../../src/deploy/types.js";
import { InputError } from "../../src/errors.js";
import { appendHistory, historyFromTags } from "../../src/providers/aws/history.js";
import { awsEnv, env, now, release, state, v1, v2 } from "./helpers/deploy-fixtures.js";

const aws = awsEnv;

/** v2 live with `live` as its environment, recorded in history with its launch configuration. */
function liveWith(live: typeof env | typeof aws): LiveState {
  const id = releaseId(live, v2, "2.0.0");
  const entry: HistoryEntry = { release: id, image: v2, result: "live", at: "1", config: launchConfig(live) };
  return { infrastructure: true, releases: [release(id, v2, true)], history: [entry] };
}

describe("a release is an image plus its launch configuration (item 1)", () => {
  it("the same image with a changed env: is a blue/green release that says what changed", () => {
    const before = { ...env, env: { GREETING: "hello", DEBUG: "1" } };
    const after = { ...env, env: { GREETING: "bonjour", LANG: "fr" } };
    const plan = planBlueGreen(after, v2, "2.0.0", liveWith(before), now);
    const green = releaseId(after, v2, "2.0.0");
    expect(green).not.toBe(releaseId(before, v2, "2.0.0"));
    expect(plan.steps.map((s) => s.kind)).toEqual([
      "launch",
      "wait-healthy",
      "switch-traffic",
      "drain",
      "delete-release",
      "record",
      "record",
    ]);
    expect(plan.summary).toBe(
      `shop:2.0.0 → dev (${green}), blue/green; same image, launch configuration changed: env.DEBUG removed, env.GREETING changed, env.LANG added`,
    );
    expect(plan.steps.find((s) => s.kind === "record")).toMatchObject({ entry: { result: "live", config: launchConfig(after) } });
  });

  it("an unchanged configuration is still already live", () => {
    expect(planBlueGreen(env, v2, "2.0.0", liveWith(env), now).summary).toBe("shop:2.0.0 is already live in dev; nothing to do");
  });

  it("on AWS the instance type and health check are launch settings too, shown with their values", () => {
    const bigger = { ...aws, instanceType: "m7i.large", health: { ...aws.health, path: "/ready" } };
    expect(planBlueGreen(bigger, v2, "2.0.0", liveWith(aws), now).summary).toMatch(
      /same image, launch configuration changed: healthcheck\.path \/healthz → \/ready, instanceType t3\.micro → m7i\.large$/,
    );
  });

  it("a live release recorded before configurations were (old history) gets a plan that says so", () => {
    const old: LiveState = {
      infrastructure: true,
      releases: [release("shop-dev-2-0-0-2222222", v2, true)],
      history: [{ release: "shop-dev-2-0-0-2222222", image: v2, result: "live", at: "1" }],
    };
    expect(planBlueGreen(env, v2, "2.0.0", old, now).summary).toMatch(
      /same image, launch configuration not recorded for the live release$/,
    );
  });

  it("env values are not in the summary (they may be secrets), only that they changed", () => {
    const config = launchConfig({ ...env, env: { TOKEN: "s3cret-value" } });
    expect(JSON.stringify(config)).not.toContain("s3cret");
    expect(configChanges(launchConfig(env), config)).toEqual(["env.TOKEN added"]);
  });

  it("AWS release names stay inside AWS's limits with the configuration hash", () => {
    const long = { ...aws, app: "a".repeat(63), name: "e".repeat(21) };
    const id = releaseId(long, v2, "1".repeat(64));
    expect(id).toMatch(/-[0-9a-f]{7}-[0-9a-f]{6}$/);
  });

  it("AWS history tags carry the configuration (its settings when they fit); entries written before still read", () => {
    const single = { ...aws, mode: "single-instance", instances: 1, env: { GREETING: "hi" } } as const;
    const at = "2026-01-01T00:00:00.000Z";
    const entry: HistoryEntry = { release: "r1", image: v1, result: "live", at, config: launchConfig(single) };
    const { set } = appendHistory({}, entry);
    expect(Object.values(set)[0]!.length).toBeLessThanOrEqual(256);
    expect(Object.values(set)[0]).toMatch(/^[A-Za-z0-9 _.:/=+\-@]*$/);
    expect(historyFromTags(set)).toEqual([entry]);
    // A load balancer's health check settings do not fit next to the entry: the hash does, and the plan says so.
    const big = launchConfig({ ...aws, env: { A: "1", B: "2", C: "3" } });
    const kept = historyFromTags(appendHistory({}, { ...entry, config: big }).set)[0]!;
    expect(kept.config).toEqual({ hash: big.hash });
    expect(configChanges(kept.config!, launchConfig(aws))).toEqual([
      `${big.hash} → ${launchConfig(aws).hash} (the live release's settings were too long to record)`,
    ]);
    const old = { "kiln:h:000001": `live 2026-01-01T00:00:00.000Z ${v1.digest} ${v1.ref} r0` };
    expect(historyFromTags(old)).toEqual([{ release: "r0", image: v1, result: "live", at: "2026-01-01T00:00:00.000Z" }]);
  });
});

describe("scale after a configuration change (item 1)", () => {
  it("a local scale-up refuses to mix two configurations in one release; AWS scales from the release's template", () => {
    const live = liveWith(env);
    const changed = { ...env, env: { GREETING: "new" } };
    expect(() => planScale(changed, live, 4)).toThrow(/configuration of dev in kiln.yml changed since .* was released/);
    expect(planScale(env, live, 4).steps.map((s) => s.kind)).toEqual(["scale", "wait-healthy"]);
    expect(planScale(changed, live, 1).steps.map((s) => s.kind)).toEqual(["scale", "wait-healthy"]);
  });
});

describe("drift of the shared resources (item 2)", () => {
  it("a live release with a drifted load balancer: only the fix is planned, and the summary says so", () => {
    const live = { ...liveWith(env), drift: ["HAProxy listens on 127.0.0.1:8000, the environment says 8001"] };
    const plan = planBlueGreen(env, v2, "2.0.0", live, now);
    expect(plan.steps.map(describeStep)).toEqual([
      "bring the environment's HAProxy load balancer back in line: HAProxy listens on 127.0.0.1:8000, the environment says 8001",
    ]);
    expect(plan.summary).toBe("shop:2.0.0 is already live in dev; only the shared resources change");
  });
});

describe("restart: new instances of the same release (item 1)", () => {
  it("plans a blue/green swap to a fresh copy of the live release, and converges after an interruption", () => {
    const live = liveWith(env);
    const current = live.releases[0]!.id;
    const plan = planBlueGreen(env, v2, "2.0.0", live, now, undefined, { restart: true });
    const launch = plan.steps.find((s) => s.kind === "launch");
    expect(launch).toMatchObject({ kind: "launch", release: `${current}-r1` });
    expect(plan.steps.find((s) => s.kind === "switch-traffic")).toEqual({ kind: "switch-traffic", to: `${current}-r1`, from: [current] });
    expect(plan.summary).toBe(`restart ${current} in dev: new instances of the same image and configuration (${current}-r1), blue/green`);
    // Interrupted after the launch: the copy is reused, nothing launched twice.
    const midway: LiveState = { ...live, releases: [...live.releases, release(`${current}-r1`, v2, false)] };
    expect(planBlueGreen(env, v2, "2.0.0", midway, now, undefined, { restart: true }).steps.map((s) => s.kind)).toEqual([
      "wait-healthy",
      "switch-traffic",
      "drain",
      "delete-release",
      "record",
      "record",
    ]);
    // A promote of the same image and configuration after a restart: already live.
    const restarted: LiveState = { ...live, releases: [release(`${current}-r1`, v2, true)] };
    expect(planBlueGreen(env, v2, "2.0.0", restarted, now).steps).toEqual([]);
    expect(planBlueGreen(env, v2, "2.0.0", restarted, now, undefined, { restart: true }).steps[0]).toMatchObject({
      kind: "launch",
      release: `${current}-r2`,
    });
  });
});

describe("rollback --to (item 5)", () => {
  const h = (release: string, image: typeof v1, result: HistoryEntry["result"], at: string): HistoryEntry => ({
    release,
    image,
    result,
    at,
  });
  const v3 = { ref: "shop:3.0.0", digest: `sha256:${"3".repeat(64)}` };
  const live: LiveState = {
    infrastructure: true,
    releases: [release("shop-dev-3-0-0-3333333", v3, true)],
    history: [
      h("shop-dev-1-0-0-1111111", v1, "live", "1"),
      h("shop-dev-2-0-0-2222222", v2, "live", "2"),
      h("shop-dev-1-0-0-1111111", v1, "replaced", "2"),
      h("shop-dev-bad", { ref: "shop:9.9.9", digest: `sha256:${"9".repeat(64)}` }, "failed", "3"),
      h("shop-dev-3-0-0-3333333", v3, "live", "4"),
      h("shop-dev-2-0-0-2222222", v2, "replaced", "4"),
    ],
  };
  it("finds any kept release by release id, version, name:version or digest prefix", () => {
    expect(findRollbackTarget(live, "1.0.0", "dev")).toEqual(v1);
    expect(findRollbackTarget(live, "shop-dev-1-0-0-1111111", "dev")).toEqual(v1);
    expect(findRollbackTarget(live, "shop:2.0.0", "dev")).toEqual(v2);
    expect(findRollbackTarget(live, "sha256:2222222", "dev")).toEqual(v2);
    expect(findRollbackTarget(live, "2222222", "dev")).toEqual(v2);
  });
  it("refuses a failed or unknown release, listing the candidates", () => {
    for (const to of ["9.9.9", "4.0.0", "3.0.0"]) {
      let error: unknown;
      try {
        findRollbackTarget(live, to, "dev");
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(InputError);
      expect((error as InputError).message).toContain(`no kept release of dev matches '${to}'`);
      expect((error as InputError).hint).toMatch(/shop:2\.0\.0 \(shop-dev-2-0-0-2222222\), shop:1\.0\.0 \(shop-dev-1-0-0-1111111\)/);
    }
  });
});

describe("the plan's zones and health gate (item 12)", () => {
  it("one instance names only the zone it goes to", () => {
    const one = { ...env, instances: 1 };
    expect(planBlueGreen(one, v2, "2.0.0", state(true), now).steps.map(describeStep)[0]).toBe(
      `launch ${releaseId(one, v2, "2.0.0")}: 1 × shop:2.0.0 in zone-a`,
    );
  });

  it("the health gate is kiln.yml's healthcheck.timeout when the environment sets none", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "kiln-timeout-"));
    writeFileSync(
      path.join(dir, "kiln.yml"),
      "name: shop\nhealthcheck:\n  path: /healthz\n  timeout: 45\nenvironments:\n  dev: {}\n  test:\n    healthcheck: { timeout: 90 }\n",
    );
    const dev = await loadEnvironment(dir, "shop", "/healthz", "dev");
    const test = await loadEnvironment(dir, "shop", "/healthz", "test");
    expect(planBlueGreen(dev, v2, "2.0.0", state(true), now).steps.map(describeStep)[1]).toMatch(/\(≤ 45s\)$/);
    expect(test.health.timeoutSeconds).toBe(90);
  });
});
