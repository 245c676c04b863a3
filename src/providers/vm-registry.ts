/**
 * Local VMs as other kiln processes see them: each VM directory holds vm.json. A QEMU VM is
 * running while its QEMU pid is alive and still QEMU; a VirtualBox VM while VirtualBox lists
 * its UUID among the running VMs. Used by `kiln ps`, `kiln logs` and `kiln stop`.
 */
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { NotFoundError } from "../errors.js";
import type { KilnHome } from "../home.js";
import type { VmRecord } from "./qemu.js";
import { qmpCommand } from "./qmp.js";
import { retireVmDir } from "../run/console-archive.js";
import { appKilledAtStop } from "../run/diagnose.js";
import { forgetVirtualBoxVm, ownerAlive, runningVirtualBoxVms, stopVirtualBoxVm, type VboxVmRecord } from "./virtualbox.js";

export type QemuVmEntry = VmRecord & { readonly hypervisor: "qemu"; readonly dir: string };
export type VboxVmEntry = VboxVmRecord & { readonly dir: string; readonly state: "running" | "starting" };
export type LocalVmEntry = QemuVmEntry | VboxVmEntry;

async function isQemu(pid: number): Promise<boolean> {
  const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
  return cmdline.includes("qemu-system");
}

export async function listVms(home: KilnHome): Promise<LocalVmEntry[]> {
  const out: LocalVmEntry[] = [];
  let running: Set<string> | undefined | null = null; // asked once, only when a VirtualBox VM is on record
  for (const id of (await readdir(home.vms).catch(() => [])).sort()) {
    const dir = path.join(home.vms, id);
    const record = await readFile(path.join(dir, "vm.json"), "utf8").then(
      (t) => JSON.parse(t) as (VmRecord & { hypervisor?: "qemu" }) | VboxVmRecord,
      () => undefined,
    );
    if (!record) continue;
    if (record.hypervisor === "virtualbox") {
      // VirtualBox unreachable (not installed, VBoxSVC failing): unknown, so keep the record.
      if (running === null) running = await runningVirtualBoxVms().catch(() => undefined);
      if (running?.has(record.uuid)) out.push({ ...record, dir, state: "running" });
      // Not running yet but its kiln process is alive: being set up (or shutting down).
      else if (ownerAlive(record)) out.push({ ...record, dir, state: "starting" });
      else if (running !== undefined) await forgetVirtualBoxVm(record, dir); // stopped without kiln
    } else if (await isQemu(record.pid)) out.push({ ...record, hypervisor: "qemu", dir });
    else await retireVmDir(home, dir, { how: "stopped-unwatched" }); // stopped without kiln: keep only its console
  }
  return out;
}

/** Finds a running VM by id or name. */
export async function findVm(home: KilnHome, idOrName: string): Promise<LocalVmEntry> {
  const vm = (await listVms(home)).find((v) => v.id === idOrName || v.name === idOrName);
  if (!vm) throw new NotFoundError(`no running VM named ${idOrName}`, { hint: "kiln ps lists the running VMs" });
  return vm;
}

/** Whether a listed VM still runs (kiln logs --follow stops when it does not). */
export async function vmStillRunning(vm: LocalVmEntry): Promise<boolean> {
  if (vm.hypervisor === "virtualbox") return (await runningVirtualBoxVms().catch(() => undefined))?.has(vm.uuid) ?? false;
  return isQemu(vm.pid);
}

/**
 * How a VM ended: "killed" when kiln had to kill the VM, "app-killed" when the VM powered off
 * but its init had to kill the app after stopTimeout (the console says so), else "clean".
 */
export type StopResult = { id: string; how: "clean" | "app-killed" | "killed"; console?: string };

/** ACPI power button, wait up to graceMs for the VM to power off, then kill it. The console is kept. */
export async function stopVm(home: KilnHome, idOrName: string, graceMs = 30_000): Promise<StopResult> {
  const vm = await findVm(home, idOrName);
  if (vm.hypervisor === "virtualbox") {
    const how = await stopVirtualBoxVm(vm, vm.dir, graceMs);
    return { id: vm.id, how };
  }
  await qmpCommand(path.join(vm.dir, "qmp.sock"), "system_powerdown").catch(() => undefined);
  const deadline = Date.now() + graceMs;
  let how: StopResult["how"] | undefined;
  while (Date.now() < deadline && !how) {
    if (!(await isQemu(vm.pid))) how = "clean";
    else await new Promise((r) => setTimeout(r, 200));
  }
  if (!how) {
    try {
      process.kill(-vm.pid, "SIGKILL");
    } catch {
      process.kill(vm.pid, "SIGKILL");
    }
    how = "killed";
  }
  if (how === "clean" && appKilledAtStop(await readFile(path.join(vm.dir, "console.log"), "utf8").catch(() => ""))) how = "app-killed";
  const kept = await retireVmDir(home, vm.dir, { how, stoppedAt: new Date() });
  return { id: vm.id, how, ...(kept ? { console: kept } : {}) };
}
