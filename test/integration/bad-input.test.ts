// Proves that the real `kiln` CLI (bin/kiln.js, run as a subprocess) turns bad input into one
// clear error paragraph on stderr ("kiln: error: …" plus a "hint:" line) with the documented
// exit code: missing or unrecognisable app directories, a broken kiln.yml (every problem
// listed), an executable for the wrong CPU, a missing shared library, QEMU not installed, an
// unknown image and a host port already in use. It also proves that failed bakes leave
// nothing half-written in KILN_HOME (no images, no refs, an empty tmp/, no kiln.lock), and that
// `kiln run` refuses before QEMU starts (no VM directory is created). No VM is booted.
//
// Needs: dist/ built (npx tsc -p .), apt with network to the Debian mirror, gcc, make.
// Package downloads go to one shared cache (KILN_TEST_CACHE, default <tmpdir>/kiln-bad-input-cache,
// kept between runs) that every per-group KILN_HOME links to as its cache/.
import { execFile, spawn } from "node:child_process";
import { chmod, cp, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EM, ET, buildElf } from "../unit/helpers/elf-builder.js";

const execFileAsync = promisify(execFile);
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const kilnBin = path.join(repo, "bin", "kiln.js");
const sharedCache = process.env.KILN_TEST_CACHE ?? path.join(os.tmpdir(), "kiln-bad-input-cache");

const SECOND = 1000;
const FAST = 30 * SECOND;
const BAKE = 180 * SECOND;

interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `node bin/kiln.js …` with KILN_HOME set. If the output ever shows that a VM is being
 * booted (which none of these cases may do), kiln gets SIGTERM at once, which shuts the VM down.
 */
function kiln(args: readonly string[], options: { home: string; env?: Record<string, string>; timeoutMs?: number }): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [kilnBin, ...args], {
      cwd: repo,
      env: { ...process.env, KILN_HOME: options.home, ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let stopped = false;
    const stop = () => {
      if (stopped) return;
      stopped = true;
      child.kill("SIGTERM");
    };
    const timer = setTimeout(stop, options.timeoutMs ?? FAST);
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      if (/^Booting /m.test(stderr)) stop();
    });
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/**
 * The error block kiln prints: "kiln: error: <message>" up to the end of stderr. It must be one
 * paragraph (no blank lines, no stack trace) ending in a "  hint: …" line.
 */
function errorBlock(result: CliResult): string {
  const start = result.stderr.indexOf("kiln: error: ");
  expect(start, `no "kiln: error:" in stderr:\n${result.stderr}`).toBeGreaterThanOrEqual(0);
  return result.stderr.slice(start).trimEnd();
}

function expectCleanError(result: CliResult, exitCode: number, options: { hint?: boolean } = {}): string {
  expect(result.signal, result.stderr).toBeNull();
  expect(result.code, result.stderr).toBe(exitCode);
  expect(result.stdout).toBe("");
  expect(result.stderr).not.toMatch(/unexpected error/);
  expect(result.stderr).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);
  const block = errorBlock(result);
  expect(block).not.toMatch(/\n\s*\n/);
  const lines = block.split("\n");
  if (options.hint ?? true) {
    expect(lines.at(-1), block).toMatch(/^ {2}hint: \S.*$/);
    expect(lines.filter((l) => l.startsWith("  hint: "))).toHaveLength(1);
  }
  return block;
}

/** A KILN_HOME in a temp dir whose cache/ is the shared download cache. */
async function newHome(prefix: string): Promise<string> {
  const home = await mkdtemp(path.join(os.tmpdir(), `kiln-bad-input-${prefix}-`));
  await mkdir(sharedCache, { recursive: true });
  await symlink(sharedCache, path.join(home, "cache"), "dir");
  return home;
}

async function entries(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [] as string[])).sort();
}

/** Nothing half-written: no images, no refs, no leftover scratch directories. */
async function expectNothingStored(home: string): Promise<void> {
  expect(await entries(path.join(home, "images"))).toEqual([]);
  expect(await entries(path.join(home, "refs"))).toEqual([]);
  expect(await entries(path.join(home, "tmp"))).toEqual([]);
}

