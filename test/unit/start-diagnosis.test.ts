// Why an app never became healthy, read from real console captures (test/fixtures/start-failures,
// recorded from QEMU boots of start-fail.c and a small Node app), and how a shutdown ended.
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { appKilledAtStop, describeStartFailure, diagnoseStart } from "../../src/run/diagnose.js";

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../fixtures/start-failures");
const capture = (name: string) => readFileSync(path.join(fixtures, `${name}.console.txt`), "utf8");
const context = { port: 8080, healthPath: "/healthz", consoleFile: "CONSOLE" };

describe("diagnoseStart on real consoles", () => {
  it("an app that exits: its status, how often, and its own last lines of the last run", () => {
    const d = diagnoseStart(capture("native-crash"));
    expect(d).toEqual({
      kind: "exited",
      exitStatus: 3,
      exits: 5,
      poweredOff: true,
      lastLines: ["start-fail: starting (crash)", "start-fail: DATABASE_URL is not set"],
    });
    const report = describeStartFailure(d, context);
    expect(report.message).toContain("app exited with status 3 (5 times; the init then powered the VM off)");
    expect(report.message).toContain("start-fail: DATABASE_URL is not set");
    expect(report.hint).not.toContain("0.0.0.0");
  });

  it("a C app writing under /app (strerror's words): read-only, with the line and the exit status", () => {
    const d = diagnoseStart(capture("native-erofs"));
    expect(d).toMatchObject({ kind: "read-only", exitStatus: 1, line: "start-fail: cannot open /app/state.json: Read-only file system" });
    const report = describeStartFailure(d, context);
    expect(report.message).toMatch(/read-only file system and exited with status 1/);
    expect(report.hint).toMatch(/^\/app .* read-only .* write under \/tmp/);
    expect(report.hint).not.toContain("0.0.0.0");
  });

  it("a Node app writing under /app (EROFS error code)", () => {
    const d = diagnoseStart(capture("node-erofs"));
    expect(d).toMatchObject({ kind: "read-only", exitStatus: 1 });
    expect(d.kind === "read-only" && d.line).toMatch(/^Error: EROFS: read-only file system, open '\/app\/state.json'/);
  });

  it("an app that runs but listens on 127.0.0.1: the 0.0.0.0 hint, and only then", () => {
    const d = diagnoseStart(capture("native-localhost"));
    expect(d).toEqual({ kind: "port-closed" });
    expect(describeStartFailure(d, context).hint).toMatch(/listens on 0\.0\.0\.0:8080 \(not 127\.0\.0\.1/);
  });

  it("an app that answers with an error status is told about its health path, not about 0.0.0.0", () => {
    const d = diagnoseStart(capture("native-localhost"), 404);
    expect(d).toEqual({ kind: "answers-badly", httpStatus: 404 });
    const report = describeStartFailure(d, context);
    expect(report.message).toContain("/healthz gave HTTP 404");
    expect(report.hint).not.toContain("0.0.0.0");
  });

  it("a VM that never reached the app, and an init that failed", () => {
    const early = capture("native-localhost").split("\n").slice(0, 2).join("\n");
    expect(diagnoseStart(early)).toMatchObject({ kind: "not-started" });
    expect(diagnoseStart(`${early}\nkiln-init: FATAL: cannot mount app partition /dev/vda3\n`)).toEqual({
      kind: "boot-failed",
      detail: "cannot mount app partition /dev/vda3",
    });
  });

  it("an app still running after an earlier exit: the last run decides (not the old exit)", () => {
    const text = `${capture("native-crash").split("kiln-init: app keeps crashing")[0]}\n2026-11-29T15:57:30.000Z kiln-init: starting app: /app/start-fail\n`;
    expect(diagnoseStart(text)).toEqual({ kind: "port-closed" });
  });
});

describe("appKilledAtStop", () => {
  it("sees the init kill an app that ignored SIGTERM (real capture), and not a clean stop", () => {
    const stubborn = capture("native-stubborn-stop");
    expect(appKilledAtStop(stubborn)).toBe(true);
    expect(appKilledAtStop(stubborn.replace(/.*app did not stop in 1s: killing it\r?\n/, ""))).toBe(false);
    expect(appKilledAtStop(capture("native-crash"))).toBe(false);
  });
});
