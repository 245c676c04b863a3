/**
 * The "usual way" image the boot bench compares kiln with: what users build today without kiln.
 * debootstrap --variant=minbase of Debian bookworm + systemd + Debian's runtime for the app +
 * the same app started by a systemd unit, networking by systemd-networkd (DHCP), root on ext4,
 * Debian's cloud kernel with its initramfs-tools initramfs; on the disk kiln writes (DOS
 * partition table with syslinux's boot code, a FAT boot partition with syslinux for BIOS), so
 * only what is inside the image differs.
 *
 * Building it runs Debian's maintainer scripts in a chroot on this host (debootstrap, then
 * systemctl enable): acceptable for a benchmark, since that is the baseline users run today,
 * but it is why this lives in bench/ and never in kiln. Needs root. The root filesystem is made
 * with mkfs.ext4 -d from the tree and the FAT one with mtools: no loop mounts.
 */
import { createReadStream, existsSync } from "node:fs";
import { chmod, copyFile, mkdir, open, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { InputError } from "../src/errors.js";
import { run } from "../src/exec.js";
import { PART_TYPE_EFI, PART_TYPE_LINUX } from "../src/image/layout.js";
import { buildMbr, partUuid } from "../src/image/mbr.js";
import { type AptSource, parseDeb822Sources, parseSourcesList, pickMirror } from "./apt-sources.js";

export const SUITE = "bookworm";
const MiB = 1024 * 1024;
const HOST_MBR_CODE = "/usr/lib/syslinux/mbr/mbr.bin";

/** The app as the usual-way image runs it: files to copy under /opt/app and its systemd unit's command. */
export interface UsualWayApp {
  readonly name: string;
  /** Debian packages of the app's runtime (nodejs for Node; nothing for a static binary). */
  readonly runtimePackages: readonly string[];
  /** Host files copied to /opt/app under their base names. */
  readonly files: readonly string[];
  readonly execStart: string;
  readonly port: number;
}

export interface UsualWayBuild {
  readonly disk: string;
  readonly seconds: number;
  readonly rawBytes: number;
  readonly allocatedBytes: number;
  readonly kernel: string;
}

/**
 * Mount points at or under `dir`, from /proc/mounts text (octal escapes such as \040 decoded).
 * debootstrap mounts /proc and /sys (and may bind /dev) inside the tree while it installs; if it
 * was cut short they stay, and a recursive delete of the tree would reach into the host's.
 */
export function mountsUnder(procMounts: string, dir: string): string[] {
  const root = dir.replace(/\/+$/, "");
  return procMounts
    .split("\n")
    .map((line) => line.split(" ")[1])
    .filter((m): m is string => m !== undefined)
    .map((m) => m.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8))))
    .filter((m) => m === root || m.startsWith(`${root}/`));
}

/** Removes a directory the bench made, refusing while anything is mounted inside it. */
export async function removeTree(dir: string): Promise<void> {
  const mounted = mountsUnder(await readFile("/proc/mounts", "utf8").catch(() => ""), dir);
  if (mounted.length > 0)
    throw new Error(`not removing ${dir}: ${mounted.join(", ")} still mounted (a cut-short debootstrap); unmount them first (umount -R)`);
  await rm(dir, { recursive: true, force: true });
}

/** The host's mirror for bookworm, from /etc/apt/sources.list(.d); an InputError when none is configured. */
export async function hostMirror(etcApt = "/etc/apt"): Promise<string> {
  const sources: AptSource[] = [];
  const list = path.join(etcApt, "sources.list");
  if (existsSync(list)) sources.push(...parseSourcesList(await readFile(list, "utf8")));
  const dir = path.join(etcApt, "sources.list.d");
  const names = existsSync(dir) ? (await readdir(dir)).sort() : [];
  for (const name of names) {
    const text = await readFile(path.join(dir, name), "utf8");
    if (name.endsWith(".sources")) sources.push(...parseDeb822Sources(text));
    else if (name.endsWith(".list")) sources.push(...parseSourcesList(text));
  }
  const mirror = pickMirror(sources, SUITE);
  if (!mirror)
    throw new InputError(`no apt source of this host serves Debian ${SUITE} main (read ${etcApt}/sources.list and sources.list.d)`, {
      hint: `the usual-way image is debootstrapped from the host's mirror: add a '${SUITE}' source with the main component`,
    });
  return mirror;
}

