/**
 * A kiln image running in VirtualBox, driven through VBoxManage (VirtualBox 7; the options used
 * also exist in 6.1). The VM gets hardware the image's kernel has drivers for: the disk on a
 * PIIX4 IDE controller (ata_piix; VirtualBox's default AHCI has no driver in the Debian cloud
 * kernel) and a virtio-net NIC (it has no e1000). The disk is a private clone of the cached VDI
 * with a fresh UUID, so VirtualBox never opens, registers or writes the store's files.
 *
 * Layout: VirtualBox's settings under $KILN_HOME/vms/virtualbox/<vm>/, and per run a directory
 * $KILN_HOME/vms/<id>/ (vm.json, console.log, disk clone, seed drive) like a QEMU VM's, so
 * `kiln ps`, `logs` and `stop` treat both alike.
 */
import type { LocalVmOptions } from "./qemu.js";
import { retireVmDir, type StopHow } from "../run/console-archive.js";
import { processAlive } from "../process-alive.js";
import { randomBytes } from "node:crypto";
import { open, readdir, readFile, rm } from "node:fs/promises";
import path from "node:path";
import { InputError, KilnError, ToolMissingError } from "../errors.js";
import { requireTools, run } from "../exec.js";
import type { KilnHome } from "../home.js";
import { copySparse, ensureFormat, setVdiUuids } from "../image/formats.js";
import type { StoredImage } from "../image/store.js";
import { checkPortFree } from "../run/ports.js";
import { buildSeedImage } from "../run/seed.js";
import type { Firmware, PortForward } from "./qemu-args.js";
import { consoleTailOf } from "../console-text.js";
import { makePrivate, makePrivateDir, writePrivateFile } from "../private-fs.js";

/** VBoxManage is missing. VirtualBox is not in Debian's main archive: say where it comes from. */
export class VirtualBoxMissingError extends ToolMissingError {
  override readonly hint =
    "install VirtualBox 7 from Oracle's Linux packages (e.g. the virtualbox-7.0 package from Oracle's apt repository; " +
    "Debian's main archive does not carry it), then check that VBoxManage is on PATH; or boot with QEMU: kiln run REF";

  constructor() {
    super("VBoxManage", "virtualbox-7.0");
  }
}

export interface VboxVmRecord {
  readonly hypervisor: "virtualbox";
  readonly id: string;
  /** The VirtualBox VM name. */
  readonly name: string;
  readonly uuid: string;
  readonly image: string;
  readonly digest: string;
  /** The kiln process that started the VM; a stopped VM whose owner is gone is cleaned up. */
  readonly ownerPid: number;
  readonly forwards: readonly PortForward[];
  readonly firmware: Firmware;
  readonly startedAt: string;
}

/** Runs VBoxManage; a missing binary becomes VirtualBoxMissingError. */
export async function vboxManage(args: readonly string[]): Promise<string> {
  try {
    return (await run(["VBoxManage", ...args], { timeoutMs: 120_000 })).stdout;
  } catch (error) {
    if (error instanceof ToolMissingError) throw new VirtualBoxMissingError();
    throw error;
  }
}

async function requireVBoxManage(): Promise<void> {
  try {
    await requireTools(["VBoxManage"]);
  } catch (error) {
    if (error instanceof ToolMissingError) throw new VirtualBoxMissingError();
    throw error;
  }
}

// ---- VBoxManage output ------------------------------------------------------------------------

/** `list vms` / `list runningvms`: lines of `"name" {uuid}`. */
export function parseVmList(stdout: string): { name: string; uuid: string }[] {
  const out: { name: string; uuid: string }[] = [];
  for (const line of stdout.split("\n")) {
    const match = /^"(.*)" \{([0-9a-fA-F-]{36})\}\s*$/.exec(line);
    if (match) out.push({ name: match[1]!, uuid: match[2]!.toLowerCase() });
  }
  return out;
}

/** `createvm --register`: "Virtual machine 'x' is created and registered.\nUUID: …\nSettings file: '…'". */
export function parseCreateVm(stdout: string): { uuid: string; settingsFile: string | undefined } {
  const uuid = /^UUID:\s*([0-9a-fA-F-]{36})\s*$/m.exec(stdout)?.[1];
  if (!uuid) throw new KilnError(`VBoxManage createvm printed no UUID:\n${stdout.trim()}`);
  return { uuid: uuid.toLowerCase(), settingsFile: /^Settings file:\s*'(.*)'\s*$/m.exec(stdout)?.[1] };
}

