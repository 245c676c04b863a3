/**
 * Is KVM really usable? /dev/kvm can exist and still make QEMU assert or hang (nested or
 * restricted hosts), so boot a one-sector guest that writes to isa-debug-exit and see if QEMU
 * ends with that guest's exit code in time. The answer is cached per host boot.
 */
import { access, constants, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { run } from "../exec.js";
import type { KilnHome } from "../home.js";
import { makePrivateDir } from "../private-fs.js";
import type { Accelerator } from "./qemu-args.js";

/** mov al, 0x01; out 0xf4, al; hlt — then the 0x55AA boot signature. Booted with the same machine and CPU model as real VMs, since KVM can fail only on those (MSR setup asserts). */
function probeSector(): Buffer {
  const sector = Buffer.alloc(512);
  Buffer.from([0xb0, 0x01, 0xe6, 0xf4, 0xf4]).copy(sector, 0);
  sector[510] = 0x55;
  sector[511] = 0xaa;
  return sector;
}

async function kvmBoots(dir: string): Promise<boolean> {
  try {
    await access("/dev/kvm", constants.R_OK | constants.W_OK);
  } catch {
    return false;
  }
  const disk = path.join(dir, "kvm-probe.img");
  await writeFile(disk, probeSector());
  try {
    await run(
      [
        "qemu-system-x86_64",
        "-accel",
        "kvm",
        "-machine",
        "q35",
        "-cpu",
        "host",
        "-nodefaults",
        "-display",
        "none",
        "-no-user-config",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=0x04",
        "-drive",
        `file=${disk},format=raw,if=virtio`,
      ],
      { timeoutMs: 8000 },
    );
    return false;
  } catch (error) {
    // isa-debug-exit makes QEMU exit with (value << 1) | 1 = 3: the guest really ran under KVM.
    return /exited with status 3\b/.test((error as Error).message);
  }
}

export async function chooseAccelerator(home: KilnHome, forced?: Accelerator): Promise<Accelerator> {
  if (forced) return forced;
  if (process.env.KILN_ACCEL === "tcg" || process.env.KILN_ACCEL === "kvm") return process.env.KILN_ACCEL;
  const bootId = (await readFile("/proc/sys/kernel/random/boot_id", "utf8").catch(() => "unknown")).trim();
  const cache = path.join(home.cache, `accel-${bootId}`);
  const cached = await readFile(cache, "utf8").catch(() => "");
  if (cached === "kvm" || cached === "tcg") return cached;
  await makePrivateDir(home.cache);
  const accel: Accelerator = (await kvmBoots(home.cache)) ? "kvm" : "tcg";
  await writeFile(cache, accel);
  return accel;
}
