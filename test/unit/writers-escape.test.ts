// Issue 12, hole 2, defence in depth: every writer of another program's configuration guards
// its own values, so a value that slipped past the schema still cannot add a line or a
// directive. Each writer gets the same hostile values; the output keeps its line count and
// directive set, or the writer refuses.
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { renderCmdFile, renderEnvFile, renderLaunchConf } from "../../src/bake/app-config.js";
import { fillBootTemplate, kernelCommandLine } from "../../src/bake/boot.js";
import { haproxyWord, renderHaproxyConfig } from "../../src/providers/local/haproxy.js";
import { renderMetaData, renderUserData } from "../../src/run/seed.js";
import {
  renderCiWorkflow,
  renderCronLine,
  renderService,
  renderTimer,
  shellQuote,
  systemdQuote,
  type ScheduleInputs,
} from "../../src/schedule/render.js";

const repo = path.resolve(import.meta.dirname, "../..");
const template = (rel: string) => readFileSync(path.join(repo, "templates", rel), "utf8");

/** Values an attacker would try: each tries to end the current line or directive and start another. */
const HOSTILE = ["x\nfrontend evil", "x\r\nEvil=1", "x\rEvil", "x\0y", "x\u000bEvil", "x\u001b[2J", "x\u007f"];

/** Calls `write`; returns its output, or undefined when it refused (both are safe outcomes). */
function attempt(write: () => string): string | undefined {
  try {
    return write();
  } catch {
    return undefined;
  }
}

describe("haproxy.cfg writer", () => {
  const base = { port: 8000, socket: "/tmp/kiln env/haproxy.sock", pidFile: "/tmp/p", healthPath: "/healthz", intervalMs: 1000, rise: 2 };
  const lines = renderHaproxyConfig(base).split("\n").length;

  it("a hostile health path, socket path or log target never adds a line", () => {
    for (const bad of HOSTILE) {
      for (const key of ["healthPath", "socket", "logTarget"] as const) {
        const out = attempt(() => renderHaproxyConfig({ ...base, [key]: bad }));
        expect(out, `${key}=${JSON.stringify(bad)}`).toBeUndefined();
      }
    }
  });

  it("quotes words with spaces, quotes or # so HAProxy reads each as one word", () => {
    expect(haproxyWord("/healthz", "path")).toBe("/healthz");
    expect(haproxyWord("/a b#c", "path")).toBe("'/a b#c'");
    expect(haproxyWord("/it's", "path")).toBe("'/it'\\''s'");
    expect(renderHaproxyConfig(base)).toContain("stats socket '/tmp/kiln env/haproxy.sock' mode 600");
    expect(renderHaproxyConfig({ ...base, healthPath: "/a b" }).split("\n")).toHaveLength(lines);
  });

  it("numbers are whole and in range", () => {
    expect(attempt(() => renderHaproxyConfig({ ...base, port: 0 }))).toBeUndefined();
    expect(attempt(() => renderHaproxyConfig({ ...base, rise: 1.5 }))).toBeUndefined();
    expect(attempt(() => renderHaproxyConfig({ ...base, intervalMs: Number.NaN }))).toBeUndefined();
  });
});

describe("boot loader entries and the kernel command line", () => {
  it("a hostile title or command line cannot add a loader line (options init=/bin/sh)", () => {
    for (const bad of HOSTILE) {
      expect(
        attempt(() => fillBootTemplate(template("boot/kiln.conf"), { title: `${bad}\noptions init=/bin/sh`, cmdline: "quiet" })),
      ).toBeUndefined();
      expect(attempt(() => fillBootTemplate(template("boot/syslinux.cfg"), { cmdline: `quiet ${bad}` }))).toBeUndefined();
    }
    const ok = fillBootTemplate(template("boot/kiln.conf"), { title: "shop 1.0.0", cmdline: kernelCommandLine("0a1b2c3d") });
    expect(ok.split("\n").filter((l) => l.startsWith("options"))).toEqual([
      "options console=tty0 console=ttyS0,115200n8 quiet panic=-1 nvme_core.io_timeout=4294967295 kiln.disk=0a1b2c3d",
    ]);
  });

  it("the disk signature is 8 hex digits or nothing is written", () => {
    expect(attempt(() => kernelCommandLine("0a1b2c3d init=/bin/sh"))).toBeUndefined();
  });
});

