/**
 * Local VMs as other kiln processes see them: each VM directory holds vm.json; a VM is running
 * while its QEMU pid is alive and still QEMU. Used by `kiln ps` and `kiln stop`.
 */
import { readdir, readFile, rm } from "node:fs/promises";
import path from "node:path";
import { NotFoundError } from "../errors.js";
import type { KilnHome } from "../home.js";
import type { VmRecord } from "./qemu.js";
import { qmpCommand } from "./qmp.js";

async function isQemu(pid: number): Promise<boolean> {
  const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
  return cmdline.includes("qemu-system");
}

export async function listVms(home: KilnHome): Promise<(VmRecord & { dir: string })[]> {
  const out: (VmRecord & { dir: string })[] = [];
  for (const id of (await readdir(home.vms).catch(() => [])).sort()) {
    const dir = path.join(home.vms, id);
    const record = await readFile(path.join(dir, "vm.json"), "utf8").then((t) => JSON.parse(t) as VmRecord, () => undefined);
    if (!record) continue;
    if (await isQemu(record.pid)) out.push({ ...record, dir });
    else await rm(dir, { recursive: true, force: true }); // stopped without kiln: forget it
  }
  return out;
}

/** ACPI power button, wait up to graceMs for QEMU to exit, then kill it. */
export async function stopVm(home: KilnHome, idOrName: string, graceMs = 30_000): Promise<{ id: string; how: "clean" | "killed" }> {
  const vm = (await listVms(home)).find((v) => v.id === idOrName || v.name === idOrName);
  if (!vm) throw new NotFoundError(`no running VM named ${idOrName}`, { hint: "kiln ps lists the running VMs" });
  await qmpCommand(path.join(vm.dir, "qmp.sock"), "system_powerdown").catch(() => undefined);
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!(await isQemu(vm.pid))) {
      await rm(vm.dir, { recursive: true, force: true });
      return { id: vm.id, how: "clean" };
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  try {
    process.kill(-vm.pid, "SIGKILL");
  } catch {
    process.kill(vm.pid, "SIGKILL");
  }
  await rm(vm.dir, { recursive: true, force: true });
  return { id: vm.id, how: "killed" };
}