function systemdUnit(app: UsualWayApp): string {
  return [
    "[Unit]",
    `Description=${app.name}`,
    "Wants=network-online.target",
    "After=network-online.target",
    "",
    "[Service]",
    "WorkingDirectory=/opt/app",
    `Environment=PORT=${app.port}`,
    `ExecStart=${app.execStart}`,
    "DynamicUser=yes",
    "Restart=on-failure",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
}

const DHCP_NETWORK = "[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\n";

/** Adds the app, its unit, DHCP networking, fstab and hostname to the debootstrapped tree. */
async function configureTree(tree: string, app: UsualWayApp): Promise<void> {
  const appDir = path.join(tree, "opt/app");
  await mkdir(appDir, { recursive: true });
  for (const file of app.files) {
    const dest = path.join(appDir, path.basename(file));
    await copyFile(file, dest);
    await chmod(dest, (await stat(file)).mode & 0o777);
  }
  await writeFile(path.join(tree, "etc/systemd/system/app.service"), systemdUnit(app));
  await writeFile(path.join(tree, "etc/systemd/network/80-dhcp.network"), DHCP_NETWORK);
  await writeFile(path.join(tree, "etc/fstab"), "LABEL=root / ext4 errors=remount-ro 0 1\n");
  await writeFile(path.join(tree, "etc/hostname"), `${app.name}\n`);
  await run(["chroot", tree, "systemctl", "enable", "systemd-networkd.service", "app.service"]);
  // What a Dockerfile-style build cleans up: the downloaded .debs (they stay in the cache dir).
  const archives = path.join(tree, "var/cache/apt/archives");
  for (const f of existsSync(archives) ? await readdir(archives) : []) if (f.endsWith(".deb")) await rm(path.join(archives, f));
}

async function findBootFile(tree: string, prefix: string): Promise<string> {
  const found = (await readdir(path.join(tree, "boot"))).filter((f) => f.startsWith(prefix)).sort();
  if (found.length === 0) throw new Error(`usual way: no /boot/${prefix}* in the tree (did linux-image-cloud-amd64 install?)`);
  return path.join(tree, "boot", found[found.length - 1]!);
}

/** The FAT boot partition: the Debian kernel, its initramfs and syslinux, like kiln's BIOS path. */
async function buildBootFat(work: string, vmlinuz: string, initrd: string, cmdline: string): Promise<string> {
  const fat = path.join(work, "boot.fat");
  const payload = (await stat(vmlinuz)).size + (await stat(initrd)).size;
  const mib = Math.max(64, Math.ceil((payload * 1.2) / MiB) + 8);
  await rm(fat, { force: true });
  const env = { MTOOLS_SKIP_CHECK: "1" };
  await run(["mkfs.fat", "-F", "32", "-n", "BOOT", "-C", fat, String(mib * 1024)], { env });
  const cfg = path.join(work, "syslinux.cfg");
  await writeFile(cfg, `DEFAULT linux\nPROMPT 0\nTIMEOUT 0\nLABEL linux\n  KERNEL /vmlinuz\n  APPEND initrd=/initrd.img ${cmdline}\n`);
  for (const [source, dest] of [
    [vmlinuz, "vmlinuz"],
    [initrd, "initrd.img"],
    [cfg, "syslinux.cfg"],
  ] as const)
    await run(["mcopy", "-i", fat, source, `::/${dest}`], { env });
  await run(["syslinux", "--install", fat], { env });
  return fat;
}

/** The ext4 root from the tree (mkfs.ext4 -d), with room to spare like a freshly installed system. */
async function buildRootExt4(work: string, tree: string): Promise<string> {
  const ext4 = path.join(work, "root.ext4");
  const { stdout } = await run(["du", "-sk", "--apparent-size", tree]);
  const kib = Number(stdout.split(/\s/)[0]);
  const sizeKib = Math.ceil((kib * 1.3 + 128 * 1024) / 1024) * 1024;
  await rm(ext4, { force: true });
  await run(["mkfs.ext4", "-q", "-F", "-L", "root", "-d", tree, ext4, `${sizeKib}k`]);
  return ext4;
}

/** A DOS-partitioned disk (syslinux's MBR code, boot partition active) with each image at a MiB boundary; zeros stay holes. */
async function writeDisk(out: string, signature: number, parts: readonly { path: string; type: number; bootable: boolean }[]) {
  const bootCode = (await readFile(HOST_MBR_CODE)).subarray(0, 440);
  let offset = MiB;
  const placed: { path: string; offset: number; bytes: number; type: number; bootable: boolean }[] = [];
  for (const p of parts) {
    const bytes = Math.ceil((await stat(p.path)).size / MiB) * MiB;
    placed.push({ ...p, offset, bytes });
    offset += bytes;
  }
  const mbr = buildMbr({
    bootCode,
    diskSignature: signature,
    partitions: placed.map((p) => ({ bootable: p.bootable, type: p.type, startLba: p.offset / 512, sectors: p.bytes / 512 })),
  });
  const fh = await open(out, "w");
  try {
    await fh.truncate(offset);
    await fh.write(mbr, 0, mbr.length, 0);
    const zero = Buffer.alloc(MiB);
    for (const p of placed) {
      let at = p.offset;
      for await (const chunk of createReadStream(p.path, { highWaterMark: MiB })) {
        const buf = chunk as Buffer;
        if (!buf.equals(zero.subarray(0, buf.length))) await fh.write(buf, 0, buf.length, at);
        at += buf.length;
      }
    }
  } finally {
    await fh.close();
  }
}

/**
 * Builds the usual-way disk for `app` in `work` (the tree is rebuilt from nothing every time);
 * `cacheDir` is debootstrap's package cache, so a second build reuses the downloaded .debs.
 */
export async function buildUsualWay(app: UsualWayApp, work: string, cacheDir: string, mirror: string): Promise<UsualWayBuild> {
  const started = performance.now();
  const tree = path.join(work, "tree");
  await removeTree(tree);
  await mkdir(cacheDir, { recursive: true });
  const include = ["systemd", "systemd-sysv", "linux-image-cloud-amd64", "initramfs-tools", ...app.runtimePackages];
  await run(["debootstrap", "--variant=minbase", `--cache-dir=${cacheDir}`, `--include=${include.join(",")}`, SUITE, tree, mirror], {
    timeoutMs: 3_600_000,
    hint: "the usual-way image needs debootstrap (scripts/install-deps.sh installs it), root, and the host's apt mirror",
  });
  await configureTree(tree, app);
  const signature = 0x5e000000 + (app.name.length & 0xff);
  const cmdline = `root=PARTUUID=${partUuid(signature, 2)} ro console=tty0 console=ttyS0,115200n8 quiet panic=-1`;
  const boot = await buildBootFat(work, await findBootFile(tree, "vmlinuz-"), await findBootFile(tree, "initrd.img-"), cmdline);
  const root = await buildRootExt4(work, tree);
  const disk = path.join(work, "disk.raw");
  await writeDisk(disk, signature, [
    { path: boot, type: PART_TYPE_EFI, bootable: true },
    { path: root, type: PART_TYPE_LINUX, bootable: false },
  ]);
  const seconds = (performance.now() - started) / 1000;
  const kernel = path.basename(await findBootFile(tree, "vmlinuz-"));
  await rm(boot, { force: true });
  await rm(root, { force: true });
  const st = await stat(disk);
  return { disk, seconds, rawBytes: st.size, allocatedBytes: st.blocks * 512, kernel };
}
