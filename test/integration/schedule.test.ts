// kiln schedule through the real CLI: install writes a systemd service + timer pair that
// `systemd-analyze verify` accepts (and a CI workflow); show prints the units, the next run and
// the last log lines of scheduled runs; run-now is `kiln outdated && kiln pipeline run` with its
// log; remove takes away exactly what install added. The cron fallback adds one line to a
// crontab file and remove restores the file byte for byte.
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { cli, freshHome, repo } from "./harness.js";

const APP = "cronapp";
let work: string;
let app: string;
let env: Record<string, string>;

function listTree(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: "utf8" }).sort();
}

beforeAll(() => {
  execFileSync("make", ["-s", "-C", path.join(repo, "examples", "hello-native")]);
  work = mkdtempSync(path.join(os.tmpdir(), "kiln-schedule-"));
  app = path.join(work, "app");
  cpSync(path.join(repo, "examples", "hello-native"), app, { recursive: true, filter: (src) => !src.endsWith("kiln.lock") });
  writeFileSync(
    path.join(app, "kiln.yml"),
    [
      `name: ${APP}`,
      "cmd: ./server --listen 8080",
      "port: 8080",
      "environments:",
      "  dev: { target: local, port: 18999, instances: 1 }",
      "pipeline:",
      "  stages: [{ env: dev, soak: 30 }]",
      '  schedule: { onCalendar: "Mon *-*-* 03:00" }',
      "",
    ].join("\n"),
  );
  // A private apt configuration with no sources: run-now's index refresh stays on this machine.
  const apt = path.join(work, "apt");
  for (const d of ["sources.list.d", "preferences.d", "lists/partial", "cache/archives/partial"])
    mkdirSync(path.join(apt, d), { recursive: true });
  writeFileSync(path.join(apt, "sources.list"), "");
  env = { KILN_HOME: freshHome("kiln-schedule-home-").root, KILN_APT_CONFIG: apt };
});

describe.sequential("kiln schedule", () => {
  it("install writes a timer/service pair that systemd-analyze verify accepts, plus a CI workflow", async () => {
    const units = path.join(work, "units");
    mkdirSync(units);
    writeFileSync(path.join(units, "someone-else.service"), "[Service]\nExecStart=/bin/true\n");
    const before = listTree(units);
    const ci = path.join(work, "repo-ci", ".github", "workflows", "kiln-rebake.yml");
    const installed = await cli(["schedule", "install", "--config", app, "--unit-dir", units, "--ci", ci, "--json"], env);
    expect(installed.code, installed.stderr).toBe(0);
    const record = JSON.parse(installed.stdout) as { kind: string; createdFiles: string[]; systemd: { activated: boolean } };
    const service = path.join(units, `kiln-rebake-${APP}.service`);
    const timer = path.join(units, `kiln-rebake-${APP}.timer`);
    expect(record).toMatchObject({ kind: "systemd", createdFiles: [service, timer, ci], systemd: { activated: false } });
    expect(listTree(units)).toEqual([...before, `kiln-rebake-${APP}.service`, `kiln-rebake-${APP}.timer`].sort());
    // systemd's own checker: unit syntax, ExecStart's program exists, the timer's unit.
    execFileSync("systemd-analyze", ["verify", service, timer], { stdio: "pipe" });
    expect(readFileSync(timer, "utf8")).toContain("OnCalendar=Mon *-*-* 03:00");
    expect(readFileSync(service, "utf8")).toMatch(
      new RegExp(`ExecStart=${process.execPath} \\S+/bin/kiln\\.js schedule run-now --config ${app.replace(/[.]/g, "\\.")}`),
    );
    expect(readFileSync(ci, "utf8")).toContain('- cron: "0 3 * * 1"');

    const again = await cli(["schedule", "install", "--config", app, "--unit-dir", units], env);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain("already installed");

    const shown = await cli(["schedule", "show", "--config", app], env);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain(service);
    expect(shown.stdout).toMatch(/next run: Mon \d{4}-\d\d-\d\d 03:00:00/);
    expect(shown.stdout).toContain("(no scheduled runs yet)");

    const removed = await cli(["schedule", "remove", "--config", app], env);
    expect(removed.code, removed.stderr).toBe(0);
    expect(listTree(units)).toEqual(before);
    expect(existsSync(ci)).toBe(false);
    expect((await cli(["schedule", "show", "--config", app], env)).stdout).toContain("no schedule installed");
  });

  it("run-now runs outdated (and the pipeline only when needed) and keeps a log that show prints", async () => {
    const first = await cli(["schedule", "run-now", "--config", app], env);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain("up to date: nothing to rebake");
    const shown = await cli(["schedule", "show", "--config", app, "--lines", "5"], env);
    expect(shown.stdout).toMatch(/scheduled run for cronapp: kiln outdated && kiln pipeline run/);
    expect(shown.stdout).toMatch(/up to date: no updates for the base packages; nothing to rebake/);
    const log = readFileSync(path.join(env.KILN_HOME!, "schedule", `${APP}.log`), "utf8");
    expect(
      log
        .split("\n")
        .filter(Boolean)
        .every((l) => /^\d{4}-\d\d-\d\dT\S+Z /.test(l)),
    ).toBe(true);
  });

  it("the cron fallback adds one line to a crontab file, and remove restores the file exactly", async () => {
    const crontab = path.join(work, "crontab");
    const original = "# m h dom mon dow command\n15 * * * * /usr/local/bin/backup\n";
    writeFileSync(crontab, original);
    const installed = await cli(["schedule", "install", "--config", app, "--cron", crontab], env);
    expect(installed.code, installed.stderr).toBe(0);
    const lines = readFileSync(crontab, "utf8").split("\n").filter(Boolean);
    expect(lines.slice(0, 2)).toEqual(original.split("\n").filter(Boolean));
    expect(lines).toHaveLength(3);
    expect(lines[2]).toMatch(
      new RegExp(
        `^0 3 \\* \\* 1 cd ${app.replace(/[.]/g, "\\.")} && .*KILN_HOME=\\S+ .*schedule run-now --config \\S+ >/dev/null 2>&1 # kiln-schedule:${APP}$`,
      ),
    );
    expect((await cli(["schedule", "show", "--config", app], env)).stdout).toContain(`cron schedule installed`);
    expect((await cli(["schedule", "remove", "--config", app], env)).code).toBe(0);
    expect(readFileSync(crontab, "utf8")).toBe(original);

    // A crontab file kiln created is deleted again.
    const fresh = path.join(work, "cron.d", "kiln");
    expect((await cli(["schedule", "install", "--config", app, "--cron", fresh, "--cron-user", "root"], env)).code).toBe(0);
    expect(readFileSync(fresh, "utf8")).toMatch(/^0 3 \* \* 1 root cd /);
    expect((await cli(["schedule", "remove", "--config", app], env)).code).toBe(0);
    expect(existsSync(fresh)).toBe(false);
  });
});
