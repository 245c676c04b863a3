import { afterEach } from "vitest";
/** Shared set-up for integration tests: one kiln home per suite run (downloads reused), helpers to bake and boot. */
import { execFileSync, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { appendFileSync, cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { bake } from "../../src/bake/bake.js";
import { kilnHome, type KilnHome } from "../../src/home.js";
import type { Progress } from "../../src/progress.js";
import type { DiskBus } from "../../src/providers/qemu-args.js";
import { findFreePort } from "../../src/run/ports.js";
import { runImage, type RunOutcome } from "../../src/run/run.js";

export const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** Persistent across runs (gitignored): package downloads and layer caches are reused. */
export function sharedHome(): KilnHome {
  return kilnHome({ KILN_HOME: process.env.KILN_TEST_HOME ?? path.join(repo, ".kiln-test", "home") });
}

export function freshHome(prefix = "kiln-home-"): KilnHome {
  return kilnHome({ KILN_HOME: mkdtempSync(path.join(os.tmpdir(), prefix)) });
}

export const quiet: Progress = {
  step: async (_label, work) => work(),
  info: () => undefined,
};

export type TestKernel = "debian" | "minimal";

/**
 * Bakes an example as it is; with the minimal kernel, a scratch copy with `kernel: minimal`
 * added to its kiln.yml, so the example's own kiln.lock (which pins the Debian kernel) stays as committed.
 */
export async function bakeExample(name: string, home: KilnHome, overrides = {}, kernel: TestKernel = "debian") {
  const example = path.join(repo, "examples", name);
  if (name === "hello-native") execFileSync("make", ["-s", "-C", example]);
  if (kernel === "debian") return bake(example, overrides, home, quiet);
  const copy = mkdtempSync(path.join(os.tmpdir(), `kiln-${name}-minimal-`));
  try {
    cpSync(example, copy, { recursive: true });
    appendFileSync(path.join(copy, "kiln.yml"), "\nkernel: minimal\n");
    // The copy's directory name would become a native app's name.
    return await bake(copy, { name, ...overrides }, home, quiet);
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
}

/**
 * A scratch copy of hello-native (built) and one image per version, each with different app
 * bytes (data.txt), so every version has its own digest: the releases of a deploy test.
 * `writeConfig` writes the copy's kiln.yml first (and may be called again by the test).
 */
export async function bakeNativeReleases(
  name: string,
  versions: readonly string[],
  home: KilnHome,
  writeConfig: (dir: string) => void,
): Promise<{ app: string; images: { ref: string; digest: string }[] }> {
  execFileSync("make", ["-s", "-C", path.join(repo, "examples", "hello-native")]);
  const app = mkdtempSync(path.join(os.tmpdir(), `kiln-${name}-`));
  cpSync(path.join(repo, "examples", "hello-native"), app, { recursive: true });
  writeConfig(app);
  const images: { ref: string; digest: string }[] = [];
  for (const version of versions) {
    writeFileSync(path.join(app, "data.txt"), randomUUID());
    const { image } = await bake(app, { name, version }, home, quiet);
    images.push({ ref: image.ref, digest: image.digest });
  }
  return { app, images };
}

/** `healthTimeoutSeconds` (default 180) gives slow starters (a JVM under TCG) more time; `kilnEnv` is `kiln run --kiln-env`. */
export async function boot(
  ref: string,
  home: KilnHome,
  options: {
    firmware?: "bios" | "uefi";
    env?: string[];
    guestPort?: number;
    healthTimeoutSeconds?: number;
    kilnEnv?: string;
    diskBus?: DiskBus;
  } = {},
): Promise<RunOutcome & { port: number }> {
  const port = await findFreePort();
  const outcome = await runImage(
    {
      ref,
      ports: [`${port}:${options.guestPort ?? 8080}`],
      env: options.env ?? [],
      firmware: options.firmware ?? "bios",
      console: false,
      detach: false,
      healthTimeoutSeconds: options.healthTimeoutSeconds ?? 180,
      ...(options.kilnEnv !== undefined ? { kilnEnv: options.kilnEnv } : {}),
      ...(options.diskBus ? { diskBus: options.diskBus } : {}),
    },
    home,
  );
  return { ...outcome, port };
}

export async function httpGet(url: string): Promise<{ status: number; body: string }> {
  const response = await fetch(url);
  return { status: response.status, body: await response.text() };
}

/** Runs the real CLI; resolves with exit code and output. */
export function cli(
  args: string[],
  env: Record<string, string> = {},
  onStderr?: (text: string, child: ReturnType<typeof spawn>) => void,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    // "--" as in bin/kiln.js's #! line: Node 20 would read kiln's --env-file as its own.
    const child = spawn(process.execPath, ["--", path.join(repo, "bin", "kiln.js"), ...args], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      onStderr?.(stderr, child);
    });
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

export { processAlive } from "../../src/process-alive.js";

/** VMs a test file booted; each is shut down and cleaned up after every test. */
export function trackRuns(): RunOutcome[] {
  const running: RunOutcome[] = [];
  afterEach(async () => {
    for (const run of running.splice(0)) {
      await run.vm.shutdown(20_000);
      await run.vm.cleanup();
    }
  });
  return running;
}
