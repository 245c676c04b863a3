/**
 * Hole 7b: the local environment lock. Many kiln processes (real ones: separate node processes
 * running the built provider) race for one environment whose lock was left by a dead process:
 * at most one holds it at any time, and a lock file caught half-written never crashes anyone.
 */
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { mkdir, readFile, utimes, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const providerModule = path.join(repo, "dist", "src", "providers", "local", "provider.js");

/** Each contender retries until its deadline; while holding, it logs enter/leave lines to a shared journal. */
const CONTENDER = `
import { appendFileSync } from "node:fs";
const { LocalProvider } = await import(process.env.PROVIDER);
const home = { root: process.env.HOME_ROOT, vms: process.env.HOME_ROOT + "/vms", images: "", refs: "", cache: "", tmp: "" };
const provider = new LocalProvider({ app: "race", name: "dev" }, home);
const journal = process.env.JOURNAL;
const deadline = Date.now() + Number(process.env.RETRY_MS);
for (;;) {
  try {
    const release = await provider.lock("contender-" + process.pid);
    appendFileSync(journal, "enter " + process.pid + "\\n");
    await new Promise((r) => setTimeout(r, Number(process.env.HOLD_MS)));
    appendFileSync(journal, "leave " + process.pid + "\\n");
    await release();
    process.exit(0);
  } catch (error) {
    if (error?.name !== "KilnError" || Date.now() > deadline) {
      console.error(error?.name + ": " + error?.message);
      process.exit(error?.name === "KilnError" ? 3 : 2);
    }
    await new Promise((r) => setTimeout(r, 5 + Math.random() * 20));
  }
}
`;

interface Outcome {
  code: number | null;
  stderr: string;
}

function runContender(script: string, env: Record<string, string>): Promise<Outcome> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [script], { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => resolve({ code, stderr }));
  });
}

/** The pid of a process that has exited (a kiln that died holding the lock). */
function deadPid(): number {
  return Number(execFileSync(process.execPath, ["-e", "console.log(process.pid)"]).toString().trim());
}

async function setup(lockText: string, ageSeconds: number) {
  const root = mkdtempSync(path.join(os.tmpdir(), "kiln-lock-race-"));
  const envDir = path.join(root, "envs", "race", "dev");
  await mkdir(envDir, { recursive: true });
  const lockFile = path.join(envDir, "lock");
  await writeFile(lockFile, lockText);
  const then = new Date(Date.now() - ageSeconds * 1000);
  await utimes(lockFile, then, then);
  const script = path.join(root, "contender.mjs");
  writeFileSync(script, CONTENDER);
  return { root, script, journal: path.join(root, "journal"), lockFile };
}

/** Checks the journal: enter/leave strictly alternate, so no two contenders ever held the lock together. */
function overlaps(journal: string): string[] {
  const problems: string[] = [];
  let holder: string | undefined;
  for (const line of journal.split("\n").filter(Boolean)) {
    const [what, pid] = line.split(" ");
    if (what === "enter") {
      if (holder) problems.push(`${pid} entered while ${holder} held the lock`);
      holder = pid;
    } else {
      if (holder !== pid) problems.push(`${pid} left but the holder was ${holder}`);
      holder = undefined;
    }
  }
  return problems;
}

describe("local environment lock", () => {
  beforeAll(() => {
    if (!existsSync(providerModule)) execFileSync("npx", ["tsc", "-p", "tsconfig.json"], { cwd: repo, stdio: "inherit" });
  });

  it("lets exactly one of many racing processes hold it at a time, starting from a stale lock", async () => {
    const { root, script, journal } = await setup(JSON.stringify({ pid: deadPid(), owner: "dead kiln", at: new Date().toISOString() }), 0);
    const env = { PROVIDER: pathToFileURL(providerModule).href, HOME_ROOT: root, JOURNAL: journal, RETRY_MS: "20000", HOLD_MS: "30" };
    const outcomes = await Promise.all(Array.from({ length: 12 }, () => runContender(script, env)));
    const text = await readFile(journal, "utf8").catch(() => "");
    expect(overlaps(text)).toEqual([]);
    expect(outcomes.filter((o) => o.code !== 0).map((o) => o.stderr)).toEqual([]);
    expect(text.split("\n").filter((l) => l.startsWith("enter"))).toHaveLength(12);
  }, 120_000);

  it("never crashes on a lock file that is still being written, and takes it over once it is abandoned", async () => {
    const partial = '{"pid": 12';
    // Fresh: another kiln is writing it right now; contenders report the lock as held (KilnError), no JSON crash.
    const fresh = await setup(partial, 0);
    const busy = await runContender(fresh.script, {
      PROVIDER: pathToFileURL(providerModule).href,
      HOME_ROOT: fresh.root,
      JOURNAL: fresh.journal,
      RETRY_MS: "0",
      HOLD_MS: "0",
    });
    expect(busy.stderr).not.toMatch(/SyntaxError|JSON/);
    expect(busy.code).toBe(3);
    expect(busy.stderr).toMatch(/KilnError: environment dev is locked/);
    // Old and still unreadable: its writer died mid-write; the lock is taken over.
    const old = await setup(partial, 120);
    const env = { PROVIDER: pathToFileURL(providerModule).href, HOME_ROOT: old.root, JOURNAL: old.journal, RETRY_MS: "0", HOLD_MS: "0" };
    const outcomes = await Promise.all(Array.from({ length: 6 }, () => runContender(old.script, env)));
    expect(outcomes.map((o) => o.stderr).filter((s) => /SyntaxError|JSON/.test(s))).toEqual([]);
    expect(outcomes.filter((o) => o.code === 0).length).toBeGreaterThanOrEqual(1);
    expect(overlaps(await readFile(old.journal, "utf8"))).toEqual([]);
  }, 120_000);
});
