// The VirtualBox driver without VirtualBox: a recorded fake VBoxManage 7.0 on PATH logs every
// call and answers like the real one, so these tests pin the exact command sequence kiln runs
// (create, configure, attach, start, ACPI power-off, unregister) and the failure paths. The
// real-VirtualBox run of the same lifecycle is in test/integration/formats.test.ts.
import { createHash } from "node:crypto";
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rm, truncate, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CommandFailedError, InputError, ToolMissingError } from "../../src/errors.js";
import { kilnHome, type KilnHome } from "../../src/home.js";
import { readVdiUuid } from "../../src/image/formats.js";
import type { ImageManifest } from "../../src/image/manifest.js";
import type { StoredImage } from "../../src/image/store.js";
import {
  checkExisting,
  describeExisting,
  parseCreateVm,
  parseExtraData,
  parseMachineReadable,
  parseVmList,
  planVmSetup,
  VirtualBoxMissingError,
  VirtualBoxVm,
  type VboxVmConfig,
} from "../../src/providers/virtualbox.js";
import { listVms, stopVm } from "../../src/providers/vm-registry.js";
import { waitHealthy } from "../../src/run/health.js";
import { vboxLifecycle } from "../fixtures/vbox/lifecycle.js";

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../fixtures/vbox");
const NAME = "kiln-demo-1.0.0";
const DIGEST = `sha256:${"ab".repeat(32)}`;

// ---- recorded VBoxManage 7.0 output ---------------------------------------------------------

const LIST_VMS = `"Ubuntu 22.04" {8a3c1f2e-5b6d-4e7f-9a0b-1c2d3e4f5a6b}\n"${NAME}" {5F1B6C1E-9F4E-4B7A-8D7B-2A8C1D3E4F50}\n`;
const CREATEVM = `Virtual machine '${NAME}' is created and registered.\nUUID: 5f1b6c1e-9f4e-4b7a-8d7b-2a8c1d3e4f50\nSettings file: '/home/u/.cache/kiln/vms/virtualbox/${NAME}/${NAME}.vbox'\n`;
const SHOWVMINFO = `name="${NAME}"
Encryption="disabled"
groups="/"
ostype="Debian (64-bit)"
UUID="5f1b6c1e-9f4e-4b7a-8d7b-2a8c1d3e4f50"
CfgFile="/home/u/.cache/kiln/vms/virtualbox/${NAME}/${NAME}.vbox"
memory=512
VMState="poweroff"
VMStateChangeTime="2024-05-01T10:00:00.000000000"
description="kiln image demo:1.0.0 \\"quoted\\""
storagecontrollername0="IDE"
storagecontrollertype0="PIIX4"
storagecontrollerinstance0="0"
"IDE-0-0"="/home/u/.cache/kiln/vms/1a2b3c4d/disk.vdi"
"IDE-ImageUUID-0-0"="0b8e2a9c-1111-4222-8333-944445555666"
"IDE-0-1"="/home/u/.cache/kiln/vms/1a2b3c4d/seed.vdi"
"IDE-ImageUUID-0-1"="0b8e2a9c-7777-4888-9999-aaaabbbbcccc"
"IDE-1-0"="none"
"IDE-1-1"="none"
nic1="nat"
nictype1="virtio"
Forwarding(0)="kiln-tcp-18080,tcp,127.0.0.1,18080,,8080"
uart1="0x03f8,4"
uartmode1="file,/home/u/.cache/kiln/vms/1a2b3c4d/console.log"
`;