/** `showvminfo --machinereadable`: `key="value"`, `"key"="value"` or `key=number` lines. */
export function parseMachineReadable(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of stdout.split("\n")) {
    const match = /^("(?:[^"\\]|\\.)*"|[^=]+)=(.*)$/.exec(line.trimEnd());
    if (!match) continue;
    const unquote = (s: string) => (s.length >= 2 && s.startsWith('"') && s.endsWith('"') ? s.slice(1, -1).replace(/\\(.)/g, "$1") : s);
    out[unquote(match[1]!)] = unquote(match[2]!);
  }
  return out;
}

/** `getextradata VM KEY`: "Value: x" or "No value set!". */
export function parseExtraData(stdout: string): string | undefined {
  return /^Value: (.*)$/m.exec(stdout)?.[1];
}

// ---- the plan ---------------------------------------------------------------------------------

export const KILN_MARKER = "kiln/image";
const CONTROLLER = "IDE";

/** A registered VM of the same name, as VBoxManage describes it. */
export interface ExistingVm {
  readonly uuid: string;
  readonly state: string;
  /** The image ref kiln stored on it, or undefined when kiln did not create it. */
  readonly kilnImage: string | undefined;
  readonly hasController: boolean;
  readonly media: readonly { port: string; device: string; uuid: string }[];
  readonly natRules: readonly string[];
}

export function describeExisting(info: Readonly<Record<string, string>>, kilnImage: string | undefined): ExistingVm {
  const media: { port: string; device: string; uuid: string }[] = [];
  for (const [key, value] of Object.entries(info)) {
    const match = new RegExp(`^${CONTROLLER}-ImageUUID-(\\d+)-(\\d+)$`).exec(key);
    if (match && value && value !== "none") media.push({ port: match[1]!, device: match[2]!, uuid: value });
  }
  return {
    uuid: (info.UUID ?? "").toLowerCase(),
    state: info.VMState ?? "unknown",
    kilnImage,
    hasController: Object.entries(info).some(([k, v]) => /^storagecontrollername\d+$/.test(k) && v === CONTROLLER),
    media,
    natRules: Object.entries(info)
      .filter(([k]) => /^Forwarding\(\d+\)$/.test(k))
      .map(([, v]) => v.split(",")[0]!)
      .filter(Boolean),
  };
}

const STOPPED_STATES = new Set(["poweroff", "aborted", "saved"]);

/**
 * A VM of that name can be reused only when kiln made it and it is not running; anything
 * else is a collision the user has to resolve (kiln never touches a VM it did not create).
 */
export function checkExisting(name: string, existing: ExistingVm | undefined): void {
  if (!existing) return;
  if (existing.kilnImage === undefined) {
    throw new InputError(`a VirtualBox VM named '${name}' already exists and kiln did not create it`, {
      hint: "pick another VM name with --name, or rename or remove that VM in VirtualBox",
    });
  }
  if (!STOPPED_STATES.has(existing.state)) {
    throw new InputError(`VirtualBox VM '${name}' (${existing.kilnImage}) is already ${existing.state}`, {
      hint: `stop it first (kiln stop ${name}), or run another copy under another name with --name`,
    });
  }
}

export interface VboxVmConfig {
  readonly name: string;
  readonly ref: string;
  readonly digest: string;
  readonly baseFolder: string;
  readonly memoryMiB: number;
  readonly cpus: number;
  readonly firmware: Firmware;
  readonly forwards: readonly PortForward[];
  readonly consoleFile: string;
  readonly disk: string;
  readonly seed: string;
}

export interface VboxStep {
  readonly args: readonly string[];
  /** Clean-up of a reused VM's leftovers: failure does not stop the plan. */
  readonly tolerateFailure?: true;
}

export function natRuleName(f: PortForward): string {
  return `kiln-tcp-${f.hostPort}`;
}

