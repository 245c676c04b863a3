// Issue 12, hole 10: an over-long path or an unreadable file in the app directory must end in
// a clear input error naming the file (exit code 2), not "unexpected error" and a stack trace.
// `kiln bake` is run in-process on a native app; both failures happen while the app's files are
// staged, before anything is downloaded or spawned. The unreadable file needs a user the
// permission check applies to, so that case runs with the effective uid of "nobody".
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.js";
import { buildElf, ET } from "./helpers/elf-builder.js";

const NOBODY = 65534;
let base: string;
let app: string;
let stderr: string;
const originalWrite = process.stderr.write.bind(process.stderr);
const originalHome = process.env.KILN_HOME;

beforeEach(async () => {
  base = await mkdtemp(path.join(os.tmpdir(), "kiln-fs-errors-"));
  app = path.join(base, "app");
  await mkdir(app);
  await writeFile(path.join(app, "server"), buildElf({ type: ET.EXEC }), { mode: 0o755 });
  await mkdir(path.join(base, "home"));
  process.env.KILN_HOME = path.join(base, "home");
  stderr = "";
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += chunk.toString();
    return true;
  }) as typeof process.stderr.write;
});

afterEach(async () => {
  process.stderr.write = originalWrite;
  if (originalHome === undefined) delete process.env.KILN_HOME;
  else process.env.KILN_HOME = originalHome;
  await removeDeep(app);
  await rm(base, { recursive: true, force: true });
});

const DEEP_NAME = "d".repeat(200);
const DEEP_LEVELS = 25;

/** A file whose absolute path is past PATH_MAX (4096), made one directory at a time with relative paths. */
async function makeDeepFile(root: string): Promise<string> {
  const before = process.cwd();
  try {
    process.chdir(root);
    for (let i = 0; i < DEEP_LEVELS; i++) {
      await mkdir(DEEP_NAME);
      process.chdir(DEEP_NAME);
    }
    await writeFile("deep.txt", "x");
  } finally {
    process.chdir(before);
  }
  return DEEP_NAME;
}

/** rm cannot name the deep end of that tree either: remove its lower half from halfway down first. */
async function removeDeep(root: string): Promise<void> {
  const before = process.cwd();
  try {
    process.chdir(root);
    for (let i = 0; i < DEEP_LEVELS / 2; i++) process.chdir(DEEP_NAME);
    await rm(DEEP_NAME, { recursive: true, force: true });
  } catch {
    // no deep tree in this test
  } finally {
    process.chdir(before);
  }
}

describe("file system errors in the app directory are input errors", () => {
  it("names an over-long path", async () => {
    const top = await makeDeepFile(app);
    const code = await main(["node", "kiln", "bake", app, "--cmd", "./server"]);
    expect(stderr).not.toMatch(/unexpected error/);
    expect(code).toBe(2);
    expect(stderr).toMatch(/kiln: error: .*path too long/);
    expect(stderr).toContain(top.slice(0, 50));
  });

  it.skipIf(process.getuid?.() !== 0)("names an unreadable file", async () => {
    await writeFile(path.join(app, "secret.dat"), "x", { mode: 0o000 });
    await chmod(path.join(app, "secret.dat"), 0o000);
    for (const dir of [base, app]) await chmod(dir, 0o755);
    await chown(path.join(base, "home"), NOBODY, NOBODY);
    process.seteuid!(NOBODY);
    let code: number;
    try {
      code = await main(["node", "kiln", "bake", app, "--cmd", "./server"]);
    } finally {
      process.seteuid!(0);
    }
    expect(stderr).not.toMatch(/unexpected error/);
    expect(code).toBe(2);
    expect(stderr).toMatch(/kiln: error: .*secret\.dat cannot be read \(permission denied\)/);
  });
});