async function listen(): Promise<{ port: number; close: () => Promise<void> }> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: 0 }, () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  return { port, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

const cleanup: string[] = [];
let scratch: string;

beforeAll(async () => {
  expect(existsSync(path.join(repo, "dist", "src", "cli", "main.js")), "build first: npx tsc -p .").toBe(true);
  scratch = await mkdtemp(path.join(os.tmpdir(), "kiln-bad-input-apps-"));
  cleanup.push(scratch);
});

afterAll(async () => {
  for (const dir of cleanup) await rm(dir, { recursive: true, force: true });
});

async function appDir(name: string): Promise<string> {
  const dir = path.join(scratch, name);
  await mkdir(dir, { recursive: true });
  return dir;
}

describe.sequential("kiln bake: bad input is refused with one clear error", () => {
  let home: string;

  beforeAll(async () => {
    home = await newHome("bake");
    cleanup.push(home);
  });

  it("a missing directory: exit 2, names the path, hints what to give", { timeout: FAST }, async () => {
    const missing = path.join(scratch, "no-such-app");
    const result = await kiln(["bake", missing], { home });
    const block = expectCleanError(result, 2);
    expect(block).toContain(`app path ${missing} does not exist`);
    expect(block).toMatch(/hint: .*package\.json/);
  });

  it("a directory with neither package.json nor an executable: exit 2, says what kiln looks for", { timeout: FAST }, async () => {
    const dir = await appDir("nothing-here");
    await writeFile(path.join(dir, "README.md"), "# not an app\n");
    await writeFile(path.join(dir, "run.sh"), "#!/bin/sh\necho hi\n");
    await chmod(path.join(dir, "run.sh"), 0o755);
    const result = await kiln(["bake", dir], { home });
    const block = expectCleanError(result, 2);
    expect(block).toContain(dir);
    expect(block).toMatch(/no package\.json/);
    expect(block).toMatch(/no ELF executable/);
  });

  it("a broken kiln.yml: exit 2, every problem listed with its path, in one error", { timeout: FAST }, async () => {
    const dir = await appDir("broken-yml");
    await writeFile(
      path.join(dir, "package.json"),
      JSON.stringify({ name: "broken", version: "1.0.0", scripts: { start: "node server.js" } }),
    );
    await writeFile(path.join(dir, "server.js"), "");
    await writeFile(
      path.join(dir, "kiln.yml"),
      [
        "name: Broken_App",
        "port: 99999",
        "colour: blue",
        "env:",
        "  2FAST: yes",
        "healthcheck:",
        "  path: healthz",
        "resources:",
        "  memory: lots",
        "",
      ].join("\n"),
    );
    const result = await kiln(["bake", dir, "--cmd", "node a.js && node b.js"], { home });
    // A SpecError carries no hint today (see the report): only the problem list is required.
    const block = expectCleanError(result, 2, { hint: false });
    const lines = block.split("\n");
    expect(lines[0]).toBe(`kiln: error: ${path.join(dir, "kiln.yml")} has 7 problems:`);
    const problems = lines.slice(1).filter((l) => l.startsWith("  - "));
    expect(problems).toHaveLength(7);
    for (const pattern of [
      /^ {2}- colour: unknown setting/,
      /^ {2}- name: 'Broken_App' must be lowercase/,
      /^ {2}- --cmd: 'node a\.js && node b\.js' uses the shell feature '&'/,
      /^ {2}- port: '99999' must be a TCP port number from 1 to 65535$/,
      /^ {2}- env\.2FAST: not a valid environment variable name$/,
      /^ {2}- healthcheck\.path: 'healthz' must start with \/ and hold only URL path characters/,
      /^ {2}- resources\.memory: 'lots' must be a whole number from 64 to 1048576$/,
    ]) {
      expect(problems).toContainEqual(expect.stringMatching(pattern));
    }
    // Refused before any work: no progress lines.
    expect(result.stderr).not.toMatch(/Baking /);
  });

  it("invalid YAML in kiln.yml: exit 2, says so", { timeout: FAST }, async () => {
    const dir = await appDir("bad-yaml");
    await writeFile(path.join(dir, "package.json"), JSON.stringify({ name: "badyaml", scripts: { start: "node server.js" } }));
    await writeFile(path.join(dir, "kiln.yml"), "name: badyaml\nenv: {A: 1\n");
    const result = await kiln(["bake", dir], { home });
    const block = expectCleanError(result, 2, { hint: false });
    // Issue 18 item 12: the line that exists (not line 3 of a 2-line file), its column, and its text.
    expect(block).toMatch(
      /kiln\.yml has 1 problem:\n {2}- not valid YAML at line 2, column 11 \(the end of the file\): .*\}.*: env: \{A: 1\n/,
    );
  });

  it("an aarch64 executable: exit 2 at the app stage, naming aarch64 and x86-64", { timeout: BAKE }, async () => {
    const dir = await appDir("arm-app");
    await writeFile(path.join(dir, "prog"), buildElf({ machine: EM.AARCH64, type: ET.EXEC }));
    await chmod(path.join(dir, "prog"), 0o755);
    const result = await kiln(["bake", dir, "--cmd", "./prog", "--port", "8080"], { home, timeoutMs: BAKE - 10 * SECOND });
    const block = expectCleanError(result, 2);
    expect(block).toMatch(/prog is a 64-bit aarch64 executable, but kiln images run on x86-64/);
    expect(block).toMatch(/hint: .*amd64/);
    // The earlier stages ran; the app stage is where it stopped.
    expect(result.stderr).toMatch(/App files\s+failed after/);
    expect(existsSync(path.join(dir, "kiln.lock"))).toBe(false);
    await expectNothingStored(home);
  });

  it("a dynamically linked executable whose shared library is gone: exit 2, names the library and who needs it", {
    timeout: BAKE,
  }, async () => {
    const build = await appDir("missing-lib-build");
    const dir = await appDir("missing-lib-app");
    await writeFile(path.join(build, "lib.c"), "int kiln_missing_answer(void) { return 42; }\n");
    await writeFile(
      path.join(build, "main.c"),
      "int kiln_missing_answer(void);\nint main(void) { return kiln_missing_answer() == 42 ? 0 : 1; }\n",
    );
    await execFileAsync("gcc", ["-shared", "-fPIC", "-o", path.join(build, "libkilnmissing.so"), path.join(build, "lib.c")]);
    await execFileAsync("gcc", ["-o", path.join(dir, "prog"), path.join(build, "main.c"), `-L${build}`, "-lkilnmissing"]);
    await rm(path.join(build, "libkilnmissing.so"));

    const result = await kiln(["bake", dir, "--port", "8080"], { home, timeoutMs: BAKE - 10 * SECOND });
    const block = expectCleanError(result, 2);
    expect(block).toMatch(/shared libraries not found:\n {2}- libkilnmissing\.so \(needed by \/app\/prog\)/);
    // libc itself was found in the Debian package; only the missing library is listed.
    expect(block).not.toMatch(/libc\.so\.6/);
    expect(block).toMatch(/hint: .*packages: in kiln\.yml/);
    expect(result.stderr).toMatch(/Shared libraries\s+failed after/);
    expect(existsSync(path.join(dir, "kiln.lock"))).toBe(false);
    await expectNothingStored(home);
  });

  it("left nothing half-written after all the failed bakes", async () => {
    await expectNothingStored(home);
    expect(await entries(path.join(home, "vms"))).toEqual([]);
  });
});

describe.sequential("kiln run: refused before QEMU starts", () => {
  let home: string;

  beforeAll(async () => {
    home = await newHome("run");
    cleanup.push(home);
  });

  it("bad --canary and --canary-for: exit 2, says what to type, before looking for the image", { timeout: FAST }, async () => {
    for (const [args, message] of [
      [["--canary", "80%"], "--canary: '80%' must be a percentage from 1% to 50%"],
      [["--canary-for", "5m"], "--canary-for needs --canary PERCENT"],
      [["--canary", "10%", "--canary-for", "5minutes"], "--canary-for: '5minutes' is not a duration"],
    ] as const) {
      const block = expectCleanError(await kiln(["promote", "nosuch:1.0", "--env", "dev", ...args], { home }), 2);
      expect(block).toContain(message);
      expect(block).toMatch(/hint: /);
    }
  });

  it("an image that is not in the store: not-found error naming the ref", { timeout: FAST }, async () => {
    const result = await kiln(["run", "nosuch:1.0", "--quiet"], { home });
    const block = expectCleanError(result, 6);
    expect(block).toContain("image nosuch:1.0 is not in the local store");
    expect(block).toMatch(/hint: .*kiln images/);
  });

  describe.sequential("with hello-native in the store", () => {
    let ref: string;
    let before: { images: string[]; refs: string[] };

    beforeAll(async () => {
      await execFileAsync("make", ["-s", "-C", path.join(repo, "examples", "hello-native")]);
      // Bake a copy, so the example's kiln.lock in the repository is never rewritten.
      const dir = path.join(scratch, "hello-native");
      await cp(path.join(repo, "examples", "hello-native"), dir, { recursive: true });
      const result = await kiln(["bake", dir, "--json"], { home, timeoutMs: BAKE - 10 * SECOND });
      expect(result.code, result.stderr).toBe(0);
      ref = (JSON.parse(result.stdout) as { ref: string }).ref;
      expect(ref).toBe("hello-native:0.1.0");
      before = { images: await entries(path.join(home, "images")), refs: await entries(path.join(home, "refs")) };
      expect(before.images).toHaveLength(1);
    }, BAKE);

    it("QEMU not on PATH: exit 3, names qemu-system-x86_64 and the Debian package", { timeout: FAST }, async () => {
      const emptyBin = await mkdtemp(path.join(os.tmpdir(), "kiln-bad-input-emptypath-"));
      cleanup.push(emptyBin);
      const { port, close } = await listen();
      await close();
      const result = await kiln(["run", ref, "-p", `${port}:8080`, "--quiet"], { home, env: { PATH: emptyBin } });
      const block = expectCleanError(result, 3);
      expect(block).toMatch(/qemu-system-x86_64 is not installed/);
      expect(block).toContain("apt-get install qemu-system-x86");
      expect(await entries(path.join(home, "vms"))).toEqual([]);
    });

    it("a host port already in use: exit 2, says the port is in use, no VM started", { timeout: FAST }, async () => {
      const { port, close } = await listen();
      try {
        const result = await kiln(["run", ref, "-p", `${port}:8080`, "--quiet"], { home });
        const block = expectCleanError(result, 2);
        expect(block).toContain(`port ${port} on 127.0.0.1 is already in use`);
        expect(block).toMatch(/hint: choose another host port/);
        expect(result.stderr).not.toMatch(/Booting /);
      } finally {
        await close();
      }
      expect(await entries(path.join(home, "vms"))).toEqual([]);
    });

    it("bad -p and -e values: exit 2, each one listed", { timeout: FAST }, async () => {
      const result = await kiln(["run", ref, "-p", "80:99999", "-p", "web", "--quiet"], { home });
      const block = expectCleanError(result, 2, { hint: false });
      expect(block).toContain("-p 80:99999: expected HOST_PORT:GUEST_PORT");
      expect(block).toContain("-p web: expected HOST_PORT:GUEST_PORT");
      // -e NAME passes the host's value, as docker run does: here the host has none.
      const envResult = await kiln(["run", ref, "-p", "18080:8080", "-e", "1BAD=x", "-e", "KILN_TEST_UNSET_NAME", "--quiet"], { home });
      const envBlock = expectCleanError(envResult, 2, { hint: false });
      expect(envBlock).toContain("-e 1BAD: not a valid environment variable name");
      expect(envBlock).toContain("KILN_TEST_UNSET_NAME is not set in this shell");
      expect(await entries(path.join(home, "vms"))).toEqual([]);
    });

    it("the failed runs changed nothing in the store", async () => {
      expect(await entries(path.join(home, "images"))).toEqual(before.images);
      expect(await entries(path.join(home, "refs"))).toEqual(before.refs);
      expect(await entries(path.join(home, "tmp"))).toEqual([]);
    });
  });
});