describe("user-data and meta-data (seed drive, EC2)", () => {
  it("a hostile value or name cannot add a KEY=VALUE line", () => {
    for (const bad of HOSTILE) {
      expect(attempt(() => renderUserData({ GREETING: `${bad}\nKILN_ENV=prod` }))).toBeUndefined();
      expect(attempt(() => renderUserData({ [`A${bad}`]: "1" }))).toBeUndefined();
      expect(attempt(() => renderMetaData({ instanceId: `i-1${bad}` }))).toBeUndefined();
    }
    expect(attempt(() => renderUserData({ "A=B": "1" }))).toBeUndefined();
    expect(renderUserData({ URL: "postgres://u:p@h/db?x=1#frag = 'q'" }).split("\n")).toHaveLength(3);
  });
});

describe("systemd units and crontab lines", () => {
  const inputs: ScheduleInputs = {
    app: "shop",
    appDir: "/srv/shop",
    command: ["node", "/opt/kiln/bin/kiln.js", "schedule", "run-now"],
    environment: { KILN_HOME: "/var/lib/kiln" },
    onCalendar: "Mon *-*-* 03:00",
    cron: undefined,
  };

  it("a hostile environment value, command word, app dir or calendar cannot add a directive", () => {
    for (const bad of HOSTILE) {
      expect(
        attempt(() =>
          renderService(template("schedule/kiln.service"), { ...inputs, environment: { KILN_HOME: `${bad}\nExecStartPre=/evil` } }),
        ),
      ).toBeUndefined();
      expect(
        attempt(() => renderService(template("schedule/kiln.service"), { ...inputs, command: ["node", `${bad}\nExecStartPre=/evil`] })),
      ).toBeUndefined();
      expect(attempt(() => renderService(template("schedule/kiln.service"), { ...inputs, appDir: `/srv/${bad}` }))).toBeUndefined();
      expect(
        attempt(() => renderTimer(template("schedule/kiln.timer"), { ...inputs, onCalendar: `daily${bad}\nOnBootSec=1` })),
      ).toBeUndefined();
      expect(attempt(() => systemdQuote(bad))).toBeUndefined();
      expect(attempt(() => shellQuote(bad))).toBeUndefined();
    }
  });

  it("a cron expression is five fields or nothing is written; the line stays one line", () => {
    const line = (cron: string) => attempt(() => renderCronLine(template("schedule/crontab.line"), inputs, cron, "root"));
    expect(line("0 3 * * 1\n* * * * * root /evil")).toBeUndefined();
    expect(line("0 3 * * 1 root /evil #")).toBeUndefined();
    expect(line("@reboot")).toBeUndefined();
    expect(line("0 3 * * 1")!.split("\n")).toHaveLength(1);
    expect(line("0 3 * * 1")).toMatch(/^0 3 \* \* 1 root cd \/srv\/shop && /);
  });

  it("the CI workflow gets one line per value and a quoted path", () => {
    const ci = (over: Partial<{ app: string; cron: string; appPath: string }>) =>
      attempt(() =>
        renderCiWorkflow(template("ci/github-actions.yml"), {
          app: "shop",
          cron: "0 3 * * 1",
          appPath: "apps/shop",
          securityOnly: false,
          ...over,
        }),
      );
    expect(ci({ appPath: "apps/shop\n      - run: curl evil" })).toBeUndefined();
    expect(ci({ cron: '0 3 * * 1"\n    - cron: "* * * * *' })).toBeUndefined();
    expect(ci({ appPath: "my apps: #1" })).toContain('working-directory: "my apps: #1"');
  });
});

describe("the app layer's cmd, env and launch.conf files", () => {
  it("a hostile argument, env value or launch setting cannot add a line or leave its quotes", () => {
    for (const bad of HOSTILE) {
      expect(attempt(() => renderCmdFile(["./server", `--name=${bad}`]))).toBeUndefined();
      expect(attempt(() => renderEnvFile({ GREETING: `hi${bad}\nLD_PRELOAD=/app/evil.so` }))).toBeUndefined();
      expect(attempt(() => renderLaunchConf({ KILN_HEALTH_PATH: `/h${bad}` }))).toBeUndefined();
    }
    expect(attempt(() => renderLaunchConf({ KILN_HEALTH_PATH: "/h'; reboot; '" }))).toBeUndefined();
    expect(renderCmdFile(["./server", "a b", "--x=1"])).toBe("./server\na b\n--x=1\n");
    expect(renderEnvFile({ PORT: "8080", URL: "a=b#c" })).toBe("PORT=8080\nURL=a=b#c\n");
    expect(renderLaunchConf({ KILN_PORT: "", KILN_HEALTH_PATH: "/healthz" })).toBe("KILN_PORT=''\nKILN_HEALTH_PATH='/healthz'\n");
  });
});
