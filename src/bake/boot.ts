/**
 * Boot partition: a FAT32 volume that boots under legacy BIOS (syslinux, installed into the
 * FAT image with mtools, no root or loop mounts) and UEFI (systemd-boot as the removable-media
 * loader EFI/BOOT/BOOTX64.EFI). Both load the same kernel, initramfs and command line.
 * Timestamps and the volume id are fixed, so the same inputs give the same bytes.
 */
import { mkdir, readFile, stat, utimes, writeFile } from "node:fs/promises";
import path from "node:path";
import { describeControl } from "../config/schema-messages.js";
import { KilnError } from "../errors.js";
import { run } from "../exec.js";
import { exists, makeScratchDir, removeDir, sha256, cachedSha256 } from "../fsutil.js";
import { lockEntryOf, packageIdentity } from "../packages/apt.js";
import { resolveDebian, type BakeContext } from "./context.js";
import type { InitLayer } from "./initramfs.js";
import type { KernelLayer } from "./kernel.js";

export const BOOT_PARTITION_MIB = 64;
/** FAT timestamps: 2020-01-01, via mtools' SOURCE_DATE_EPOCH support and file mtimes. */
const FIXED_EPOCH = 1577836800;

/** The highest nvme_core.io_timeout current kernels accept (earlier ones: 255); what AWS recommends for EBS on Nitro. */
export const NVME_IO_TIMEOUT_SECONDS = 4294967295;

export interface BootLayer {
  readonly path: string;
  readonly sha256: string;
  readonly bytes: number;
  readonly cached: boolean;
  /** syslinux's MBR boot code for the first 440 bytes of the disk. */
  readonly mbrCode: Buffer;
  readonly cmdline: string;
}

export function kernelCommandLine(diskSignature: string): string {
  // The signature is kiln's own hex; checked anyway, since a space would add a kernel parameter.
  if (!/^[0-9a-f]{8}$/.test(diskSignature)) throw new KilnError(`disk signature '${diskSignature}' is not 8 hex digits`);
  // ttyS0 last so it becomes /dev/console: the serial console is what QEMU, VirtualBox
  // and EC2 (GetConsoleOutput) show. panic=-1 reboots at once, which ends a -no-reboot VM.
  // EBS volumes are NVMe devices on Nitro instances: a slow I/O must not fail after the driver's
  // default 30 s and leave the root read-only, so the timeout is the highest current kernels take
  // ("NVMe I/O operation timeout for Amazon EBS volumes", Amazon EBS User Guide). The cloud kernel
  // has NVMe built in, where only the command line can set it.
  return `console=tty0 console=ttyS0,115200n8 quiet panic=-1 nvme_core.io_timeout=${NVME_IO_TIMEOUT_SECONDS} kiln.disk=${diskSignature}`;
}

/**
 * One value of a boot loader file (syslinux.cfg, a systemd-boot entry): both read a setting per
 * line, so a control character could add a line (`options init=/bin/sh`). Refused, not escaped:
 * neither format has a way to quote a newline.
 */
export function bootValue(value: string, what: string): string {
  const control = describeControl(value);
  if (control) throw new KilnError(`the boot loader ${what} ${control}: ${JSON.stringify(value)}`);
  return value;
}

export function fillBootTemplate(template: string, values: Readonly<Record<string, string>>): string {
  return template.replace(/\{\{(\w+)\}\}/g, (_, key: string) => bootValue(values[key] ?? "", key));
}

export async function buildBootPartition(
  kernel: KernelLayer,
  init: InitLayer,
  title: string,
  diskSignature: string,
  ctx: BakeContext,
): Promise<BootLayer> {
  const syslinuxPkg = await resolveDebian(ctx, "syslinux-common");
  const sdbootPkg = await resolveDebian(ctx, "systemd-boot-efi");
  ctx.used.push(lockEntryOf(syslinuxPkg, "boot"), lockEntryOf(sdbootPkg, "boot"));
  const syslinuxTree = await ctx.apt.unpack(syslinuxPkg);
  const sdbootTree = await ctx.apt.unpack(sdbootPkg);
  const mbrCode = (await readFile(path.join(syslinuxTree, "usr/lib/syslinux/mbr/mbr.bin"))).subarray(0, 440);
  const cmdline = kernelCommandLine(diskSignature);
  const installer = (await run(["syslinux", "--version"]).catch(() => ({ stdout: "", stderr: "" }))).stderr.trim();
  const templates = await Promise.all(
    ["syslinux.cfg", "loader.conf", "kiln.conf"].map((f) => readFile(path.join(ctx.templates, "boot", f), "utf8")),
  );
  const key = sha256(
    [kernel.identity, init.sha256, packageIdentity(syslinuxPkg), packageIdentity(sdbootPkg), installer, cmdline, title, ...templates].join(
      "\0",
    ),
  ).slice(0, 32);
  const out = path.join(ctx.layers, `boot-${key}.fat`);
  if (await exists(out))
    return { path: out, sha256: await cachedSha256(out), bytes: (await stat(out)).size, cached: true, mbrCode, cmdline };

  const work = await makeScratchDir(ctx.scratch, "boot");
  try {
    const [syslinuxCfg, loaderConf, entry] = templates as [string, string, string];
    const files: [string, string][] = [
      [kernel.vmlinuz, "vmlinuz"],
      [init.path, "initrd.img"],
      [await stage(work, "syslinux.cfg", fillBootTemplate(syslinuxCfg, { cmdline })), "syslinux.cfg"],
      [path.join(sdbootTree, "usr/lib/systemd/boot/efi/systemd-bootx64.efi"), "EFI/BOOT/BOOTX64.EFI"],
      [await stage(work, "loader.conf", loaderConf), "loader/loader.conf"],
      [await stage(work, "kiln.conf", fillBootTemplate(entry, { cmdline, title })), "loader/entries/kiln.conf"],
    ];
    const image = path.join(work, "boot.fat");
    const env = { SOURCE_DATE_EPOCH: String(FIXED_EPOCH), MTOOLS_SKIP_CHECK: "1" };
    // The volume id derives from the contents, so it is stable and differs between images.
    const volumeId = key.slice(0, 8);
    await run(["mkfs.fat", "-F", "32", "-n", "KILNBOOT", "-i", volumeId, "--invariant", "-C", image, String(BOOT_PARTITION_MIB * 1024)], {
      env,
    });
    for (const dir of ["EFI", "EFI/BOOT", "loader", "loader/entries"]) await run(["mmd", "-i", image, `::/${dir}`], { env });
    for (const [source, dest] of files) {
      const copy = path.join(work, "in", dest);
      await mkdir(path.dirname(copy), { recursive: true });
      await writeFile(copy, await readFile(source));
      await utimes(copy, FIXED_EPOCH, FIXED_EPOCH);
      await run(["mcopy", "-m", "-i", image, copy, `::/${dest}`], { env });
    }
    await run(["syslinux", "--install", image], { env });
    const { rename } = await import("node:fs/promises");
    await mkdir(ctx.layers, { recursive: true });
    await rename(image, out);
    return { path: out, sha256: await cachedSha256(out), bytes: (await stat(out)).size, cached: false, mbrCode, cmdline };
  } finally {
    await removeDir(work);
  }
}

async function stage(dir: string, name: string, content: string): Promise<string> {
  const file = path.join(dir, "templates", name);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, content);
  return file;
}
