// kiln pipeline run for real: local environments dev → test (QEMU + HAProxy, one instance each)
// promote through each gate (promote's health gate, then a soak with periodic health checks);
// a run whose image fails test's health gate stops there with a report while test keeps serving
// the previous image; an approval stage waits for --approve; an AWS stage (moto, the SDK's real
// clients, an injected health source) promotes through and stops when its gate fails. Every
// step is in the run log, and each environment's history has the releases.
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAwsClients } from "../../src/aws/clients.js";
import { targetHealth } from "../../src/aws/elbv2.js";
import { bake } from "../../src/bake/bake.js";
import { destroyEnv, envStatus, type ProviderFactory } from "../../src/deploy/promote.js";
import { runPipeline, type PipelineReport } from "../../src/pipeline/run.js";
import { AwsProvider, type HealthSource } from "../../src/providers/aws/provider.js";
import { LocalProvider } from "../../src/providers/local/provider.js";
import { findFreePort } from "../../src/run/ports.js";
import type { AwsEnvironment } from "../../src/config/environments.js";
import { cli, quiet, repo, sharedHome } from "./harness.js";
import { startMoto, useEmulatorCredentials, type Moto } from "./moto.js";

const home = sharedHome();
const APP = "pipedemo";
let app: string;
let ports: { dev: number; test: number };
let refs: { v1: string; v2: string };
let moto: Moto | undefined;

interface ConfigOptions {
  testEnv?: string;
  testTimeout?: number;
  testApproval?: boolean;
  stages?: string;
}

function writeConfig(o: ConfigOptions = {}): void {
  const health = (timeout: number) => `healthcheck: { path: /healthz, interval: 1, healthyThreshold: 2, timeout: ${timeout} }`;
  const stages =
    o.stages ??
    `    - { env: dev, soak: 3, checkInterval: 1 }\n    - { env: test, soak: 2, checkInterval: 1${o.testApproval ? ", approval: true" : ""} }\n`;
  writeFileSync(
    path.join(app, "kiln.yml"),
    [
      `name: ${APP}`,
      "cmd: ./server --listen 8080",
      "port: 8080",
      "healthcheck:",
      "  path: /healthz",
      "environments:",
      `  dev: { target: local, port: ${ports.dev}, instances: 1, deregistrationDelay: 0, ${health(120)} }`,
      `  test: { target: local, port: ${ports.test}, instances: 1, deregistrationDelay: 0, ${health(o.testTimeout ?? 120)}${o.testEnv ? `, env: { ${o.testEnv} }` : ""} }`,
      "  prod: { target: aws, region: eu-west-1, instances: 1, min: 1, max: 1, deregistrationDelay: 0, after: [dev], healthcheck: { path: /healthz, timeout: 5 } }",
      "pipeline:",
      "  stages:",
      stages,
    ].join("\n"),
  );
}

function providers(health?: HealthSource): ProviderFactory {
  return (env, h) => {
    if (env.target === "local") return new LocalProvider(env, h);
    const clients = createAwsClients({ region: env.region, endpoint: moto!.endpoint, maxAttempts: 1 });
    return new AwsProvider(env as AwsEnvironment, clients, h, { pollMs: 50, ...(health ? { health } : {}) });
  };
}

const run = (extra: Partial<Parameters<typeof runPipeline>[0]> = {}) =>
  runPipeline({ home, config: app, progress: quiet, providers: providers(), ...extra });
const steps = (r: PipelineReport) => r.steps.map((s) => `${s.kind}${s.stage ? ` ${s.stage}` : ""}: ${s.status}`);
const servedImage = async (port: number) => ((await (await fetch(`http://127.0.0.1:${port}/`)).json()) as { image: string }).image;

beforeAll(async () => {
  execFileSync("make", ["-s", "-C", path.join(repo, "examples", "hello-native")]);
  app = mkdtempSync(path.join(os.tmpdir(), "kiln-pipeline-"));
  cpSync(path.join(repo, "examples", "hello-native"), app, { recursive: true, filter: (src) => !src.endsWith("kiln.lock") });
  ports = { dev: await findFreePort(), test: await findFreePort() };
  writeConfig();
  const v1 = await bake(app, { version: "1.0.0" }, home, quiet);
  writeFileSync(path.join(app, "data.txt"), "v2\n");
  const v2 = await bake(app, { version: "2.0.0" }, home, quiet);
  refs = { v1: v1.image.ref, v2: v2.image.ref };
});

afterAll(async () => {
  for (const envName of ["dev", "test"]) await destroyEnv({ home, config: app, envName, progress: quiet, app: APP }).catch(() => undefined);
  await moto?.stop();
});