/** The VBoxManage commands that create (or reuse) the VM and attach this run's disks. Pure. */
export function planVmSetup(c: VboxVmConfig, existing: ExistingVm | undefined): VboxStep[] {
  const steps: VboxStep[] = [];
  if (!existing) {
    steps.push({ args: ["createvm", "--name", c.name, "--ostype", "Debian_64", "--basefolder", c.baseFolder, "--register"] });
  } else {
    if (existing.state === "saved") steps.push({ args: ["discardstate", c.name] });
    for (const m of existing.media)
      steps.push({
        args: ["storageattach", c.name, "--storagectl", CONTROLLER, "--port", m.port, "--device", m.device, "--medium", "none"],
        tolerateFailure: true,
      });
    // The old clones are kiln's own files (never the store's): forget and delete them.
    for (const m of existing.media) steps.push({ args: ["closemedium", "disk", m.uuid, "--delete"], tolerateFailure: true });
    for (const rule of existing.natRules) steps.push({ args: ["modifyvm", c.name, "--natpf1", "delete", rule], tolerateFailure: true });
  }
  steps.push({ args: ["setextradata", c.name, KILN_MARKER, c.ref] }, { args: ["setextradata", c.name, "kiln/digest", c.digest] });
  steps.push({
    args: [
      "modifyvm",
      c.name,
      "--description",
      `kiln image ${c.ref} (${c.digest})`,
      "--memory",
      String(c.memoryMiB),
      "--cpus",
      String(c.cpus),
      "--firmware",
      c.firmware === "uefi" ? "efi" : "bios",
      "--acpi",
      "on",
      "--ioapic",
      "on",
      "--rtcuseutc",
      "on",
      "--boot1",
      "disk",
      "--boot2",
      "none",
      "--boot3",
      "none",
      "--boot4",
      "none",
      "--nic1",
      "nat",
      "--nictype1",
      "virtio",
      "--cableconnected1",
      "on",
      "--uart1",
      "0x3F8",
      "4",
      "--uartmode1",
      "file",
      c.consoleFile,
      ...c.forwards.flatMap((f) => ["--natpf1", `${natRuleName(f)},tcp,${f.hostAddress},${f.hostPort},,${f.guestPort}`]),
    ],
  });
  if (!existing?.hasController)
    steps.push({ args: ["storagectl", c.name, "--name", CONTROLLER, "--add", "ide", "--controller", "PIIX4", "--bootable", "on"] });
  steps.push(
    { args: ["storageattach", c.name, "--storagectl", CONTROLLER, "--port", "0", "--device", "0", "--type", "hdd", "--medium", c.disk] },
    { args: ["storageattach", c.name, "--storagectl", CONTROLLER, "--port", "0", "--device", "1", "--type", "hdd", "--medium", c.seed] },
  );
  return steps;
}

export function defaultVmName(image: StoredImage): string {
  return `kiln-${image.manifest.name}-${image.manifest.version}`;
}

// ---- observing VirtualBox ---------------------------------------------------------------------

export async function findExistingVm(name: string): Promise<ExistingVm | undefined> {
  const vms = parseVmList(await vboxManage(["list", "vms"]));
  if (!vms.some((v) => v.name === name)) return undefined;
  const info = parseMachineReadable(await vboxManage(["showvminfo", name, "--machinereadable"]));
  const marker = parseExtraData(await vboxManage(["getextradata", name, KILN_MARKER]));
  return describeExisting(info, marker);
}

