/**
 * npm run bench: bake and boot figures for both examples, each next to a baseline measured in
 * the same run on the same machine, so the numbers travel as ratios:
 *   - cold bake (empty kiln home, packages downloaded) vs warm app-only rebake;
 *   - image: raw / allocated / gzip-compressed size, split kernel/init/libs/runtime/app;
 *   - boot to healthy in QEMU (BIOS, UEFI) vs the same app started as a plain host process.
 * Then the realistic apps of bench/fixtures/ (bench/fixtures.ts): cold bake, warm rebakes after a
 * source and a dependency change, and the blocks each rebake's incremental push would upload.
 * `npm run bench -- NAME…` measures only the named rows (examples or fixtures).
 * The last stdout line is one JSON object with every figure.
 */
import { execFileSync, spawn } from "node:child_process";
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { bake } from "../src/bake/bake.js";
import { installRoot, kilnHome } from "../src/home.js";
import type { Progress } from "../src/progress.js";
import { type FixtureResult, fixtures, formatFixture, measureFixture } from "./fixtures.js";
import { probeHttp } from "../src/run/health.js";
import { findFreePort } from "../src/run/ports.js";
import { runImage } from "../src/run/run.js";
import { gzipSize } from "./gzip-size.js";

const quiet: Progress = { step: async (_l, work) => work(), info: () => undefined };
const repo = installRoot();

async function timeHostStart(example: string, port: number): Promise<number> {
  const dir = path.join(repo, "examples", example);
  const argv = example === "hello-node" ? [process.execPath, "server.js"] : ["./server", "--listen", String(port)];
  const started = performance.now();
  const child = spawn(argv[0]!, argv.slice(1), { cwd: dir, env: { ...process.env, PORT: String(port) }, stdio: "ignore" });
  try {
    for (;;) {
      if ((await probeHttp(`http://127.0.0.1:${port}/healthz`, 1000)) === 200) return (performance.now() - started) / 1000;
      await new Promise((r) => setTimeout(r, 10));
    }
  } finally {
    child.kill("SIGTERM");
  }
}

async function measure(example: string) {
  if (example === "hello-native") execFileSync("make", ["-s", "-C", path.join(repo, "examples", example)]);
  const app = mkdtempSync(path.join(os.tmpdir(), `kiln-bench-${example}-`));
  cpSync(path.join(repo, "examples", example), app, { recursive: true });
  rmSync(path.join(app, "kiln.lock"), { force: true });
  const home = kilnHome({ KILN_HOME: mkdtempSync(path.join(os.tmpdir(), "kiln-bench-home-")) });

  const overrides = { name: example };
  const cold = await bake(app, overrides, home, quiet);
  const noChange = await bake(app, overrides, home, quiet);
  // An app-only change: one new file in the app directory.
  writeFileSync(path.join(app, "bench-change.txt"), `changed at ${Date.now()}\n`);
  const warm = await bake(app, overrides, home, quiet);
  const m = warm.image.manifest;

  const boots: Record<string, number> = {};
  for (const firmware of ["bios", "uefi"] as const) {
    const port = await findFreePort();
    const run = await runImage(
      { ref: warm.image.ref, ports: [`${port}:8080`], env: [], firmware, console: false, detach: false, healthTimeoutSeconds: 300 },
      home,
    );
    boots[firmware] = run.bootToHealthySeconds ?? NaN;
    await run.vm.shutdown(20_000);
    await run.vm.cleanup();
  }
  const hostStart = await timeHostStart(example, await findFreePort());
  const gz = await gzipSize(warm.image.disk);
  rmSync(home.root, { recursive: true, force: true });
  rmSync(app, { recursive: true, force: true });
  return {
    example,
    coldBakeSeconds: cold.seconds,
    noChangeRebakeSeconds: noChange.seconds,
    appChangeRebakeSeconds: warm.seconds,
    warmOverColdRatio: warm.seconds / cold.seconds,
    rawBytes: m.sizes.rawDisk,
    allocatedBytes: m.sizes.allocated,
    gzipBytes: gz,
    split: { kernel: m.sizes.kernel, init: m.sizes.init, libs: m.sizes.libs, runtime: m.sizes.runtime, app: m.sizes.app },
    exceptKernelRuntimeAppBytes: m.sizes.init + m.sizes.libs,
    bootToHealthySeconds: boots,
    hostProcessStartSeconds: hostStart,
    vmOverHostStartRatio: { bios: boots.bios! / hostStart, uefi: boots.uefi! / hostStart },
  };
}

const mb = (b: number) => `${(b / 1024 / 1024).toFixed(1)} MiB`;
const examples = ["hello-native", "hello-node"];
const only = process.argv.slice(2);
const known = [...examples, ...fixtures.map((f) => f.name)];
const unknown = only.filter((name) => !known.includes(name));
if (unknown.length > 0) {
  process.stderr.write(`bench: no row named ${unknown.join(", ")}; rows: ${known.join(", ")}\n`);
  process.exit(2);
}
const wanted = (name: string) => only.length === 0 || only.includes(name);
const results = [];
for (const example of examples.filter(wanted)) {
  process.stderr.write(`measuring ${example}…\n`);
  const r = await measure(example);
  results.push(r);
  process.stdout.write(
    [
      `${example}`,
      `  bake: cold ${r.coldBakeSeconds.toFixed(2)}s (empty home, downloads included), no-change ${r.noChangeRebakeSeconds.toFixed(2)}s, app change ${r.appChangeRebakeSeconds.toFixed(2)}s (${(r.warmOverColdRatio * 100).toFixed(1)}% of cold)`,
      `  image: raw ${mb(r.rawBytes)}, allocated ${mb(r.allocatedBytes)}, gzip ${mb(r.gzipBytes)}`,
      `  split: kernel ${mb(r.split.kernel)}, init ${mb(r.split.init)}, libs ${mb(r.split.libs)}, runtime ${mb(r.split.runtime)}, app ${mb(r.split.app)}; all but kernel+runtime+app ${mb(r.exceptKernelRuntimeAppBytes)}`,
      `  boot to healthy: BIOS ${r.bootToHealthySeconds.bios!.toFixed(2)}s, UEFI ${r.bootToHealthySeconds.uefi!.toFixed(2)}s; same app as a host process ${r.hostProcessStartSeconds.toFixed(3)}s (VM/host ${r.vmOverHostStartRatio.bios.toFixed(0)}x BIOS)`,
      "",
    ].join("\n"),
  );
}
const fixtureResults: FixtureResult[] = [];
for (const fixture of fixtures.filter((f) => (f.onlyWhenNamed ? only.includes(f.name) : wanted(f.name)))) {
  process.stderr.write(`measuring ${fixture.name}…\n`);
  const r = await measureFixture(fixture);
  fixtureResults.push(r);
  process.stdout.write(formatFixture(r));
}
process.stdout.write(
  `${JSON.stringify({ machine: { cpus: os.cpus().length, kernel: os.release() }, results, fixtures: fixtureResults })}\n`,
);
