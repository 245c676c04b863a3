// The guest sandbox, tried from inside: a static C app (test/fixtures/guest-escapes/probe.c) is
// baked and booted in QEMU, tries every way out an attacker holding the app would try (run a
// binary it wrote to /tmp, /dev/shm, /run or a memfd; mount; ptrace; kexec; modules; bpf; perf;
// keys; userfaultfd; io_uring; reboot; namespaces; setuid; the init's command line; writing to /)
// and reports each outcome over HTTP. Every attempt must be denied, the app must hold no
// capabilities, run with no_new_privs, a seccomp filter, bounded rlimits and noexec, size-capped
// tmpfs mounts, and still have what a server needs (/proc/self, a writable /tmp, JIT memory).
// A second image with `seccomp: off` runs without the filter (and the rest of the sandbox).
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { bake } from "../../src/bake/bake.js";
import { boot, httpGet, quiet, repo, sharedHome, trackRuns } from "./harness.js";

const home = sharedHome();
const running = trackRuns();

/** Every attempt the probe makes; a probe that silently skipped one must fail the test. */
const ESCAPES = [
  "exec-tmp",
  "exec-dev-shm",
  "exec-run",
  "exec-memfd",
  "ptrace-attach",
  "ptrace-init",
  "process-vm-readv",
  "bpf",
  "perf-event-open",
  "userfaultfd",
  "io-uring",
  "proc-1-cmdline",
  "write-root",
  "mount",
  "umount",
  "kexec-load",
  "init-module",
  "finit-module",
  "keyctl",
  "add-key",
  "reboot",
  "unshare-user",
  "unshare-net",
  "setuid-0",
  "clock-settime",
  "swapon",
  "chroot",
  "abi-i386",
  "abi-x32",
] as const;
const WORKS = ["proc-self-status", "proc-self-stat", "proc-meminfo", "tmp-write", "jit-memory", "fork"] as const;
const CAPABILITY_LINES = ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] as const;

interface ProbeReport {
  readonly escapes: Map<string, string>;
  readonly facts: Map<string, string>;
  readonly works: Map<string, string>;
  readonly mounts: Map<string, { fstype: string; options: string[]; superOptions: string[] }>;
}

function parseReport(text: string): ProbeReport {
  const report: ProbeReport = { escapes: new Map(), facts: new Map(), works: new Map(), mounts: new Map() };
  for (const line of text.split("\n")) {
    const [kind, name, ...rest] = line.split(" ");
    if (!name) continue;
    if (kind === "escape") report.escapes.set(name, rest.join(" "));
    else if (kind === "works") report.works.set(name, rest.join(" "));
    else if (kind === "fact" && name === "mount") {
      const [point, fstype, options, superOptions] = rest;
      report.mounts.set(point!, { fstype: fstype!, options: options!.split(","), superOptions: superOptions!.split(",") });
    } else if (kind === "fact") report.facts.set(name, rest.join(" "));
  }
  return report;
}

/** Bakes the probe (compiled static, as the native baker takes it) with kiln.yml lines on top. */
async function bakeProbe(name: string, extraYaml: string): Promise<string> {
  const app = mkdtempSync(path.join(os.tmpdir(), `kiln-${name}-`));
  execFileSync("gcc", [
    "-static",
    "-O2",
    "-Wall",
    "-o",
    path.join(app, "probe"),
    path.join(repo, "test", "fixtures", "guest-escapes", "probe.c"),
  ]);
  writeFileSync(path.join(app, "kiln.yml"), `name: ${name}\ncmd: ./probe\nport: 8080\nhealthcheck:\n  path: /healthz\n${extraYaml}`);
  const { image } = await bake(app, {}, home, quiet);
  return image.ref;
}

async function probe(ref: string): Promise<ProbeReport> {
  const run = await boot(ref, home, { healthTimeoutSeconds: 240 });
  running.push(run);
  const answer = await httpGet(`http://127.0.0.1:${run.port}/`);
  expect(answer.status).toBe(200);
  // Printed so a failing run (and the report of this work) shows what the app saw.
  process.stderr.write(`--- probe report of ${ref} ---\n${answer.body}`);
  return parseReport(answer.body);
}

function mountOf(report: ProbeReport, point: string) {
  const mount = report.mounts.get(point);
  expect(mount, `no mount at ${point} in the app's /proc/self/mountinfo`).toBeDefined();
  return mount!;
}

describe.sequential("guest sandbox", () => {
  it("denies every escape the app tries, with no capabilities, no_new_privs, seccomp, rlimits and noexec tmpfs", async () => {
    const report = await probe(await bakeProbe("guest-escapes", ""));

    const allowed = ESCAPES.filter((e) => !report.escapes.get(e)?.startsWith("denied")).map(
      (e) => `${e}: ${report.escapes.get(e) ?? "not tried"}`,
    );
    expect(allowed, "escapes that were not denied").toEqual([]);
    // The filter checks the ABI before the call number: another ABI's call kills the process.
    expect(report.escapes.get("abi-i386")).toBe("denied killed-SYS");
    expect(report.escapes.get("abi-x32")).toBe("denied killed-SYS");

    for (const cap of CAPABILITY_LINES) expect(report.facts.get(cap), cap).toBe("0000000000000000");
    expect(report.facts.get("NoNewPrivs")).toBe("1");
    expect(report.facts.get("Seccomp")).toBe("2");

    expect(report.facts.get("rlimit-NOFILE")).toBe("65536 65536");
    expect(report.facts.get("rlimit-CORE")).toBe("0 0");
    const [nprocSoft, nprocHard] = (report.facts.get("rlimit-NPROC") ?? "").split(" ").map(Number);
    expect(nprocSoft).toBe(nprocHard);
    expect(nprocHard).toBeGreaterThanOrEqual(256);
    expect(nprocHard).toBeLessThanOrEqual(16384);

    for (const point of ["/tmp", "/run", "/dev/shm"]) {
      const mount = mountOf(report, point);
      expect(mount.fstype, point).toBe("tmpfs");
      expect(mount.options, point).toEqual(expect.arrayContaining(["nosuid", "nodev", "noexec"]));
      expect(
        mount.superOptions.some((o) => o.startsWith("size=")),
        `${point} has a size cap`,
      ).toBe(true);
    }
    const proc = mountOf(report, "/proc");
    expect(proc.options).toEqual(expect.arrayContaining(["nosuid", "nodev", "noexec"]));
    expect(
      proc.superOptions.some((o) => /^hidepid=(2|invisible)$/.test(o)),
      `/proc super options ${proc.superOptions.join(",")}`,
    ).toBe(true);

    const broken = WORKS.filter((w) => !report.works.get(w)?.startsWith("yes")).map((w) => `${w}: ${report.works.get(w) ?? "not tried"}`);
    expect(broken, "what a server needs and no longer has").toEqual([]);
  });

  it("with seccomp: off the app runs without the filter, the rest of the sandbox unchanged", async () => {
    const report = await probe(await bakeProbe("guest-escapes-noseccomp", "seccomp: off\n"));
    expect(report.facts.get("Seccomp")).toBe("0");
    expect(report.facts.get("NoNewPrivs")).toBe("1");
    for (const cap of CAPABILITY_LINES) expect(report.facts.get(cap), cap).toBe("0000000000000000");
    // keyctl needs no privilege: only the filter denied it above.
    expect(report.escapes.get("keyctl")).toMatch(/^ALLOWED/);
    expect(report.escapes.get("exec-tmp")).toMatch(/^denied/);
    expect(report.escapes.get("proc-1-cmdline")).toMatch(/^denied/);
  });
});
