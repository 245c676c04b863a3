// Property tests of the writers (issue 12, defence in depth): for any string in any value a
// writer takes, the writer either refuses it with a kiln error or writes exactly as many lines
// as it writes for a harmless value, so no value can add a line, a directive or a cron job.
import { readFileSync } from "node:fs";
import path from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { renderCmdFile, renderEnvFile, renderLaunchConf } from "../../src/bake/app-config.js";
import { fillBootTemplate } from "../../src/bake/boot.js";
import { KilnError } from "../../src/errors.js";
import { renderHaproxyConfig } from "../../src/providers/local/haproxy.js";
import { renderUserData } from "../../src/run/seed.js";
import { renderCronLine, renderService, renderTimer, type ScheduleInputs } from "../../src/schedule/render.js";
import { fuzzRuns } from "./helpers/fuzz-runs.js";

const repo = path.resolve(import.meta.dirname, "../..");
const template = (rel: string) => readFileSync(path.join(repo, "templates", rel), "utf8");
const schedule: ScheduleInputs = {
  app: "shop",
  appDir: "/srv/shop",
  command: ["node", "kiln.js"],
  environment: { KILN_HOME: "/k" },
  onCalendar: "daily",
  cron: undefined,
};

/** Each writer as a function of one string value. */
const WRITERS: Record<string, (value: string) => string> = {
  "haproxy.cfg health path": (v) =>
    renderHaproxyConfig({ port: 8000, socket: "/s", pidFile: "/p", healthPath: v, intervalMs: 1000, rise: 2 }),
  "haproxy.cfg socket path": (v) =>
    renderHaproxyConfig({ port: 8000, socket: v, pidFile: "/p", healthPath: "/", intervalMs: 1000, rise: 2 }),
  "user-data value": (v) => renderUserData({ KILN_ENV: "dev", GREETING: v }),
  "user-data name": (v) => renderUserData({ [v]: "1" }),
  "loader entry title": (v) => fillBootTemplate(template("boot/kiln.conf"), { title: v, cmdline: "quiet" }),
  "syslinux command line": (v) => fillBootTemplate(template("boot/syslinux.cfg"), { cmdline: v }),
  "systemd Environment=": (v) => renderService(template("schedule/kiln.service"), { ...schedule, environment: { KILN_HOME: v } }),
  "systemd ExecStart=": (v) => renderService(template("schedule/kiln.service"), { ...schedule, command: ["node", v] }),
  "systemd OnCalendar=": (v) => renderTimer(template("schedule/kiln.timer"), { ...schedule, onCalendar: v }),
  "crontab schedule": (v) => renderCronLine(template("schedule/crontab.line"), schedule, v, "root"),
  "crontab command": (v) => renderCronLine(template("schedule/crontab.line"), { ...schedule, command: ["node", v] }, "0 3 * * 1", "root"),
  "app cmd file": (v) => renderCmdFile(["./server", v]),
  "app env file": (v) => renderEnvFile({ PORT: "8080", GREETING: v }),
  "launch.conf": (v) => renderLaunchConf({ KILN_HEALTH_PATH: v }),
};
const HARMLESS: Record<string, string> = { "user-data name": "GREETING", "crontab schedule": "0 3 * * 1", "systemd OnCalendar=": "daily" };

const value = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ unit: "binary", maxLength: 30 }),
  fc
    .array(fc.constantFrom("a", "/", " ", "\n", "\r", "\t", "\0", "#", "'", '"', "\\", "%", "$", "=", ";", "\u2028", "\u0085"), {
      maxLength: 10,
    })
    .map((a) => a.join("")),
);

describe("property: writers never gain a line from a value", () => {
  for (const [what, write] of Object.entries(WRITERS)) {
    it(what, () => {
      const lines = write(HARMLESS[what] ?? "/ok").split("\n").length;
      fc.assert(
        fc.property(value, (v) => {
          let out: string;
          try {
            out = write(v);
          } catch (error) {
            expect(error).toBeInstanceOf(KilnError);
            return;
          }
          expect(out.split("\n")).toHaveLength(lines);
          expect(out).not.toMatch(/\r|\0/);
        }),
        { numRuns: fuzzRuns() },
      );
    });
  }
});
