// kiln schedule's rendered files and the pipeline settings, without systemd or cron: unit files
// from templates/schedule, quoting of paths and values, the crontab line, cron from OnCalendar,
// and kiln.yml's pipeline: section with every problem reported at once.
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { SpecError } from "../../src/errors.js";
import { cronFromOnCalendar, parsePipeline } from "../../src/pipeline/config.js";
import {
  renderCiWorkflow,
  renderCronLine,
  renderService,
  renderTimer,
  shellQuote,
  systemdQuote,
  unitName,
  type ScheduleInputs,
} from "../../src/schedule/render.js";

const repo = path.resolve(import.meta.dirname, "../..");
const template = (rel: string) => readFileSync(path.join(repo, "templates", rel), "utf8");

const inputs: ScheduleInputs = {
  app: "shop",
  appDir: "/srv/apps/my shop",
  command: ["/usr/bin/node", "/opt/kiln/bin/kiln.js", "schedule", "run-now", "--config", "/srv/apps/my shop"],
  environment: { KILN_HOME: "/var/lib/kiln", PATH: "/usr/bin:/bin", NOTE: "50% done" },
  onCalendar: "Mon *-*-* 03:00",
  cron: undefined,
};

describe("schedule files", () => {
  it("renders a oneshot service and a persistent timer that points at it", () => {
    const service = renderService(template("schedule/kiln.service"), inputs);
    expect(service).toContain("Type=oneshot");
    expect(service).toContain('ExecStart=/usr/bin/node /opt/kiln/bin/kiln.js schedule run-now --config "/srv/apps/my shop"');
    expect(service).toContain("WorkingDirectory=/srv/apps/my shop");
    expect(service).toContain("Environment=KILN_HOME=/var/lib/kiln");
    expect(service).toContain('Environment="NOTE=50%% done"');
    expect(service).not.toMatch(/\{\{/);
    const timer = renderTimer(template("schedule/kiln.timer"), inputs);
    expect(timer).toContain("OnCalendar=Mon *-*-* 03:00");
    expect(timer).toContain(`Unit=${unitName("shop")}.service`);
    expect(timer).toContain("WantedBy=timers.target");
  });

  it("renders one crontab line, with and without a user column, marked for removal", () => {
    const line = renderCronLine(template("schedule/crontab.line"), inputs, "0 3 * * 1", undefined);
    expect(line.split("\n")).toHaveLength(1);
    expect(line).toMatch(
      /^0 3 \* \* 1 cd '\/srv\/apps\/my shop' && KILN_HOME=\/var\/lib\/kiln NOTE='50\\% done' PATH=\/usr\/bin:\/bin \/usr\/bin\/node .* >\/dev\/null 2>&1 # kiln-schedule:shop$/,
    );
    expect(renderCronLine(template("schedule/crontab.line"), inputs, "0 3 * * 1", "root")).toMatch(/^0 3 \* \* 1 root cd /);
  });

  it("renders the CI workflow with the cron schedule and the outdated exit-code handling", () => {
    const wf = renderCiWorkflow(template("ci/github-actions.yml"), {
      app: "shop",
      cron: "0 3 * * 1",
      appPath: "apps/shop",
      securityOnly: true,
    });
    expect(wf).toContain('- cron: "0 3 * * 1"');
    expect(wf).toContain("working-directory: apps/shop");
    expect(wf).toContain("npx kiln outdated --config . --security-only");
    expect(wf).toContain('if [ "$rc" -eq 10 ]');
    expect(wf).toContain("npx kiln pipeline run --config .");
    expect(wf).not.toMatch(/\{\{/);
  });

  it("quotes for systemd and for the shell", () => {
    expect(systemdQuote("/plain/path")).toBe("/plain/path");
    expect(systemdQuote('a "b" c')).toBe('"a \\"b\\" c"');
    expect(shellQuote("it's")).toBe("'it'\\''s'");
    expect(shellQuote("100%")).toBe("'100\\%'");
  });

  it("derives cron lines from simple OnCalendar forms only", () => {
    expect(cronFromOnCalendar("Mon *-*-* 03:00")).toBe("0 3 * * 1");
    expect(cronFromOnCalendar("*-*-* 04:30")).toBe("30 4 * * *");
    expect(cronFromOnCalendar("Mon..Fri *-*-* 02:15")).toBe("15 2 * * 1-5");
    expect(cronFromOnCalendar("Sat,Sun *-*-* 06:00:00")).toBe("0 6 * * 6,0");
    expect(cronFromOnCalendar("daily")).toBe("0 0 * * *");
    expect(cronFromOnCalendar("*-*-01 03:00")).toBeUndefined();
  });
});

describe("pipeline: in kiln.yml", () => {
  it("reads stages with soak, approval and the schedule", () => {
    const p = parsePipeline(
      {
        stages: ["dev", { env: "test", soak: 60 }, { env: "prod", approval: true, checkInterval: 10 }],
        schedule: { onCalendar: "daily", securityOnly: true },
      },
      ["dev", "test", "prod"],
      "kiln.yml",
    )!;
    expect(p.stages).toEqual([
      { env: "dev", soakSeconds: 0, checkIntervalSeconds: 5, approval: false },
      { env: "test", soakSeconds: 60, checkIntervalSeconds: 5, approval: false },
      { env: "prod", soakSeconds: 0, checkIntervalSeconds: 10, approval: true },
    ]);
    expect(p.rebakeVersion).toBe("{version}-r{n}");
    expect(p.schedule).toEqual({ onCalendar: "daily", cron: undefined, securityOnly: true });
    expect(parsePipeline(undefined, [], "kiln.yml")).toBeUndefined();
  });

  it("a stage may promote with a canary", () => {
    const p = parsePipeline({ stages: ["dev", { env: "prod", canary: "10%", canaryFor: "2m" }] }, ["dev", "prod"], "kiln.yml")!;
    expect(p.stages[1]).toEqual({
      env: "prod",
      soakSeconds: 0,
      checkIntervalSeconds: 5,
      approval: false,
      canary: { percent: 10, seconds: 120 },
    });
    expect(() =>
      parsePipeline(
        {
          stages: [
            { env: "dev", canary: "80%" },
            { env: "prod", canaryFor: "5m" },
          ],
        },
        ["dev", "prod"],
        "kiln.yml",
      ),
    ).toThrow(/stages\[0\]\.canary: '80%' must be a percentage from 1% to 50%[\s\S]*stages\[1\]\.canaryFor: needs canary/);
  });

  it("reports every problem at once", () => {
    let error: unknown;
    try {
      parsePipeline(
        {
          stages: [{ env: "staging" }, { env: "dev", soak: -1, approval: "yes" }, { env: "dev" }],
          rebakeVersion: "v{n}",
          colour: 1,
          schedule: { cron: "daily" },
        },
        ["dev"],
        "kiln.yml",
      );
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(SpecError);
    expect([...(error as SpecError).problems].sort()).toEqual([
      "pipeline.colour: unknown setting (known: stages, rebakeVersion, schedule)",
      "pipeline.rebakeVersion: 'v{n}' needs {version} and {n}, e.g. \"{version}-r{n}\"",
      "pipeline.schedule.cron: 'daily' must have five fields (minute hour day month weekday) separated by single spaces",
      "pipeline.stages[0].env: 'staging' is not an environment in this file (defined: dev)",
      "pipeline.stages[1].approval: 'yes' must be true or false",
      "pipeline.stages[1].soak: '-1' must be a whole number from 0 to 604800",
      "pipeline.stages[2].env: 'dev' appears twice",
    ]);
  });
});
