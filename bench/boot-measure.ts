/**
 * Boot measurements for the boot bench, through kiln's own code: kiln images boot with LocalVm
 * (what `kiln run` uses), the usual-way disk with the same QEMU command line (buildQemuArgs);
 * both are waited for with kiln's health check loop. One boot answers three questions: seconds
 * from QEMU spawn to the first HTTP 2xx, whether it got there within a time limit (the memory
 * bisection), and QEMU's peak resident memory (VmHWM) once healthy.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import path from "node:path";
import { spawnCapture, spawnDetached } from "../src/exec.js";
import type { KilnHome } from "../src/home.js";
import type { StoredImage } from "../src/image/store.js";
import { chooseAccelerator } from "../src/providers/accel.js";
import { LocalVm } from "../src/providers/qemu.js";
import { buildQemuArgs, type PortForward } from "../src/providers/qemu-args.js";
import { waitHealthy } from "../src/run/health.js";
import { findFreePort } from "../src/run/ports.js";
import { bootEnv } from "../src/run/seed.js";

/** A VM the bench started: enough to wait for it, read its memory and end it. */
interface BenchVm {
  readonly pid: number;
  readonly startedAtMs: number;
  readonly exited: Promise<string>;
  stop(): Promise<void>;
}

export interface BootTarget {
  readonly label: string;
  readonly port: number;
  readonly healthPath: string;
  start(memoryMiB: number, forward: PortForward): Promise<BenchVm>;
}

export interface BootResult {
  readonly healthy: boolean;
  readonly seconds: number;
  /** QEMU's VmHWM once healthy, in KiB. */
  readonly qemuPeakRssKiB: number | undefined;
  readonly reason?: string;
}

/** A kiln image from a kiln home, booted as `kiln run` boots it (BIOS, seed drive, kiln's QEMU arguments). */
export function kilnTarget(label: string, image: StoredImage, home: KilnHome): BootTarget {
  return {
    label,
    port: image.manifest.port ?? 8080,
    healthPath: image.manifest.healthcheck.path,
    async start(memoryMiB, forward) {
      const vm = await LocalVm.start({ image, home, firmware: "bios", forwards: [forward], env: bootEnv(undefined, []), memoryMiB });
      return {
        pid: vm.record.pid,
        startedAtMs: vm.startedAtMs,
        exited: vm.exited,
        async stop() {
          await vm.shutdown(0);
          await vm.cleanup({ how: "killed" });
        },
      };
    },
  };
}

/**
 * The usual-way disk under the same QEMU command line as kiln's VMs, but with its drive
 * `snapshot=on` instead of `readonly=on`: a generic Debian root expects to be writable, and
 * the snapshot keeps the built disk unchanged between boots (QEMU keeps writes in a temp file).
 */
export function usualWayTarget(label: string, disk: string, home: KilnHome, port: number, cpus: number): BootTarget {
  return {
    label,
    port,
    healthPath: "/healthz",
    async start(memoryMiB, forward) {
      const dir = await mkdtemp(path.join(home.root, "usual-way-vm-"));
      const argv = buildQemuArgs({
        disk,
        diskFormat: "raw",
        seed: undefined,
        firmware: "bios",
        accelerator: await chooseAccelerator(home),
        memoryMiB,
        cpus,
        forwards: [forward],
        consoleFile: path.join(dir, "console.log"),
        qmpSocket: path.join(dir, "qmp.sock"),
        pidFile: path.join(dir, "qemu.pid"),
      }).map((a) => (a.startsWith(`file=${disk},`) ? a.replace("readonly=on", "snapshot=on") : a));
      const startedAtMs = performance.now();
      const child = spawnDetached(argv);
      const exited = child.exited.then((e) => `QEMU exited (status ${e.exitCode ?? e.signal}): ${e.stderrTail}`);
      return {
        pid: child.pid,
        startedAtMs,
        exited,
        async stop() {
          // pid -1 is a QEMU that never started (and -(-1) would signal init).
          if (child.pid > 0)
            try {
              process.kill(-child.pid, "SIGKILL");
            } catch {
              // already gone
            }
          await child.exited;
          // The console stays when the boot failed, for a look at why.
          await rm(dir, { recursive: true, force: true });
        },
      };
    },
  };
}

/** VmHWM (peak resident set) of a process in KiB, from /proc/PID/status; undefined if it is gone. */
export async function readPeakRssKiB(pid: number): Promise<number | undefined> {
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  const match = /^VmHWM:\s+(\d+)\s+kB/m.exec(status);
  return match ? Number(match[1]) : undefined;
}

/** One boot: seconds from QEMU spawn to the first healthy answer (or the reason it never came), then the VM is killed. */
export async function bootOnce(target: BootTarget, memoryMiB: number, timeoutMs: number): Promise<BootResult> {
  const forward = { hostAddress: "127.0.0.1", hostPort: await findFreePort(), guestPort: target.port };
  const vm = await target.start(memoryMiB, forward);
  try {
    const url = `http://127.0.0.1:${forward.hostPort}${target.healthPath}`;
    const outcome = await waitHealthy(url, timeoutMs, vm.exited, vm.startedAtMs);
    const rss = outcome.healthy ? await readPeakRssKiB(vm.pid) : undefined;
    return {
      healthy: outcome.healthy,
      seconds: outcome.afterMs / 1000,
      qemuPeakRssKiB: rss,
      ...(outcome.healthy ? {} : { reason: outcome.reason }),
    };
  } finally {
    await vm.stop();
  }
}

/**
 * Ctrl-C to exit for `kiln run`: the command as a user starts it, waited until healthy, then
 * SIGINT (what Ctrl-C sends) and the seconds until the process has exited.
 */
export async function measureCtrlC(kilnBin: string, ref: string, home: KilnHome, guestPort: number, healthPath: string) {
  const hostPort = await findFreePort();
  const child = spawnCapture([process.execPath, kilnBin, "run", ref, "-p", `${hostPort}:${guestPort}`, "--quiet"], {
    env: { KILN_HOME: home.root },
  });
  const ended = child.done.then((r) => `kiln run exited (status ${r.exitCode}): ${r.stderr.trim().split("\n").slice(-3).join(" | ")}`);
  const outcome = await waitHealthy(`http://127.0.0.1:${hostPort}${healthPath}`, 300_000, ended);
  if (!outcome.healthy) {
    child.signal("SIGKILL");
    await child.done;
    return { seconds: Number.NaN, reason: outcome.reason };
  }
  const sent = performance.now();
  child.signal("SIGINT");
  const result = await child.done;
  return { seconds: (performance.now() - sent) / 1000, exitCode: result.exitCode };
}
