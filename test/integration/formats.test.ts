// Disk formats for real: qemu-img converts hello-native's raw disk to every format; each passes
// qemu-img check (where qemu-img has a checker), is identified by qemu-img info with the right
// size, holds exactly the raw disk's bytes, and comes out byte-identical from a second store.
// The VDI, the VMDK and the VHD boot under SeaBIOS and OVMF and the app answers HTTP: the bytes
// VirtualBox, VMware and Hyper-V would get are bootable. The OVA is checked as an archive, its
// OVF against the DMTF envelope structure and VirtualBox's reader. Where VirtualBox is
// installed, the VirtualBox driver boots the image for real (the skip is visible otherwise).
import { execFileSync, spawnSync } from "node:child_process";
import { createReadStream } from "node:fs";
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import tar from "tar-stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sha256, sha256File } from "../../src/fsutil.js";
import { kilnHome } from "../../src/home.js";
import { ensureFormat, FORMATS, inspectDiskFile, readVhdFooter, type DiskFormat } from "../../src/image/formats.js";
import type { StoredImage } from "../../src/image/store.js";
import { LocalVm } from "../../src/providers/qemu.js";
import type { Firmware } from "../../src/providers/qemu-args.js";
import { waitHealthy } from "../../src/run/health.js";
import { findFreePort } from "../../src/run/ports.js";
import { checkOvf } from "../fixtures/vbox/ovf-check.js";
import { vboxLifecycle } from "../fixtures/vbox/lifecycle.js";
import { bakeExample, cli, httpGet, repo, sharedHome } from "./harness.js";

const home = sharedHome();
const env = { KILN_HOME: home.root };
const DISKS: readonly DiskFormat[] = ["vdi", "vmdk", "vmdk-stream", "vhd", "qcow2"];
let image: StoredImage;
let scratch: string;

beforeAll(async () => {
  ({ image } = await bakeExample("hello-native", home));
  scratch = await mkdtemp(path.join(os.tmpdir(), "kiln-formats-it-"));
});