/** UUIDs of running VMs, or undefined when VirtualBox is not installed. */
export async function runningVirtualBoxVms(): Promise<Set<string> | undefined> {
  try {
    return new Set(parseVmList(await vboxManage(["list", "runningvms"])).map((v) => v.uuid));
  } catch (error) {
    if (error instanceof VirtualBoxMissingError) return undefined;
    throw error;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// ---- the VM -----------------------------------------------------------------------------------

export interface StartVirtualBoxOptions extends LocalVmOptions {
  /** VirtualBox VM name (default kiln-<name>-<version>). */
  readonly name?: string;
  /** How often to ask VirtualBox whether the VM still runs (there is no event to wait on). */
  readonly pollMs?: number;
}

export class VirtualBoxVm {
  private detached = false;
  private exitedPromise: Promise<string> | undefined;
  private unregistered: Promise<void> | undefined;

  private constructor(
    readonly record: VboxVmRecord,
    readonly dir: string,
    readonly startedAtMs: number,
    private readonly pollMs: number,
  ) {}

  get consoleFile(): string {
    return path.join(this.dir, "console.log");
  }

  /** A handle on a VM another kiln process started (kiln stop). */
  static attach(record: VboxVmRecord, dir: string, pollMs = 500): VirtualBoxVm {
    return new VirtualBoxVm(record, dir, performance.now(), pollMs);
  }

  static async start(options: StartVirtualBoxOptions): Promise<VirtualBoxVm> {
    await requireVBoxManage();
    await requireTools(["mkfs.fat", "mcopy"]);
    const { image, home } = options;
    const name = options.name ?? defaultVmName(image);
    for (const f of options.forwards) await checkPortFree(f.hostAddress, f.hostPort);
    const existing = await findExistingVm(name);
    checkExisting(name, existing);

    const vdi = await ensureFormat(image, "vdi");
    const id = randomBytes(4).toString("hex");
    const dir = path.join(home.vms, id);
    await makePrivateDir(dir); // -e values (seed drive) and the console log: owner only
    let registered = existing !== undefined;
    try {
      // A private clone with fresh UUIDs: VirtualBox keys media by UUID, and a second VM (or an
      // exported copy) of the same image must not collide with this one.
      const disk = path.join(dir, "disk.vdi");
      await copySparse(vdi.path, disk);
      await setVdiUuids(disk, randomBytes(16), randomBytes(16));
      const seedRaw = await buildSeedImage(options.env, dir);
      const seed = path.join(dir, "seed.vdi");
      await vboxManage(["convertfromraw", seedRaw, seed, "--format", "VDI"]);
      await makePrivate(seed);
      const consoleFile = path.join(dir, "console.log");
      await writePrivateFile(consoleFile, "");
      await forgetStaleRuns(home, name);

      const m = image.manifest;
      const config: VboxVmConfig = {
        name,
        ref: `${m.name}:${m.version}`,
        digest: image.digest,
        baseFolder: path.join(home.vms, "virtualbox"),
        memoryMiB: options.memoryMiB ?? m.resources.memoryMiB,
        cpus: options.cpus ?? m.resources.cpus,
        firmware: options.firmware,
        forwards: options.forwards,
        consoleFile,
        disk,
        seed,
      };
      let uuid = existing?.uuid ?? "";
      for (const step of planVmSetup(config, existing)) {
        const out = await vboxManage(step.args).catch((error: unknown) => {
          if (step.tolerateFailure) return "";
          throw error;
        });
        if (step.args[0] === "createvm") {
          uuid = parseCreateVm(out).uuid;
          registered = true;
        }
      }
      const record: VboxVmRecord = {
        hypervisor: "virtualbox",
        id,
        name,
        uuid,
        image: config.ref,
        digest: image.digest,
        ownerPid: process.pid,
        forwards: options.forwards,
        firmware: options.firmware,
        startedAt: new Date().toISOString(),
      };
      await writePrivateFile(path.join(dir, "vm.json"), `${JSON.stringify(record, null, 2)}\n`);
      const startedAtMs = performance.now();
      await vboxManage(["startvm", name, "--type", "headless"]);
      return new VirtualBoxVm(record, dir, startedAtMs, options.pollMs ?? 1000);
    } catch (error) {
      if (registered) await vboxManage(["unregistervm", name, "--delete"]).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
      throw error;
    }
  }

  async isRunning(): Promise<boolean> {
    return (await runningVirtualBoxVms())?.has(this.record.uuid) ?? false;
  }

  /** Resolves with a description once the VM has stopped (polled: VBoxManage has no wait). */
  get exited(): Promise<string> {
    this.exitedPromise ??= (async () => {
      for (;;) {
        if (this.detached) return new Promise<string>(() => undefined);
        try {
          if (!(await this.isRunning())) return `VirtualBox VM ${this.record.name} is not running`;
        } catch (error) {
          return `cannot ask VirtualBox about ${this.record.name}: ${(error as Error).message}`;
        }
        await sleep(this.pollMs);
      }
    })();
    return this.exitedPromise;
  }

  private async waitStopped(ms: number): Promise<boolean> {
    const deadline = performance.now() + ms;
    for (;;) {
      if (!(await this.isRunning().catch(() => false))) return true;
      if (performance.now() >= deadline) return false;
      await sleep(Math.min(this.pollMs, 500));
    }
  }

  /**
   * ACPI power button (the init stops the app and powers off), up to `graceMs`; then a hard
   * power-off. Either way the VM is unregistered afterwards, its clone disks deleted.
   */
  async shutdown(graceMs = 30_000): Promise<"clean" | "killed" | "already-stopped"> {
    let how: "clean" | "killed" | "already-stopped";
    if (!(await this.isRunning().catch(() => false))) how = "already-stopped";
    else {
      if (graceMs > 0) await vboxManage(["controlvm", this.record.name, "acpipowerbutton"]).catch(() => undefined);
      if (graceMs > 0 && (await this.waitStopped(graceMs))) how = "clean";
      else {
        await vboxManage(["controlvm", this.record.name, "poweroff"]).catch(() => undefined);
        await this.waitStopped(15_000);
        how = "killed";
      }
    }
    await this.unregister();
    return how;
  }

  /** unregistervm --delete removes the settings and the attached clones; retried while VirtualBox still holds the session lock. */
  private unregister(): Promise<void> {
    this.unregistered ??= (async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          await vboxManage(["unregistervm", this.record.name, "--delete"]);
          return;
        } catch (error) {
          if (attempt >= 10 || !/lock|session|busy/i.test((error as Error).message)) return;
          await sleep(500);
        }
      }
    })();
    return this.unregistered;
  }

  /** Calls `sink` with console output as it arrives, until `stop()` is called. */
  followConsole(sink: (text: string) => void): { stop: () => Promise<void> } {
    let running = true;
    const done = followFile(this.consoleFile, sink, () => running);
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

  /** Lets kiln exit while the VM keeps running (kiln run --detach); kiln stop ends it later. */
  detach(): void {
    this.detached = true;
  }

  /** Removes this run's directory after shutdown, keeping its console (kiln logs ID); returns the kept console's path. */
  async cleanup(ending: { how?: StopHow; failed?: boolean; reason?: string } = {}): Promise<string | undefined> {
    // The run directory is $KILN_HOME/vms/<id>.
    const home = { root: path.dirname(path.dirname(this.dir)) };
    return retireVmDir(home, this.dir, { how: ending.how ?? "clean", ...ending, stoppedAt: new Date() });
  }
}

