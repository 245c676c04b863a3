/**
 * A kiln image running in a local QEMU VM. Each VM has a directory under $KILN_HOME/vms/<id>
 * (console log, QMP socket, seed drive, UEFI variables, vm.json) so `kiln ps`, `logs` and
 * `stop` can find it from another process. The same class serves `kiln run` and the local
 * deploy target.
 */
import { randomBytes } from "node:crypto";
import { copyFile, open, readFile } from "node:fs/promises";
import path from "node:path";
import { KilnError } from "../errors.js";
import { requireTools, spawnDetached, type Spawned } from "../exec.js";
import { exists } from "../fsutil.js";
import type { KilnHome } from "../home.js";
import type { StoredImage } from "../image/store.js";
import { buildSeedImage } from "../run/seed.js";
import { checkPortFree } from "../run/ports.js";
import { chooseAccelerator } from "./accel.js";
import {
  buildQemuArgs,
  IMDS_ADDRESS,
  IMDS_USER_NETWORK,
  type Accelerator,
  type DiskBus,
  type Firmware,
  type GuestForward,
  type PortForward,
} from "./qemu-args.js";
import { qmpCommand } from "./qmp.js";
import { settlesWithin } from "../settles-within.js";
import { consoleTailOf } from "../console-text.js";
import { retireVmDir, type StopHow } from "../run/console-archive.js";
import { makePrivate, makePrivateDir, writePrivateFile } from "../private-fs.js";

const OVMF_CODE = ["/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_CODE.fd"];
const OVMF_VARS = ["/usr/share/OVMF/OVMF_VARS_4M.fd", "/usr/share/OVMF/OVMF_VARS.fd"];

/** What every local hypervisor needs to boot an image (QEMU and VirtualBox extend it). */
export interface LocalVmOptions {
  readonly image: StoredImage;
  readonly home: KilnHome;
  readonly firmware: Firmware;
  readonly forwards: readonly PortForward[];
  /** Boot-time env (seed drive); KILN_ENV defaults to dev in the init. */
  readonly env: Readonly<Record<string, string>>;
  readonly memoryMiB?: number;
  readonly cpus?: number;
}

export interface StartVmOptions extends LocalVmOptions {
  readonly accelerator?: Accelerator;
  /** Disk to boot instead of the store's raw disk (another format of the same image). */
  readonly disk?: { readonly path: string; readonly format: string };
  /** The root disk's controller (default virtio). */
  readonly diskBus?: DiskBus;
  readonly name?: string;
  /** Who started the VM (a local environment), so it can find VMs it lost track of. */
  readonly owner?: string;
  /** Attach the seed drive (default true); without it the init asks the instance metadata service. */
  readonly seedDrive?: boolean;
  /**
   * An EC2-style instance metadata service listening on 127.0.0.1:hostPort, reachable from the
   * guest at 169.254.169.254:80 (the VM's user network becomes 169.254.0.0/16; host: 169.254.2.2).
   */
  readonly imds?: { readonly hostPort: number };
}

/** Relays one guest connection (stdin/stdout, as QEMU's guestfwd hands it over) to a host TCP port. */
function tcpRelayCommand(hostPort: number): string {
  const script = [
    `const s=require("net").connect(+process.argv[1],"127.0.0.1")`,
    "process.stdin.pipe(s)",
    "s.pipe(process.stdout)",
    `s.on("close",()=>process.stdout.write("",()=>process.exit(0)))`,
    `s.on("error",()=>process.exit(1))`,
  ].join(";");
  return `'${process.execPath}' -e '${script}' ${hostPort}`;
}

export interface VmRecord {
  readonly id: string;
  readonly name: string;
  readonly image: string;
  readonly digest: string;
  readonly pid: number;
  readonly forwards: readonly PortForward[];
  readonly firmware: Firmware;
  readonly accelerator: Accelerator;
  readonly startedAt: string;
  readonly owner?: string;
}

async function firstExisting(paths: readonly string[], what: string): Promise<string> {
  for (const p of paths) if (await exists(p)) return p;
  throw new KilnError(`${what} not found (looked for ${paths.join(", ")})`, { hint: "install it with: apt-get install ovmf" });
}

export class LocalVm {
  private constructor(
    readonly record: VmRecord,
    readonly dir: string,
    readonly process: Spawned,
    readonly startedAtMs: number,
    private readonly home: KilnHome,
  ) {}

  get consoleFile(): string {
    return path.join(this.dir, "console.log");
  }