describe.sequential("kiln pipeline run", () => {
  it("promotes an image through dev → test, each gate healthy and soaked", async () => {
    const report = await run({ image: refs.v1 });
    expect(report.status, JSON.stringify(report.steps, null, 2)).toBe("succeeded");
    expect(steps(report)).toEqual(["image: ok", "promote dev: ok", "soak dev: ok", "promote test: ok", "soak test: ok"]);
    expect(await servedImage(ports.dev)).toBe(refs.v1);
    expect(await servedImage(ports.test)).toBe(refs.v1);
    // The run log on disk is the report; the environments keep their own history.
    expect(JSON.parse(readFileSync(report.log, "utf8"))).toEqual(JSON.parse(JSON.stringify(report)));
    for (const envName of ["dev", "test"]) {
      const status = await envStatus({ home, config: app, envName, progress: quiet, app: APP });
      expect(status.live.history.map((h) => [h.result, h.image.ref])).toContainEqual(["live", refs.v1]);
    }
  });

  it("stops at the stage whose health gate fails, with a report; that stage keeps serving the previous image", async () => {
    // test hands the app PORT=9999 at boot: it listens there, and test's health checks on 8080 never pass.
    writeConfig({ testEnv: 'PORT: "9999"', testTimeout: 25 });
    const report = await run({ image: refs.v2 });
    expect(report.status).toBe("failed");
    expect(report.stoppedAt).toBe("test");
    expect(steps(report)).toEqual(["image: ok", "promote dev: ok", "soak dev: ok", "promote test: failed"]);
    expect(report.steps.at(-1)!.detail).toMatch(/did not become healthy/);
    expect(await servedImage(ports.dev)).toBe(refs.v2);
    expect(await servedImage(ports.test)).toBe(refs.v1);
    const test = await envStatus({ home, config: app, envName: "test", progress: quiet, app: APP });
    expect(test.live.history.at(-1)).toMatchObject({ result: "failed", image: { ref: refs.v2 } });
    writeConfig();
  });

  it("an approval stage waits for --approve (CLI exit code 12), then runs", async () => {
    writeConfig({ testApproval: true });
    const env = { KILN_HOME: home.root };
    const waiting = await cli(["pipeline", "run", "--config", app, "--image", refs.v2, "--json"], env);
    expect(waiting.code, waiting.stderr).toBe(12);
    const report = JSON.parse(waiting.stdout) as PipelineReport;
    expect(report).toMatchObject({ status: "waiting-approval", stoppedAt: "test" });
    expect(steps(report)).toEqual(["image: ok", "promote dev: ok", "approval test: waiting"]);
    expect(report.steps.at(-1)!.detail).toContain("--approve test");
    const shown = await cli(["pipeline", "show", "--config", app], env);
    expect(shown.stdout).toContain("dev (soak 3s) → test (soak 2s) [approval]");
    expect(shown.stdout).toMatch(/waiting-approval/);
    expect(await servedImage(ports.test)).toBe(refs.v1);
    const approved = await run({ image: refs.v2, approve: ["test"] });
    expect(steps(approved)).toEqual(["image: ok", "promote dev: ok", "approval test: ok", "promote test: ok", "soak test: ok"]);
    expect(await servedImage(ports.test)).toBe(refs.v2);
    writeConfig();
  });

  it("an AWS stage (emulator) promotes through its gate, and stops the run when its gate fails", async () => {
    useEmulatorCredentials();
    moto = await startMoto();
    writeConfig({ stages: "    - { env: dev }\n    - { env: prod, soak: 1, checkInterval: 1 }\n" });
    const ok = await run({ image: refs.v2 });
    expect(ok.status, JSON.stringify(ok.steps, null, 2)).toBe("succeeded");
    expect(steps(ok)).toEqual(["image: ok", "promote dev: ok", "promote prod: ok", "soak prod: ok"]);
    const prod = await envStatus({ home, config: app, envName: "prod", progress: quiet, app: APP, providers: providers() });
    expect(prod.live.releases.filter((r) => r.serving).map((r) => r.image.ref)).toEqual([refs.v2]);

    await moto.reset();
    const unhealthy: HealthSource = async (arn) => {
      const clients = createAwsClients({ region: "eu-west-1", endpoint: moto!.endpoint, maxAttempts: 1 });
      return (await targetHealth(clients, arn)).map((t) => ({ ...t, state: "unhealthy", reason: "Target.ResponseCodeMismatch" }));
    };
    const failed = await run({ image: refs.v2, providers: providers(unhealthy) });
    expect(failed.status).toBe("failed");
    expect(failed.stoppedAt).toBe("prod");
    expect(steps(failed)).toEqual(["image: ok", "promote dev: ok", "promote prod: failed"]);
    expect(failed.steps.at(-1)!.detail).toMatch(/ResponseCodeMismatch/);
    expect(existsSync(failed.log)).toBe(true);
    writeConfig();
  });
});