describe("VBoxManage output parsing", () => {
  it("reads list vms, createvm, getextradata and showvminfo --machinereadable", () => {
    expect(parseVmList(LIST_VMS)).toEqual([
      { name: "Ubuntu 22.04", uuid: "8a3c1f2e-5b6d-4e7f-9a0b-1c2d3e4f5a6b" },
      { name: NAME, uuid: "5f1b6c1e-9f4e-4b7a-8d7b-2a8c1d3e4f50" },
    ]);
    expect(parseCreateVm(CREATEVM)).toEqual({
      uuid: "5f1b6c1e-9f4e-4b7a-8d7b-2a8c1d3e4f50",
      settingsFile: `/home/u/.cache/kiln/vms/virtualbox/${NAME}/${NAME}.vbox`,
    });
    expect(() => parseCreateVm("something else\n")).toThrow(/no UUID/);
    expect(parseExtraData("Value: demo:1.0.0\n")).toBe("demo:1.0.0");
    expect(parseExtraData("No value set!\n")).toBeUndefined();
    const info = parseMachineReadable(SHOWVMINFO);
    expect(info).toMatchObject({
      VMState: "poweroff",
      memory: "512",
      "IDE-ImageUUID-0-1": "0b8e2a9c-7777-4888-9999-aaaabbbbcccc",
      "Forwarding(0)": "kiln-tcp-18080,tcp,127.0.0.1,18080,,8080",
      description: 'kiln image demo:1.0.0 "quoted"',
    });
    expect(describeExisting(info, "demo:1.0.0")).toEqual({
      uuid: "5f1b6c1e-9f4e-4b7a-8d7b-2a8c1d3e4f50",
      state: "poweroff",
      kilnImage: "demo:1.0.0",
      hasController: true,
      media: [
        { port: "0", device: "0", uuid: "0b8e2a9c-1111-4222-8333-944445555666" },
        { port: "0", device: "1", uuid: "0b8e2a9c-7777-4888-9999-aaaabbbbcccc" },
      ],
      natRules: ["kiln-tcp-18080"],
    });
  });
});

describe("VirtualBox plan (pure)", () => {
  const config: VboxVmConfig = {
    name: NAME,
    ref: "demo:1.0.0",
    digest: DIGEST,
    baseFolder: "/k/vms/virtualbox",
    memoryMiB: 256,
    cpus: 2,
    firmware: "uefi",
    forwards: [{ hostAddress: "127.0.0.1", hostPort: 18080, guestPort: 8080 }],
    consoleFile: "/k/vms/x/console.log",
    disk: "/k/vms/x/disk.vdi",
    seed: "/k/vms/x/seed.vdi",
  };

  it("a new VM: create, mark as kiln's, PIIX4 IDE + virtio-net + serial to a file, attach clone and seed", () => {
    expect(planVmSetup(config, undefined).map((s) => s.args)).toEqual([
      ["createvm", "--name", NAME, "--ostype", "Debian_64", "--basefolder", "/k/vms/virtualbox", "--register"],
      ["setextradata", NAME, "kiln/image", "demo:1.0.0"],
      ["setextradata", NAME, "kiln/digest", DIGEST],
      [
        "modifyvm",
        NAME,
        "--description",
        `kiln image demo:1.0.0 (${DIGEST})`,
        "--memory",
        "256",
        "--cpus",
        "2",
        "--firmware",
        "efi",
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
        "/k/vms/x/console.log",
        "--natpf1",
        "kiln-tcp-18080,tcp,127.0.0.1,18080,,8080",
      ],
      ["storagectl", NAME, "--name", "IDE", "--add", "ide", "--controller", "PIIX4", "--bootable", "on"],
      ["storageattach", NAME, "--storagectl", "IDE", "--port", "0", "--device", "0", "--type", "hdd", "--medium", "/k/vms/x/disk.vdi"],
      ["storageattach", NAME, "--storagectl", "IDE", "--port", "0", "--device", "1", "--type", "hdd", "--medium", "/k/vms/x/seed.vdi"],
    ]);
  });

  it("reusing kiln's stopped VM: detach and delete the old clones, drop old NAT rules, keep the controller", () => {
    const existing = describeExisting({ ...parseMachineReadable(SHOWVMINFO), VMState: "saved" }, "demo:0.9.0");
    const steps = planVmSetup({ ...config, firmware: "bios" }, existing);
    expect(steps.slice(0, 6)).toEqual([
      { args: ["discardstate", NAME] },
      { args: ["storageattach", NAME, "--storagectl", "IDE", "--port", "0", "--device", "0", "--medium", "none"], tolerateFailure: true },
      { args: ["storageattach", NAME, "--storagectl", "IDE", "--port", "0", "--device", "1", "--medium", "none"], tolerateFailure: true },
      { args: ["closemedium", "disk", "0b8e2a9c-1111-4222-8333-944445555666", "--delete"], tolerateFailure: true },
      { args: ["closemedium", "disk", "0b8e2a9c-7777-4888-9999-aaaabbbbcccc", "--delete"], tolerateFailure: true },
      { args: ["modifyvm", NAME, "--natpf1", "delete", "kiln-tcp-18080"], tolerateFailure: true },
    ]);
    expect(steps.map((s) => s.args[0])).not.toContain("createvm");
    expect(steps.map((s) => s.args[0])).not.toContain("storagectl");
    expect(steps.find((s) => s.args[0] === "modifyvm" && s.args.includes("--firmware"))?.args).toContain("bios");
  });

  it("refuses VMs kiln did not create and kiln VMs that are running", () => {
    const info = parseMachineReadable(SHOWVMINFO);
    expect(() => checkExisting(NAME, describeExisting(info, undefined))).toThrow(/already exists and kiln did not create it/);
    expect(() => checkExisting(NAME, describeExisting({ ...info, VMState: "running" }, "demo:1.0.0"))).toThrow(/is already running/);
    expect(() => checkExisting(NAME, describeExisting(info, "demo:1.0.0"))).not.toThrow();
    expect(() => checkExisting(NAME, undefined)).not.toThrow();
  });
});

