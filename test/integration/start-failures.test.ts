// Start failures explained by the console (issue 18, item 10): real bakes and QEMU boots of a tiny
// native app (test/fixtures/start-failures/start-fail.c) that exits with status 3, or writes next
// to itself under the read-only /app. restarts.maxQuickExits: 1 powers the VM off at the first
// exit, so `kiln run` learns of it at once. The error must say what happened, quote the app, keep
// the 0.0.0.0 hint out, and name a console file that exists. And `kiln stop` of an app that ignores
// SIGTERM says it was killed after stopTimeout (issue 18, item 12), not "clean".
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { bake } from "../../src/bake/bake.js";
import { UnhealthyError } from "../../src/errors.js";
import { findFreePort } from "../../src/run/ports.js";
import { boot, cli, quiet, repo, sharedHome } from "./harness.js";

const home = sharedHome();

async function bakeStartFail(mode: string, extra = "restarts: { maxQuickExits: 1 }\n"): Promise<string> {
  const dir = mkdtempSync(path.join(os.tmpdir(), `kiln-start-${mode}-`));
  execFileSync("gcc", ["-static", "-O2", "-o", path.join(dir, "start-fail"), path.join(repo, "test/fixtures/start-failures/start-fail.c")]);
  writeFileSync(path.join(dir, "kiln.yml"), `name: start-${mode}\ncmd: ./start-fail ${mode}\nport: 8080\n${extra}`);
  const { image } = await bake(dir, {}, home, quiet);
  return image.ref;
}

async function bootFailure(ref: string): Promise<UnhealthyError> {
  const error = await boot(ref, home, { healthTimeoutSeconds: 120 }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(UnhealthyError);
  return error as UnhealthyError;
}

/** The console file an error's hint names. */
function namedConsole(hint: string | undefined): string {
  const file = /(\/\S+console\.log)/.exec(hint ?? "")?.[1];
  expect(file, hint).toBeDefined();
  return file!;
}

describe.sequential("start failures", () => {
  it("an app that exits: its status and last lines, no 0.0.0.0 hint, and a console file that exists", async () => {
    const error = await bootFailure(await bakeStartFail("crash"));
    expect(error.message).toMatch(/app exited with status 3/);
    expect(error.message).toContain("start-fail: DATABASE_URL is not set");
    expect(error.hint).not.toContain("0.0.0.0");
    expect(existsSync(namedConsole(error.hint))).toBe(true);
  });

  it("an app that writes under /app: says /app is read-only and where to write", async () => {
    const error = await bootFailure(await bakeStartFail("erofs"));
    expect(error.message).toMatch(/read-only file system/i);
    expect(error.message).toContain("cannot open /app/state.json: Read-only file system");
    expect(error.hint).toMatch(/\/app .*read-only.*\/tmp/);
    expect(error.hint).not.toContain("0.0.0.0");
    expect(existsSync(namedConsole(error.hint))).toBe(true);
  });

  it("kiln stop of an app that ignores SIGTERM says the app was killed after stopTimeout", async () => {
    const ref = await bakeStartFail("stubborn", "stopTimeout: 1\n");
    const port = await findFreePort();
    const env = { KILN_HOME: home.root };
    const started = await cli(["run", ref, "-p", `${port}:8080`, "--detach", "--json", "--health-timeout", "120"], env);
    expect(started.code, started.stderr).toBe(0);
    const { id } = JSON.parse(started.stdout) as { id: string };
    const stopped = await cli(["stop", id, "--timeout", "30"], env);
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stdout).not.toContain("(clean)");
    expect(stopped.stdout).toMatch(/app did not stop within its stopTimeout and was killed/);
    const logs = await cli(["logs", id, "--all"], env);
    expect(logs.stdout).toMatch(/app did not stop in 1s: killing it/);
  });
});