  static async start(options: StartVmOptions): Promise<LocalVm> {
    await requireTools(["qemu-system-x86_64", "mkfs.fat", "mcopy"]);
    for (const f of options.forwards) await checkPortFree(f.hostAddress, f.hostPort);
    const accelerator = await chooseAccelerator(options.home, options.accelerator);
    const id = randomBytes(4).toString("hex");
    const dir = path.join(options.home.vms, id);
    // The VM's files hold its -e values (user-data, seed drive) and what it prints: owner only.
    await makePrivateDir(dir);
    const seed = options.seedDrive === false ? undefined : await buildSeedImage(options.env, dir, { instanceId: id });
    const guestForwards: GuestForward[] = options.imds
      ? [{ guestAddress: IMDS_ADDRESS, guestPort: 80, command: tcpRelayCommand(options.imds.hostPort) }]
      : [];
    let ovmf: { code: string; vars: string } | undefined;
    if (options.firmware === "uefi") {
      const code = await firstExisting(OVMF_CODE, "OVMF UEFI firmware");
      const vars = path.join(dir, "OVMF_VARS.fd");
      await copyFile(
        await firstExisting(
          OVMF_VARS.filter((v) => v.includes("_4M") === code.includes("_4M")),
          "OVMF variable store",
        ),
        vars,
      );
      await makePrivate(vars);
      ovmf = { code, vars };
    }
    const manifest = options.image.manifest;
    const consoleFile = path.join(dir, "console.log");
    await writePrivateFile(consoleFile, "");
    const argv = buildQemuArgs({
      disk: options.disk?.path ?? options.image.disk,
      diskFormat: options.disk?.format ?? "raw",
      ...(options.diskBus ? { diskBus: options.diskBus } : {}),
      seed,
      firmware: options.firmware,
      ...(ovmf ? { ovmf } : {}),
      accelerator,
      memoryMiB: options.memoryMiB ?? manifest.resources.memoryMiB,
      cpus: options.cpus ?? manifest.resources.cpus,
      forwards: options.forwards,
      consoleFile,
      qmpSocket: path.join(dir, "qmp.sock"),
      pidFile: path.join(dir, "qemu.pid"),
      ...(options.imds ? { network: IMDS_USER_NETWORK, guestForwards } : {}),
    });
    const startedAtMs = performance.now();
    const child = spawnDetached(argv);
    if (child.pid < 0) {
      const exit = await child.exited;
      throw new KilnError(`could not start QEMU: ${child.commandLine}\n${exit.stderrTail}`);
    }
    const record: VmRecord = {
      id,
      name: options.name ?? `${manifest.name}-${id}`,
      image: `${manifest.name}:${manifest.version}`,
      digest: manifest.digest,
      pid: child.pid,
      forwards: options.forwards,
      firmware: options.firmware,
      accelerator,
      startedAt: new Date().toISOString(),
      ...(options.owner ? { owner: options.owner } : {}),
    };
    await writePrivateFile(path.join(dir, "vm.json"), `${JSON.stringify(record, null, 2)}\n`);
    return new LocalVm(record, dir, child, startedAtMs, options.home);
  }

  /** Resolves with a description once QEMU has exited. */
  get exited(): Promise<string> {
    return this.process.exited.then(
      (e) => `QEMU exited (${e.signal ? `signal ${e.signal}` : `status ${e.exitCode}`})${e.stderrTail ? `: ${e.stderrTail}` : ""}`,
    );
  }

  /** Calls `sink` with console output as it arrives, until `stop()` is called. */
  followConsole(sink: (text: string) => void): { stop: () => Promise<void> } {
    let offset = 0;
    let running = true;
    const pump = async () => {
      const fh = await open(this.consoleFile, "r");
      try {
        const buf = Buffer.alloc(64 * 1024);
        for (;;) {
          const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
          if (bytesRead > 0) {
            offset += bytesRead;
            sink(buf.subarray(0, bytesRead).toString("utf8"));
            continue;
          }
          if (!running) break;
          await new Promise((r) => setTimeout(r, 100));
        }
      } finally {
        await fh.close();
      }
    };
    const done = pump();
    return {
      stop: async () => {
        running = false;
        await done;
      },
    };
  }

  async consoleTail(lines = 30): Promise<string> {
    const text = await readFile(this.consoleFile, "utf8").catch(() => "");
    return consoleTailOf(text, lines);
  }

  /**
   * Presses the ACPI power button (the init stops the app and powers off), waits up to
   * `graceMs`, then kills QEMU. Returns how the VM ended.
   */
  async shutdown(graceMs = 30_000): Promise<"clean" | "killed" | "already-stopped"> {
    const exited = this.process.exited;
    if ((await settlesWithin(exited, 0)).settled) return "already-stopped";
    try {
      await qmpCommand(path.join(this.dir, "qmp.sock"), "system_powerdown");
    } catch {
      // QMP not up yet or already gone: fall through to the timeout and kill.
    }
    // The grace timer must not outlive the VM: it would hold kiln run open for the rest of graceMs.
    if ((await settlesWithin(exited, graceMs)).settled) return "clean";
    try {
      process.kill(-this.record.pid, "SIGKILL");
    } catch {
      this.process.child.kill("SIGKILL");
    }
    await this.process.exited;
    return "killed";
  }

  /** Lets kiln exit while the VM keeps running (kiln run --detach); kiln stop ends it later. */
  detach(): void {
    this.process.child.stderr?.destroy();
    this.process.child.unref();
  }

  /**
   * Removes the VM's directory after shutdown; its console is kept (kiln logs ID) in the archive of
   * stopped VMs' consoles, whose path this returns. `failed` keeps it among the failed runs.
   */
  async cleanup(ending: { how?: StopHow; failed?: boolean; reason?: string } = {}): Promise<string | undefined> {
    return retireVmDir(this.home, this.dir, { how: ending.how ?? "clean", ...ending, stoppedAt: new Date() });
  }
}