// ---- the driver against the fake VBoxManage ---------------------------------------------------

let sandbox: string;
let bin: string;
let home: KilnHome;
let image: StoredImage;
const originalPath = process.env.PATH;

async function fakeState(state: object): Promise<void> {
  await writeFile(path.join(bin, "state.json"), JSON.stringify(state));
}

async function calls(): Promise<string[][]> {
  const text = await readFile(path.join(bin, "calls.log"), "utf8").catch(() => "");
  return text
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as string[]);
}

/** Calls that change VirtualBox (the polling `list` calls vary with timing). */
async function actions(): Promise<string[][]> {
  return (await calls()).filter((c) => c[0] !== "list" && c[0] !== "showvminfo" && c[0] !== "getextradata");
}

/** A VDI header as qemu-img writes it (signature, version 1.1, UUIDs), enough for the driver's clone. */
function syntheticVdi(): Buffer {
  const vdi = Buffer.alloc(8192);
  vdi.write("<<< QEMU VM Virtual Disk Image >>>\n", 0, "latin1");
  vdi.writeUInt32LE(0xbeda107f, 0x40);
  vdi.writeUInt32LE(0x00010001, 0x44);
  vdi.writeUInt32LE(0x180, 0x48);
  Buffer.alloc(16, 0x11).copy(vdi, 0x188);
  Buffer.alloc(16, 0x22).copy(vdi, 0x198);
  return vdi;
}

async function makeImage(h: KilnHome): Promise<StoredImage> {
  const dir = path.join(h.images, DIGEST.slice(7));
  await mkdir(path.join(dir, "formats"), { recursive: true });
  await writeFile(path.join(dir, "disk.raw"), "");
  await truncate(path.join(dir, "disk.raw"), 4 * 1024 * 1024);
  await writeFile(path.join(dir, "formats", "disk.vdi"), syntheticVdi());
  const manifest = {
    manifestVersion: 1,
    name: "demo",
    version: "1.0.0",
    digest: DIGEST,
    port: 8080,
    healthcheck: { path: "/", timeoutSeconds: 60 },
    resources: { memoryMiB: 256, cpus: 1 },
    layout: { totalBytes: 4 * 1024 * 1024 },
  } as unknown as ImageManifest;
  await writeFile(path.join(dir, "manifest.json"), JSON.stringify(manifest));
  return { ref: "demo:1.0.0", digest: DIGEST, dir, disk: path.join(dir, "disk.raw"), manifest };
}