afterAll(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

function qemuImg(args: string[]): { status: number | null; out: string } {
  const result = spawnSync("qemu-img", args, { encoding: "utf8" });
  return { status: result.status, out: `${result.stdout}${result.stderr}` };
}

async function readTar(file: string): Promise<{ name: string; size: number; data: Buffer }[]> {
  const entries: { name: string; size: number; data: Buffer }[] = [];
  const extract = tar.extract();
  extract.on("entry", (header, stream, next) => {
    const chunks: Buffer[] = [];
    stream.on("data", (c: unknown) => chunks.push(c as Buffer));
    stream.on("end", () => {
      entries.push({ name: header.name, size: header.size ?? 0, data: Buffer.concat(chunks) });
      next();
    });
  });
  await new Promise<void>((resolve, reject) => {
    extract.on("finish", resolve);
    extract.on("error", reject);
    createReadStream(file).pipe(extract);
  });
  return entries;
}

/** Boots one converted disk with QEMU and asks the app over HTTP. */
async function bootDisk(format: DiskFormat, firmware: Firmware): Promise<void> {
  const disk = await ensureFormat(image, format);
  const port = await findFreePort();
  const vm = await LocalVm.start({
    image,
    home,
    firmware,
    forwards: [{ hostAddress: "127.0.0.1", hostPort: port, guestPort: 8080 }],
    env: { GREETING: `${format}-${firmware}` },
    disk: { path: disk.path, format: FORMATS[format].qemuFormat! },
  });
  try {
    const health = await waitHealthy(`http://127.0.0.1:${port}/`, 180_000, vm.exited, vm.startedAtMs);
    expect(health, await vm.consoleTail(20)).toMatchObject({ healthy: true });
    const answer = await httpGet(`http://127.0.0.1:${port}/`);
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toMatchObject({
      runtime: "native",
      message: `${format}-${firmware}`,
      image: "hello-native:0.1.0",
      uid: 1000,
    });
    expect(await vm.shutdown(30_000)).toBe("clean");
  } finally {
    await vm.shutdown(0);
    await vm.cleanup();
  }
}

describe.sequential("disk formats", () => {
  it("every format passes qemu-img check, qemu-img info reports its format and size, and it holds the raw disk's exact bytes", async () => {
    const rawBefore = await sha256File(image.disk);
    const size = image.manifest.layout.totalBytes;
    for (const format of DISKS) {
      const file = await ensureFormat(image, format);
      const qemuFormat = FORMATS[format].qemuFormat!;
      const check = qemuImg(["check", "-f", qemuFormat, file.path]);
      // qemu-img has no checker for VHD (status 63); its footer is checked below instead.
      if (format === "vhd") expect(check, check.out).toMatchObject({ status: 63, out: expect.stringMatching(/does not support checks/) });
      else expect(check, check.out).toMatchObject({ status: 0, out: expect.stringMatching(/No errors were found on the image/) });
      // Probed, not told: qemu-img recognises the format by itself (except a fixed VHD, whose only header is its footer).
      const info = await inspectDiskFile(file.path, format === "vhd" ? "vpc" : undefined);
      expect([format, info.format, info.virtualBytes]).toEqual([format, qemuFormat, size]);
      const compare = qemuImg(["compare", "-f", "raw", "-F", qemuFormat, image.disk, file.path]);
      expect(compare, compare.out).toMatchObject({ status: 0, out: expect.stringMatching(/Images are identical/) });
      if (format === "vmdk" || format === "vmdk-stream")
        expect(info.formatSpecific?.data?.["create-type"]).toBe(format === "vmdk" ? "monolithicSparse" : "streamOptimized");
    }
    const footer = await readVhdFooter((await ensureFormat(image, "vhd")).path);
    expect(footer).toMatchObject({ cookie: "conectix", diskType: "fixed", currentSize: size, checksumValid: true });
    expect(footer.currentSize % (1024 * 1024)).toBe(0);
    // Conversions read the store's disk; they never write it.
    expect(await sha256File(image.disk)).toBe(rawBefore);
  });

  it("conversions are cached per digest and reproducible: another store converts the same digest to the same bytes", async () => {
    const other = kilnHome({ KILN_HOME: path.join(scratch, "home") });
    const dir = path.join(other.images, image.digest.slice(7));
    await mkdir(dir, { recursive: true });
    await copyFile(path.join(image.dir, "manifest.json"), path.join(dir, "manifest.json"));
    execFileSync("cp", ["--sparse=always", image.disk, path.join(dir, "disk.raw")]);
    const copy: StoredImage = { ...image, dir, disk: path.join(dir, "disk.raw") };
    const timings: string[] = [];
    for (const format of [...DISKS, "ova"] as DiskFormat[]) {
      const mine = await ensureFormat(image, format);
      const theirs = await ensureFormat(copy, format);
      expect(theirs.cached, format).toBe(false);
      expect(await sha256File(theirs.path), format).toBe(await sha256File(mine.path));
      expect((await ensureFormat(copy, format)).cached).toBe(true);
      timings.push(`${format} ${theirs.seconds.toFixed(2)}s`);
    }
    process.stderr.write(`conversion times (hello-native): ${timings.join(", ")}\n`);
  });

  for (const format of ["vdi", "vmdk", "vhd"] as const) {
    it(`the ${format.toUpperCase()} boots under SeaBIOS and OVMF and the app answers HTTP`, async () => {
      await bootDisk(format, "bios");
      await bootDisk(format, "uefi");
    });
  }

  it("kiln export --format ova: OVF first, then the manifest, then a streamOptimized VMDK; the OVF passes the DMTF and VirtualBox checks", async () => {
    const out = path.join(scratch, "hello.ova");
    const exported = await cli(["export", image.ref, "--format", "ova", "-o", out, "--json"], env);
    expect(exported.code, exported.stderr).toBe(0);
    const result = JSON.parse(exported.stdout) as { file: string; format: string; sha256: string; hypervisor: string };
    expect(result).toMatchObject({ file: out, format: "ova", hypervisor: "virtualbox", sha256: `sha256:${await sha256File(out)}` });

    const entries = await readTar(out);
    expect(entries.map((e) => e.name)).toEqual(["hello-native-0.1.0.ovf", "hello-native-0.1.0.mf", "hello-native-0.1.0-disk1.vmdk"]);
    const [ovf, mf, vmdk] = entries as [(typeof entries)[0], (typeof entries)[0], (typeof entries)[0]];
    const { problems, facts } = checkOvf(ovf.data.toString("utf8"));
    expect(problems).toEqual([]);
    expect(facts.files).toEqual([{ id: "file1", href: vmdk.name, size: vmdk.size }]);
    expect(facts.disks[0]).toMatchObject({
      capacity: image.manifest.layout.totalBytes,
      format: "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized",
    });
    expect(mf.data.toString()).toBe(`SHA256(${ovf.name})= ${sha256(ovf.data)}\nSHA256(${vmdk.name})= ${sha256(vmdk.data)}\n`);
    // A second, independent XML parser (Python's expat), where Python is installed.
    const python = spawnSync(
      "python3",
      ["-c", "import sys, xml.dom.minidom; xml.dom.minidom.parseString(sys.stdin.buffer.read()); print('well-formed')"],
      { input: ovf.data, encoding: "utf8" },
    );
    if (python.error === undefined) expect(python.stdout.trim(), python.stderr).toBe("well-formed");

    const disk = path.join(scratch, vmdk.name);
    await writeFile(disk, vmdk.data);
    const info = await inspectDiskFile(disk);
    expect([info.format, info.formatSpecific?.data?.["create-type"], info.virtualBytes]).toEqual([
      "vmdk",
      "streamOptimized",
      image.manifest.layout.totalBytes,
    ]);
    expect(qemuImg(["check", disk]).status).toBe(0);
    expect(qemuImg(["compare", "-f", "raw", "-F", "vmdk", image.disk, disk]).out).toMatch(/Images are identical/);
  });

  it("kiln run --format vhd boots the converted disk through the CLI, and Ctrl-C shuts it down cleanly", async () => {
    const port = await findFreePort();
    let answer: Promise<{ status: number; body: string }> | undefined;
    const run = await cli(
      ["run", image.ref, "--format", "vhd", "-p", `${port}:8080`, "-e", "GREETING=from-vhd", "--json"],
      env,
      (stderr, child) => {
        if (!answer && /is healthy at/.test(stderr)) answer = httpGet(`http://127.0.0.1:${port}/`).finally(() => child.kill("SIGINT"));
      },
    );
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse((await answer!).body)).toMatchObject({ message: "from-vhd" });
    expect(JSON.parse(run.stdout)).toMatchObject({
      hypervisor: "qemu",
      format: "vhd",
      firmware: "bios",
      disk: expect.stringMatching(/formats\/disk\.vhd$/),
    });
    expect(run.stderr).toMatch(/from its vhd disk/);
    expect(run.stderr).toMatch(/VM stopped \(clean\)/);
  });

  it("bake --format checks formats before baking and lists the converted files; export names the known formats", async () => {
    execFileSync("make", ["-s", "-C", path.join(repo, "examples", "hello-native")]);
    const bad = await cli(["bake", "examples/hello-native", "--format", "vdi,vhdx"], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/unknown disk format 'vhdx'; kiln knows: raw, vdi, vmdk, vmdk-stream, vhd, qcow2, ova/);
    expect(bad.stderr).not.toMatch(/Baking/);

    const baked = await cli(["bake", "examples/hello-native", "--format", "vdi,vmdk", "--json"], env);
    expect(baked.code, baked.stderr).toBe(0);
    const result = JSON.parse(baked.stdout) as { digest: string; formats: Record<string, { path: string; bytes: number }> };
    expect(Object.keys(result.formats)).toEqual(["vdi", "vmdk"]);
    // Cached next to the baked image in the store (the CLI's bake may differ from the one above
    // if the tree changed in between, so the digest comes from its own output).
    expect(result.formats.vdi!.path).toBe(path.join(home.images, result.digest.slice(7), "formats", "disk.vdi"));
    expect(baked.stderr).toMatch(/Format vdi\s+\d+\.\d+s/);

    const unknown = await cli(["export", image.ref, "--format", "vhdx"], env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/kiln knows: raw, vdi, vmdk, vmdk-stream, vhd, qcow2, ova/);
    const vdi = path.join(scratch, "x.vdi");
    const exported = await cli(["export", image.ref, "--format", "vdi", "-o", vdi], env);
    expect(exported.code, exported.stderr).toBe(0);
    expect(await sha256File(vdi)).toBe(await sha256File(result.formats.vdi!.path));
  });
});