/**
 * Reads a file as it grows, reopening it each round: VirtualBox opens the serial log with
 * create-or-truncate when the VM starts, so a shrink means start again from the top.
 */
async function followFile(file: string, sink: (text: string) => void, keepGoing: () => boolean): Promise<void> {
  let offset = 0;
  const buf = Buffer.alloc(64 * 1024);
  for (;;) {
    let bytesRead = 0;
    const fh = await open(file, "r").catch(() => undefined);
    if (fh) {
      try {
        const size = (await fh.stat()).size;
        if (size < offset) offset = 0;
        ({ bytesRead } = await fh.read(buf, 0, buf.length, offset));
      } finally {
        await fh.close();
      }
    }
    if (bytesRead > 0) {
      offset += bytesRead;
      sink(buf.subarray(0, bytesRead).toString("utf8"));
      continue;
    }
    if (!keepGoing()) return;
    await sleep(100);
  }
}

/** Run directories of earlier runs of this VM whose kiln process is gone: they are stale. */
async function forgetStaleRuns(home: KilnHome, name: string): Promise<void> {
  for (const id of await readdir(home.vms).catch(() => [])) {
    const dir = path.join(home.vms, id);
    const record = await readFile(path.join(dir, "vm.json"), "utf8").then(
      (t) => JSON.parse(t) as Partial<VboxVmRecord>,
      () => undefined,
    );
    if (record?.hypervisor === "virtualbox" && record.name === name && !processAlive(record.ownerPid ?? -1))
      await rm(dir, { recursive: true, force: true });
  }
}

/** Stops a VM started by another kiln process, unregisters it and removes its run directory. */
export async function stopVirtualBoxVm(record: VboxVmRecord, dir: string, graceMs: number): Promise<"clean" | "killed"> {
  const vm = VirtualBoxVm.attach(record, dir);
  const how = await vm.shutdown(graceMs);
  await vm.cleanup();
  return how === "killed" ? "killed" : "clean";
}

/** A VM that stopped while no kiln process watched it: unregister it (if still there) and drop its run. */
export async function forgetVirtualBoxVm(record: VboxVmRecord, dir: string): Promise<void> {
  const still = parseVmList(await vboxManage(["list", "vms"]).catch(() => "")).some((v) => v.uuid === record.uuid);
  if (still) await vboxManage(["unregistervm", record.uuid, "--delete"]).catch(() => undefined);
  await retireVmDir({ root: path.dirname(path.dirname(dir)) }, dir, { how: "stopped-unwatched" });
}

export function ownerAlive(record: VboxVmRecord): boolean {
  return processAlive(record.ownerPid);
}