function sha(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

describe.sequential("VirtualBox driver with a recorded fake VBoxManage 7.0", () => {
  beforeEach(async () => {
    sandbox = await mkdtemp(path.join(os.tmpdir(), "kiln-vbox-"));
    bin = path.join(sandbox, "bin");
    await mkdir(bin);
    for (const f of ["VBoxManage", "fake-vboxmanage.cjs"]) await copyFile(path.join(fixtures, f), path.join(bin, f));
    await chmod(path.join(bin, "VBoxManage"), 0o755);
    process.env.PATH = `${bin}:${originalPath}`;
    home = kilnHome({ KILN_HOME: path.join(sandbox, "home") });
    image = await makeImage(home);
  });

  afterEach(async () => {
    process.env.PATH = originalPath;
    await rm(sandbox, { recursive: true, force: true });
  });

  it("runs the exact VBoxManage sequence: create, configure, attach clone + seed, start headless; ACPI power button, unregister", async () => {
    const storeVdi = await readFile(path.join(image.dir, "formats", "disk.vdi"));
    const forwards = [{ hostAddress: "127.0.0.1", hostPort: 28080 + Math.floor(Math.random() * 1000), guestPort: 8080 }];
    let dir = "";
    const { vm, how } = await vboxLifecycle(image, home, {
      firmware: "bios",
      forwards,
      env: { GREETING: "hi" },
      pollMs: 50,
      whileRunning: async (running) => {
        dir = running.dir;
        // The clone has its own UUID; the seed carries the boot-time env; the console file is followed.
        expect(await readVdiUuid(path.join(dir, "disk.vdi"))).not.toBe(await readVdiUuid(path.join(image.dir, "formats", "disk.vdi")));
        expect(await readFile(path.join(dir, "user-data"), "utf8")).toContain("GREETING=hi\n");
        expect(await running.consoleTail()).toMatch(/fake VirtualBox 7\.0\) kiln-demo-1\.0\.0 powered on, firmware bios/);
        expect(JSON.parse(await readFile(path.join(dir, "vm.json"), "utf8"))).toMatchObject({
          hypervisor: "virtualbox",
          name: NAME,
          ownerPid: process.pid,
          forwards,
        });
        // The fake plays the guest behind the NAT forward, as the real test's app does.
        expect(await waitHealthy(`http://127.0.0.1:${forwards[0]!.hostPort}/`, 10_000, running.exited)).toMatchObject({ healthy: true });
      },
    });
    expect(how).toBe("clean");
    const vms = path.join(home.vms, "virtualbox");
    expect(await actions()).toEqual([
      ["convertfromraw", path.join(dir, "seed.img"), path.join(dir, "seed.vdi"), "--format", "VDI"],
      ["createvm", "--name", NAME, "--ostype", "Debian_64", "--basefolder", vms, "--register"],
      ["setextradata", NAME, "kiln/image", "demo:1.0.0"],
      ["setextradata", NAME, "kiln/digest", DIGEST],
      [
        "modifyvm",
        NAME,
        "--description",
        `kiln image demo:1.0.0 (${DIGEST})`,
        "--memory",
        "256",
        "--cpus",
        "1",
        "--firmware",
        "bios",
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
        path.join(dir, "console.log"),
        "--natpf1",
        `kiln-tcp-${forwards[0]!.hostPort},tcp,127.0.0.1,${forwards[0]!.hostPort},,8080`,
      ],
      ["storagectl", NAME, "--name", "IDE", "--add", "ide", "--controller", "PIIX4", "--bootable", "on"],
      [
        "storageattach",
        NAME,
        "--storagectl",
        "IDE",
        "--port",
        "0",
        "--device",
        "0",
        "--type",
        "hdd",
        "--medium",
        path.join(dir, "disk.vdi"),
      ],
      [
        "storageattach",
        NAME,
        "--storagectl",
        "IDE",
        "--port",
        "0",
        "--device",
        "1",
        "--type",
        "hdd",
        "--medium",
        path.join(dir, "seed.vdi"),
      ],
      ["startvm", NAME, "--type", "headless"],
      ["controlvm", NAME, "acpipowerbutton"],
      ["unregistervm", NAME, "--delete"],
    ]);
    // The first call looks for a VM of that name before anything is created.
    expect((await calls())[0]).toEqual(["list", "vms"]);
    // The store's VDI is never touched; VirtualBox only ever saw the clone.
    expect(sha(await readFile(path.join(image.dir, "formats", "disk.vdi")))).toBe(sha(storeVdi));
    expect((await calls()).flat().some((a) => a.includes(image.dir))).toBe(false);
    expect(vm.record.firmware).toBe("bios");
  });

  it("--uefi selects EFI firmware; a guest that ignores the power button is powered off after the grace period", async () => {
    await fakeState({ ignoreAcpi: true });
    const { how } = await vboxLifecycle(image, home, { firmware: "uefi", forwards: [], pollMs: 50, graceMs: 300 });
    expect(how).toBe("killed");
    const acts = await actions();
    expect(acts.find((c) => c[0] === "modifyvm")).toEqual(expect.arrayContaining(["--firmware", "efi"]));
    expect(acts.slice(-3)).toEqual([
      ["controlvm", NAME, "acpipowerbutton"],
      ["controlvm", NAME, "poweroff"],
      ["unregistervm", NAME, "--delete"],
    ]);
  });

  it("kiln ps lists the VirtualBox VM and kiln stop NAME stops and unregisters it (from another kiln process's view)", async () => {
    const vm = await VirtualBoxVm.start({ image, home, firmware: "bios", forwards: [], env: {}, name: "kiln-custom", pollMs: 50 });
    vm.detach();
    expect((await listVms(home)).map((v) => [v.name, v.hypervisor])).toEqual([["kiln-custom", "virtualbox"]]);
    expect(await stopVm(home, "kiln-custom", 5000)).toEqual({ id: vm.record.id, how: "clean" });
    expect(await listVms(home)).toEqual([]);
    expect((await readdir(home.vms)).filter((d) => d !== "virtualbox")).toEqual([]);
    expect((await actions()).slice(-2)).toEqual([
      ["controlvm", "kiln-custom", "acpipowerbutton"],
      ["unregistervm", "kiln-custom", "--delete"],
    ]);
  });

  it("reuses kiln's own stopped VM of the same name instead of creating a second one", async () => {
    await fakeState({
      vms: {
        "5f1b6c1e-9f4e-4b7a-8d7b-2a8c1d3e4f50": {
          name: NAME,
          uuid: "5f1b6c1e-9f4e-4b7a-8d7b-2a8c1d3e4f50",
          settings: path.join(sandbox, "old", `${NAME}.vbox`),
          state: "poweroff",
          extradata: { "kiln/image": "demo:0.9.0" },
          controllers: [{ name: "IDE", type: "PIIX4" }],
          media: { "IDE-0-0": { path: path.join(sandbox, "old", "disk.vdi"), uuid: "0b8e2a9c-1111-4222-8333-944445555666" } },
          natpf: ["kiln-tcp-18080,tcp,127.0.0.1,18080,,8080"],
        },
      },
    });
    const vm = await VirtualBoxVm.start({ image, home, firmware: "bios", forwards: [], env: {}, pollMs: 50 });
    expect(vm.record.uuid).toBe("5f1b6c1e-9f4e-4b7a-8d7b-2a8c1d3e4f50");
    const acts = (await actions()).map((c) => c.slice(0, 3).join(" "));
    expect(acts).toEqual([
      `convertfromraw ${path.join(vm.dir, "seed.img")} ${path.join(vm.dir, "seed.vdi")}`,
      `storageattach ${NAME} --storagectl`,
      "closemedium disk 0b8e2a9c-1111-4222-8333-944445555666",
      `modifyvm ${NAME} --natpf1`,
      `setextradata ${NAME} kiln/image`,
      `setextradata ${NAME} kiln/digest`,
      `modifyvm ${NAME} --description`,
      `storageattach ${NAME} --storagectl`,
      `storageattach ${NAME} --storagectl`,
      `startvm ${NAME} --type`,
    ]);
    await vm.shutdown(5000);
    await vm.cleanup();
  });

  it("fails clearly when VBoxManage is missing, naming VirtualBox 7 and its package", async () => {
    process.env.PATH = "/nonexistent";
    const error = await VirtualBoxVm.start({ image, home, firmware: "bios", forwards: [], env: {} }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VirtualBoxMissingError);
    expect(error).toBeInstanceOf(ToolMissingError);
    const e = error as VirtualBoxMissingError;
    expect(e.message).toBe("VBoxManage is not installed");
    expect(e.debianPackage).toBe("virtualbox-7.0");
    expect(e.hint).toMatch(/VirtualBox 7 from Oracle's Linux packages \(e\.g\. the virtualbox-7\.0 package/);
    expect(e.exitCode).toBe(3);
  });

  it("refuses a VM name collision with a VM kiln did not create, before creating anything", async () => {
    await fakeState({
      vms: {
        u1: {
          name: NAME,
          uuid: "11111111-2222-4333-8444-555555555555",
          settings: "/x/y.vbox",
          state: "poweroff",
          extradata: {},
          controllers: [],
          media: {},
          natpf: [],
        },
      },
    });
    const error = await VirtualBoxVm.start({ image, home, firmware: "bios", forwards: [], env: {} }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).message).toBe(`a VirtualBox VM named '${NAME}' already exists and kiln did not create it`);
    expect((error as InputError).hint).toMatch(/--name/);
    expect(await calls()).toEqual([
      ["list", "vms"],
      ["showvminfo", NAME, "--machinereadable"],
      ["getextradata", NAME, "kiln/image"],
    ]);
    expect(await readdir(home.vms).catch(() => [])).toEqual([]);
  });

  it("refuses to start when a forwarded host port is in use, before VirtualBox is asked anything", async () => {
    const server = net.createServer();
    await new Promise<void>((r) => server.listen({ host: "127.0.0.1", port: 0 }, () => r()));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const error = await VirtualBoxVm.start({
        image,
        home,
        firmware: "bios",
        forwards: [{ hostAddress: "127.0.0.1", hostPort: port, guestPort: 8080 }],
        env: {},
      }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InputError);
      expect((error as InputError).message).toBe(`port ${port} on 127.0.0.1 is already in use`);
      expect(await calls()).toEqual([]);
    } finally {
      server.close();
    }
  });

  it("a failing VBoxManage step surfaces its command and stderr, and the half-made VM is unregistered", async () => {
    await fakeState({
      failures: {
        startvm: {
          stderr:
            "VBoxManage: error: The virtual machine 'kiln-demo-1.0.0' has terminated unexpectedly during startup with exit code 1 (0x1)",
          code: 1,
        },
      },
    });
    const error = await VirtualBoxVm.start({ image, home, firmware: "bios", forwards: [], env: {} }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CommandFailedError);
    expect((error as CommandFailedError).command).toBe(`VBoxManage startvm ${NAME} --type headless`);
    expect((error as CommandFailedError).message).toMatch(/terminated unexpectedly during startup/);
    expect((await actions()).at(-1)).toEqual(["unregistervm", NAME, "--delete"]);
    expect((await readdir(home.vms)).filter((d) => d !== "virtualbox")).toEqual([]);
  });
});