describe.sequential("VirtualBox through the CLI, with the recorded fake VBoxManage on PATH", () => {
  it("kiln run --vbox streams the console, reports health, and Ctrl-C powers off and unregisters; ps, logs and stop see detached VMs", async () => {
    const bin = path.join(scratch, "vbox-bin");
    await mkdir(bin, { recursive: true });
    for (const f of ["VBoxManage", "fake-vboxmanage.cjs"])
      await copyFile(path.join(repo, "test", "fixtures", "vbox", f), path.join(bin, f));
    await chmod(path.join(bin, "VBoxManage"), 0o755);
    const fake = { ...env, PATH: `${bin}:${process.env.PATH}` };
    const actions = async () =>
      (await readFile(path.join(bin, "calls.log"), "utf8"))
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as string[])
        .filter((c) => c[0] !== "list");

    const port = await findFreePort();
    let answer: Promise<{ status: number; body: string }> | undefined;
    const run = await cli(["run", image.ref, "--vbox", "--uefi", "-p", `${port}:8080`], fake, (stderr, child) => {
      if (!answer && /is healthy at/.test(stderr)) answer = httpGet(`http://127.0.0.1:${port}/`).finally(() => child.kill("SIGINT"));
    });
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse((await answer!).body)).toMatchObject({ fake: "virtualbox", vm: "kiln-hello-native-0.1.0" });
    expect(run.stderr).toMatch(/in VirtualBox as 'kiln-hello-native-0\.1\.0', UEFI/);
    expect(run.stderr).toMatch(/fake VirtualBox 7\.0\) kiln-hello-native-0\.1\.0 powered on, firmware efi/);
    expect(run.stderr).toMatch(/ACPI power button[\s\S]*kiln-init: powering off[\s\S]*VM stopped \(clean\)/);
    expect((await actions()).map((c) => c[0]).slice(-3)).toEqual(["startvm", "controlvm", "unregistervm"]);

    const detached = await cli(
      ["run", image.ref, "--hypervisor", "virtualbox", "-p", `${port}:8080`, "--detach", "--json", "--name", "kiln-it-detached"],
      fake,
    );
    expect(detached.code, detached.stderr).toBe(0);
    const started = JSON.parse(detached.stdout) as { id: string; name: string; hypervisor: string; url: string };
    expect(started).toMatchObject({ name: "kiln-it-detached", hypervisor: "virtualbox", url: `http://127.0.0.1:${port}/` });
    const ps = JSON.parse((await cli(["ps", "--json"], fake)).stdout) as { id: string; name: string; hypervisor: string; state?: string }[];
    expect(ps).toContainEqual(
      expect.objectContaining({ id: started.id, name: "kiln-it-detached", hypervisor: "virtualbox", state: "running" }),
    );
    expect((await cli(["logs", "kiln-it-detached", "--all"], fake)).stdout).toMatch(/fake VirtualBox 7\.0\) kiln-it-detached powered on/);
    expect((await cli(["logs", started.id], fake)).stdout).toBe("fake app: listening\n");
    const stopped = await cli(["stop", "kiln-it-detached"], fake);
    expect(stopped.stdout).toBe(`stopped ${started.id} (clean)\n`);
    expect((JSON.parse((await cli(["ps", "--json"], fake)).stdout) as { id: string }[]).map((v) => v.id)).not.toContain(started.id);

    const empty = path.join(scratch, "empty-path");
    await mkdir(empty, { recursive: true });
    const missing = await cli(["run", image.ref, "--vbox"], { ...env, PATH: empty });
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(
      /VBoxManage is not installed[\s\S]*hint: install VirtualBox 7 from Oracle's Linux packages \(e\.g\. the virtualbox-7\.0 package/,
    );
    const wrongFormat = await cli(["run", image.ref, "--vbox", "--format", "vmdk"], fake);
    expect(wrongFormat.code).toBe(2);
    expect(wrongFormat.stderr).toMatch(/VirtualBox runs boot the VDI/);
  });
});

const hasVirtualBox = spawnSync("VBoxManage", ["--version"]).status === 0;
if (!hasVirtualBox)
  process.stderr.write(
    "formats.test: the real-VirtualBox tests are skipped: VBoxManage is not installed (the fake-VBoxManage tests ran)\n",
  );
describe
  .skipIf(!hasVirtualBox)
  .sequential(`VirtualBox for real${hasVirtualBox ? "" : " (skipped: VBoxManage is not installed here)"}`, () => {
    for (const firmware of ["bios", "uefi"] as const) {
      it(`kiln's VirtualBox VM boots the VDI under ${firmware.toUpperCase()}, answers HTTP with the seed drive's env, and shuts down on the ACPI button`, async () => {
        const port = await findFreePort();
        const { how } = await vboxLifecycle(image, home, {
          firmware,
          forwards: [{ hostAddress: "127.0.0.1", hostPort: port, guestPort: 8080 }],
          env: { GREETING: "from-virtualbox" },
          name: `kiln-test-${process.pid}`,
          whileRunning: async (vm) => {
            const health = await waitHealthy(`http://127.0.0.1:${port}/`, 180_000, vm.exited, vm.startedAtMs);
            expect(health, await vm.consoleTail(30)).toMatchObject({ healthy: true });
            expect(JSON.parse((await httpGet(`http://127.0.0.1:${port}/`)).body)).toMatchObject({ message: "from-virtualbox", uid: 1000 });
            expect(await readFile(vm.consoleFile, "utf8")).toMatch(/kiln-init: starting app/);
          },
        });
        expect(how).toBe("clean");
      });
    }
  });
