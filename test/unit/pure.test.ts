// Pure functions (text or values in, values out): command splitting, kernel config checks, the
// QEMU command line, -p/-e parsing, the seed user-data, the lock file, apt output parsing, Node
// version picking and the disk digest description. No processes, no files.
import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { describeDisk, diskSignatureFor } from "../../src/image/disk.js";
import { planDiskLayout, type DiskLayout } from "../../src/image/layout.js";
import { checkKernelConfig, parseFragment, parseKernelConfig } from "../../src/kmod/kconfig.js";
import { parseMadisonSource, parseStanzas } from "../../src/packages/apt.js";
import { buildLock, renderLock, type LockEntry } from "../../src/packages/lock.js";
import { nodeChoiceNote, nodePickReason, pickNodeVersion } from "../../src/packages/npm.js";
import { buildQemuArgs, parsePortForward, type QemuVmConfig } from "../../src/providers/qemu-args.js";
import { bootEnv, parseEnvFlags, renderUserData } from "../../src/run/seed.js";
import { splitCommand } from "../../src/config/argv.js";

function argvOf(command: string): string[] {
  const result = splitCommand(command);
  if ("problem" in result) throw new Error(`unexpected problem for ${JSON.stringify(command)}: ${result.problem}`);
  return result.argv;
}

function problemOf(command: string): string {
  const result = splitCommand(command);
  if (!("problem" in result)) throw new Error(`expected a problem for ${JSON.stringify(command)}, got ${JSON.stringify(result.argv)}`);
  return result.problem;
}

describe("splitCommand", () => {
  it("splits on any whitespace and drops empty words", () => {
    expect(argvOf("node server.js --port 8080")).toEqual(["node", "server.js", "--port", "8080"]);
    expect(argvOf("  ./server\t--listen   8080 \n")).toEqual(["./server", "--listen", "8080"]);
  });

  it("keeps quoted words together, including empty and adjacent quoted parts", () => {
    expect(argvOf(`node server.js --greeting "hello world" --name 'a b'`)).toEqual([
      "node",
      "server.js",
      "--greeting",
      "hello world",
      "--name",
      "a b",
    ]);
    expect(argvOf(`./app "" ''`)).toEqual(["./app", "", ""]);
    expect(argvOf(`./app --opt="a b"'c d'e`)).toEqual(["./app", "--opt=a bc de"]);
  });

  it("handles backslash escapes outside quotes and inside double quotes, not inside single quotes", () => {
    expect(argvOf(String.raw`./app hello\ world`)).toEqual(["./app", "hello world"]);
    expect(argvOf(String.raw`./app \"x\"`)).toEqual(["./app", '"x"']);
    expect(argvOf(String.raw`./app "say \"hi\""`)).toEqual(["./app", 'say "hi"']);
    expect(argvOf(String.raw`./app 'a\b'`)).toEqual(["./app", String.raw`a\b`]);
  });

  it("treats shell characters inside single quotes as plain text", () => {
    expect(argvOf(`./app '$HOME && |;<>'`)).toEqual(["./app", "$HOME && |;<>"]);
    expect(argvOf(String.raw`./app \$HOME`)).toEqual(["./app", "$HOME"]);
  });

  it.each([
    ["node a.js && node b.js", "&"],
    ["node a.js | tee log", "|"],
    ["node a.js; node b.js", ";"],
    ["node a.js > out.log", ">"],
    ["node a.js < in.txt", "<"],
    ["node $ENTRY", "$"],
    ["node `which app`", "`"],
    ["node *.js", "*"],
    ["node app?.js", "?"],
    ["(node a.js)", "("],
  ])("refuses the shell feature in %j", (command, feature) => {
    const problem = problemOf(command);
    expect(problem).toContain(`'${feature}'`);
    expect(problem).toMatch(/no shell/);
  });

  it("refuses a leading VAR=value assignment but allows = in later arguments", () => {
    expect(problemOf("NODE_ENV=production node server.js")).toMatch(/VAR=value.*env:/);
    expect(problemOf("_X=1 ./app")).toMatch(/VAR=value/);
    expect(argvOf("./app --mode=fast KEY=value")).toEqual(["./app", "--mode=fast", "KEY=value"]);
    expect(argvOf("./app=1")).toEqual(["./app=1"]);
  });

  it("refuses empty commands and unterminated quotes", () => {
    expect(problemOf("")).toBe("is empty");
    expect(problemOf("   \t ")).toBe("is empty");
    expect(problemOf(`node "server.js`)).toMatch(/unterminated " quote/);
    expect(problemOf(`node 'server.js`)).toMatch(/unterminated ' quote/);
  });
});

describe("kernel config fragments", () => {
  const fragment = [
    "# Kernel features every kiln image needs.",
    "CONFIG_BLK_DEV_INITRD=y",
    "CONFIG_EROFS_FS=m  # module: erofs",
    "CONFIG_VIRTIO_BLK=m # module: virtio_blk virtio_ring",
    "  CONFIG_VFAT_FS=m   # module: vfat fat",
    "CONFIG_HW_RANDOM_VIRTIO=m",
    "# CONFIG_NOT_A_REQUIREMENT=y",
    "CONFIG_lowercase=y",
    "CONFIG_BAD=n",
    "",
  ].join("\n");

  it("parseFragment reads =y / =m requirements with their module names and skips the rest", () => {
    expect(parseFragment(fragment)).toEqual([
      { option: "CONFIG_BLK_DEV_INITRD", need: "y", modules: [] },
      { option: "CONFIG_EROFS_FS", need: "m", modules: ["erofs"] },
      { option: "CONFIG_VIRTIO_BLK", need: "m", modules: ["virtio_blk", "virtio_ring"] },
      { option: "CONFIG_VFAT_FS", need: "m", modules: ["vfat", "fat"] },
      { option: "CONFIG_HW_RANDOM_VIRTIO", need: "m", modules: [] },
    ]);
  });

  it("parseKernelConfig reads every CONFIG_ line, values verbatim, and ignores '# ... is not set'", () => {
    const config = parseKernelConfig(
      [
        "#",
        "# Automatically generated file; DO NOT EDIT.",
        'CONFIG_CC_VERSION_TEXT="gcc (Debian 12.2.0-14) 12.2.0"',
        "CONFIG_BLK_DEV_INITRD=y",
        "CONFIG_EROFS_FS=m",
        "CONFIG_HZ=250",
        "# CONFIG_VIRTIO_BLK is not set",
      ].join("\n"),
    );
    expect(config.get("CONFIG_CC_VERSION_TEXT")).toBe('"gcc (Debian 12.2.0-14) 12.2.0"');
    expect(config.get("CONFIG_BLK_DEV_INITRD")).toBe("y");
    expect(config.get("CONFIG_EROFS_FS")).toBe("m");
    expect(config.get("CONFIG_HZ")).toBe("250");
    expect(config.has("CONFIG_VIRTIO_BLK")).toBe(false);
    expect(config.size).toBe(4);
  });

  it("checkKernelConfig: =y satisfies everything, =m satisfies only =m needs and collects its modules", () => {
    const requirements = parseFragment(fragment);
    const config = parseKernelConfig(
      ["CONFIG_BLK_DEV_INITRD=y", "CONFIG_EROFS_FS=m", "CONFIG_VIRTIO_BLK=m", "CONFIG_VFAT_FS=y", "CONFIG_HW_RANDOM_VIRTIO=m"].join("\n"),
    );
    const check = checkKernelConfig(requirements, config);
    expect(check.missing).toEqual([]);
    // Sorted and de-duplicated; vfat is built in, so its modules are not needed.
    expect(check.modules).toEqual(["erofs", "virtio_blk", "virtio_ring"]);
  });

  it("checkKernelConfig reports a =y need that is only a module, and unset options", () => {
    const requirements = parseFragment("CONFIG_BLK_DEV_INITRD=y\nCONFIG_EROFS_FS=m # module: erofs\nCONFIG_UNIX=y\n");
    const check = checkKernelConfig(requirements, parseKernelConfig("CONFIG_BLK_DEV_INITRD=m\n# CONFIG_EROFS_FS is not set\n"));
    expect(check.missing).toEqual([
      "CONFIG_BLK_DEV_INITRD=y (the kernel has it as a module, but it must be built in)",
      "CONFIG_EROFS_FS=y or m (not set)",
      "CONFIG_UNIX=y (not set)",
    ]);
    expect(check.modules).toEqual([]);
  });

  it("checkKernelConfig treats =n like unset", () => {
    const check = checkKernelConfig(parseFragment("CONFIG_TMPFS=y\n"), new Map([["CONFIG_TMPFS", "n"]]));
    expect(check.missing).toEqual(["CONFIG_TMPFS=y (not set)"]);
  });
});

describe("buildQemuArgs", () => {
  const base: QemuVmConfig = {
    disk: "/store/images/abc/disk.raw",
    diskFormat: "raw",
    seed: "/vms/1/seed.img",
    firmware: "bios",
    accelerator: "tcg",
    memoryMiB: 512,
    cpus: 2,
    forwards: [{ hostAddress: "127.0.0.1", hostPort: 18080, guestPort: 8080 }],
    consoleFile: "/vms/1/console.log",
    qmpSocket: "/vms/1/qmp.sock",
    pidFile: "/vms/1/qemu.pid",
  };

  function valueAfter(args: readonly string[], flag: string): string[] {
    return args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : []));
  }

  it("BIOS: one read-only boot disk plus the seed drive, no pflash", () => {
    const args = buildQemuArgs(base);
    expect(args[0]).toBe("qemu-system-x86_64");
    const drives = valueAfter(args, "-drive");
    expect(drives).toEqual([
      "file=/store/images/abc/disk.raw,format=raw,if=virtio,readonly=on",
      "file=/vms/1/seed.img,format=raw,if=virtio,readonly=on",
    ]);
    expect(args.join(" ")).not.toContain("pflash");
    expect(valueAfter(args, "-m")).toEqual(["512"]);
    expect(valueAfter(args, "-smp")).toEqual(["2"]);
    expect(valueAfter(args, "-pidfile")).toEqual(["/vms/1/qemu.pid"]);
    expect(valueAfter(args, "-qmp")).toEqual(["unix:/vms/1/qmp.sock,server=on,wait=off"]);
    expect(valueAfter(args, "-chardev")).toEqual(["file,id=console,path=/vms/1/console.log"]);
    expect(args).toContain("-no-reboot");
  });

  it("UEFI: adds the OVMF code (read-only, unit 0) and the writable variable store (unit 1)", () => {
    const args = buildQemuArgs({
      ...base,
      firmware: "uefi",
      ovmf: { code: "/usr/share/OVMF/OVMF_CODE_4M.fd", vars: "/vms/1/OVMF_VARS.fd" },
    });
    const pflash = valueAfter(args, "-drive").filter((d) => d.includes("if=pflash"));
    expect(pflash).toEqual([
      "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
      "if=pflash,format=raw,unit=1,file=/vms/1/OVMF_VARS.fd",
    ]);
    // The boot disk stays read-only under UEFI too.
    expect(valueAfter(args, "-drive")[0]).toMatch(/readonly=on$/);
  });

  it("disk buses: NVMe read-only and IDE on the PIIX machine with a throwaway overlay, each the first boot device", () => {
    const nvme = buildQemuArgs({ ...base, diskBus: "nvme" });
    expect(valueAfter(nvme, "-machine")).toEqual(["q35"]);
    expect(valueAfter(nvme, "-drive")[0]).toBe("file=/store/images/abc/disk.raw,format=raw,if=none,id=root,readonly=on");
    expect(valueAfter(nvme, "-device")).toContain("nvme,drive=root,serial=kiln-root,bootindex=0");
    const ide = buildQemuArgs({ ...base, diskBus: "ide" });
    expect(valueAfter(ide, "-machine")).toEqual(["pc"]);
    expect(valueAfter(ide, "-drive")[0]).toBe("file=/store/images/abc/disk.raw,format=raw,if=none,id=root,snapshot=on");
    expect(valueAfter(ide, "-device")).toContain("ide-hd,drive=root,bus=ide.0,bootindex=0");
    // The seed drive stays on virtio whatever the root's bus.
    for (const args of [nvme, ide]) expect(valueAfter(args, "-drive")[1]).toBe("file=/vms/1/seed.img,format=raw,if=virtio,readonly=on");
  });

  it("throws for UEFI without OVMF paths", () => {
    expect(() => buildQemuArgs({ ...base, firmware: "uefi" })).toThrow(/OVMF/);
  });

  it("renders every port forward as a hostfwd rule on the user netdev", () => {
    const args = buildQemuArgs({
      ...base,
      forwards: [
        { hostAddress: "127.0.0.1", hostPort: 18080, guestPort: 8080 },
        { hostAddress: "0.0.0.0", hostPort: 9000, guestPort: 9001 },
      ],
    });
    expect(valueAfter(args, "-netdev")).toEqual(["user,id=net0,hostfwd=tcp:127.0.0.1:18080-:8080,hostfwd=tcp:0.0.0.0:9000-:9001"]);
    expect(valueAfter(buildQemuArgs({ ...base, forwards: [] }), "-netdev")).toEqual(["user,id=net0"]);
  });

  it("KVM uses -cpu host, TCG uses -cpu max", () => {
    const kvm = buildQemuArgs({ ...base, accelerator: "kvm" });
    expect(valueAfter(kvm, "-accel")).toEqual(["kvm"]);
    expect(valueAfter(kvm, "-cpu")).toEqual(["host"]);
    const tcg = buildQemuArgs(base);
    expect(valueAfter(tcg, "-accel")).toEqual(["tcg"]);
    expect(valueAfter(tcg, "-cpu")).toEqual(["max"]);
  });

  it("omits the seed drive when there is none and passes other disk formats through", () => {
    const args = buildQemuArgs({ ...base, seed: undefined, disk: "/x/disk.qcow2", diskFormat: "qcow2" });
    expect(valueAfter(args, "-drive")).toEqual(["file=/x/disk.qcow2,format=qcow2,if=virtio,readonly=on"]);
  });
});

describe("parsePortForward", () => {
  it("accepts PORT, HOST:GUEST and ADDRESS:HOST:GUEST", () => {
    expect(parsePortForward("8080")).toEqual({ hostAddress: "127.0.0.1", hostPort: 8080, guestPort: 8080 });
    expect(parsePortForward("18080:8080")).toEqual({ hostAddress: "127.0.0.1", hostPort: 18080, guestPort: 8080 });
    expect(parsePortForward("0.0.0.0:18080:8080")).toEqual({ hostAddress: "0.0.0.0", hostPort: 18080, guestPort: 8080 });
    expect(parsePortForward("1:65535")).toEqual({ hostAddress: "127.0.0.1", hostPort: 1, guestPort: 65535 });
  });

  it.each([
    "",
    "0",
    "65536",
    "http",
    "80:",
    ":80",
    "80:0",
    "8080:99999",
    "a:b",
    "1:2:3:4",
    "-1",
    "80.5",
    "host.example:80:80",
    "::1:80:80",
    "127.0.0.1:80",
  ])("refuses %j with the accepted forms in the message", (value) => {
    const parsed = parsePortForward(value);
    expect(parsed).toHaveProperty("problem");
    expect((parsed as { problem: string }).problem).toContain(`-p ${value}:`);
    expect((parsed as { problem: string }).problem).toMatch(/HOST_PORT:GUEST_PORT/);
  });

  // QEMU's slirp refuses hostfwd=tcp:localhost:… ("Bad host address"): only dotted IPv4 may pass.
  it("never hands QEMU a host address it cannot parse (localhost)", () => {
    const parsed = parsePortForward("localhost:18080:8080");
    if ("problem" in parsed) return;
    expect(parsed.hostAddress).toMatch(/^\d{1,3}(\.\d{1,3}){3}$/);
  });
});

describe("parseEnvFlags", () => {
  it("parses NAME=value, keeping later '=' and empty values", () => {
    expect(parseEnvFlags(["GREETING=hello world", "URL=postgres://u:p@h/db?x=1", "EMPTY=", "_under_score1=x"])).toEqual({
      GREETING: "hello world",
      URL: "postgres://u:p@h/db?x=1",
      EMPTY: "",
      _under_score1: "x",
    });
    expect(parseEnvFlags([])).toEqual({});
  });

  it("reports every bad value at once in one InputError", () => {
    let caught: unknown;
    try {
      parseEnvFlags(["GOOD=1", "NOEQUALS", "=nokey", "1BAD=x", "BAD-DASH=y", "MULTI=a\nb"]);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(InputError);
    const error = caught as InputError;
    expect(error.exitCode).toBe(2);
    const lines = error.message.split("\n");
    expect(lines).toEqual([
      "-e NOEQUALS: NOEQUALS is not set in this shell (-e NAME passes the host's value); set it, or pass -e NOEQUALS=value",
      "-e =nokey: expected NAME=value with NAME made of letters, digits and _",
      "-e 1BAD: not a valid environment variable name",
      "-e BAD-DASH: not a valid environment variable name",
      "-e MULTI: contains a newline",
    ]);
  });
});

describe("renderUserData", () => {
  it("writes a comment line then KEY=VALUE lines in insertion order", () => {
    expect(renderUserData({ KILN_ENV: "dev", GREETING: "hello world", EMPTY: "" })).toBe(
      "# kiln user-data: KEY=VALUE lines, read by the image's init at boot\nKILN_ENV=dev\nGREETING=hello world\nEMPTY=\n",
    );
  });

  it("is just the comment line for an empty environment", () => {
    expect(renderUserData({})).toBe("# kiln user-data: KEY=VALUE lines, read by the image's init at boot\n");
  });
});

describe("buildLock / renderLock", () => {
  const entry = (name: string, version: string, role: LockEntry["role"] = "lib"): LockEntry => ({
    name,
    version,
    source: "debian:bookworm/main",
    sha256: `${name}-sha`,
    role,
  });

  it("sorts by name and keeps one entry per name (the last one wins)", () => {
    const lock = buildLock([
      entry("libc6", "2.36-9"),
      entry("busybox-static", "1:1.35.0-4"),
      entry("libc6", "2.36-9+deb12u7"),
      entry("linux-image-6.1.0-56-cloud-amd64", "6.1.192-2", "kernel"),
    ]);
    expect(lock.lockfileVersion).toBe(1);
    expect(lock.packages.map((p) => `${p.name} ${p.version}`)).toEqual([
      "busybox-static 1:1.35.0-4",
      "libc6 2.36-9+deb12u7",
      "linux-image-6.1.0-56-cloud-amd64 6.1.192-2",
    ]);
  });

  it("is independent of input order and renders as 2-space JSON with a trailing newline", () => {
    const a = [entry("b", "1"), entry("a", "1"), entry("c", "1")];
    const text = renderLock(buildLock(a));
    expect(renderLock(buildLock([...a].reverse()))).toBe(text);
    expect(text.endsWith("}\n")).toBe(true);
    expect(text.endsWith("\n\n")).toBe(false);
    expect(text).toContain('\n  "packages": [\n    {\n      "name": "a",');
    expect(JSON.parse(text)).toEqual(buildLock(a));
  });

  it("renders an empty lock", () => {
    expect(renderLock(buildLock([]))).toBe('{\n  "lockfileVersion": 1,\n  "packages": []\n}\n');
  });
});

// As printed by `apt-cache show libc6 busybox-static` on Debian 12 (trimmed Description bodies).
const APT_CACHE_SHOW = `Package: libc6
Source: glibc
Version: 2.36-9+deb12u10
Installed-Size: 12986
Maintainer: GNU Libc Maintainers <debian-glibc@lists.example.org>
Architecture: amd64
Replaces: libc6-amd64
Depends: libgcc-s1
Recommends: libidn2-0 (>= 2.0.5~)
Suggests: glibc-doc, debconf | debconf-2.0, libc-l10n, locales, libnss-nis, libnss-nisplus
Breaks: aide (<< 0.17.3-4+b3), busybox (<< 1.30.1-6), chrony (<< 4.2-3~), fakechroot (<< 2.19-3.5)
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system. This package includes shared versions of the standard C library
 .
 and the standard math library, as well as many others.
Multi-Arch: same
Homepage: https://www.gnu.org/software/libc/libc.html
Description-md5: fc3001b0b90a1c8e6690b283a619d57f
Tag: role::shared-lib
Section: libs
Priority: optional
Filename: pool/main/g/glibc/libc6_2.36-9+deb12u10_amd64.deb
Size: 2757936
MD5sum: 8cdc2d8a5ab1ba7ed8a6c1e59e6b7b1e
SHA256: 3bd1a6a0bd9d7e5a7d15a1e1bb1f4a3e0e0e7c11c6b1b6e0c2fbb1c4ad0a2f11

Package: libc6
Source: glibc
Version: 2.36-9+deb12u9
Installed-Size: 12986
Architecture: amd64
Depends: libgcc-s1
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.
Filename: pool/main/g/glibc/libc6_2.36-9+deb12u9_amd64.deb
Size: 2757800
SHA256: 0a6d6a0d2e2b5b2f0cbbd64dd6b2f2b7c7b74d1a55e2ee3b7bc0a2d0f2e6a9c0


Package: busybox-static
Version: 1:1.35.0-4+deb12u1+b1
Built-Using: glibc (= 2.36-9+deb12u7)
Architecture: amd64
Provides: busybox
Depends: 
Description: Standalone rescue shell with tons of builtin utilities
Filename: pool/main/b/busybox/busybox-static_1.35.0-4+deb12u1+b1_amd64.deb
SHA256: 3d3fdbe91d4660c873e14b092c213fe81c1da6362daa236eb25d0171eb108744
`;

// As printed by `apt-cache madison linux-image-6.1.0-56-cloud-amd64` (two suites, two versions).
const APT_CACHE_MADISON = [
  " linux-image-cloud-amd64 | 6.1.192-2 | http://mirror.example/debian-security bookworm-security/main amd64 Packages",
  " linux-image-cloud-amd64 | 6.1.170-1 | http://mirror.example/debian bookworm/main amd64 Packages",
  " linux-image-cloud-amd64 | 6.1.170-1 | http://mirror.example/debian bookworm/main Sources",
  "",
].join("\n");

describe("parseStanzas (apt-cache show)", () => {
  const stanzas = parseStanzas(APT_CACHE_SHOW);

  it("returns one record per stanza, in order, even across several blank lines", () => {
    expect(stanzas.map((s) => `${s.Package} ${s.Version}`)).toEqual([
      "libc6 2.36-9+deb12u10",
      "libc6 2.36-9+deb12u9",
      "busybox-static 1:1.35.0-4+deb12u1+b1",
    ]);
  });

  it("reads single-line fields verbatim, including epochs and SHA256", () => {
    const [libc] = stanzas;
    expect(libc!.SHA256).toBe("3bd1a6a0bd9d7e5a7d15a1e1bb1f4a3e0e0e7c11c6b1b6e0c2fbb1c4ad0a2f11");
    expect(libc!.Depends).toBe("libgcc-s1");
    expect(libc!.Filename).toBe("pool/main/g/glibc/libc6_2.36-9+deb12u10_amd64.deb");
    expect(libc!["Description-md5"]).toBe("fc3001b0b90a1c8e6690b283a619d57f");
    expect(stanzas[2]!["Built-Using"]).toBe("glibc (= 2.36-9+deb12u7)");
    expect(stanzas[2]!.Depends).toBe("");
  });

  it("joins continuation lines onto the field they continue", () => {
    expect(stanzas[0]!.Description).toBe(
      [
        "GNU C Library: Shared libraries",
        "Contains the standard libraries that are used by nearly all programs on",
        "the system. This package includes shared versions of the standard C library",
        ".",
        "and the standard math library, as well as many others.",
      ].join("\n"),
    );
    // The field after a continuation is its own field again.
    expect(stanzas[0]!["Multi-Arch"]).toBe("same");
  });

  it("skips blocks without a Package field and handles empty input", () => {
    expect(parseStanzas("N: Unable to locate package nosuch\n\nFoo: bar\n")).toEqual([]);
    expect(parseStanzas("")).toEqual([]);
  });
});

describe("parseMadisonSource (apt-cache madison)", () => {
  it("returns debian:<suite>/<component> of the row with the wanted version, without the host", () => {
    const source = parseMadisonSource(APT_CACHE_MADISON, "6.1.192-2");
    expect(source).toBe("debian:bookworm-security/main");
    expect(source).not.toContain("mirror.example");
    expect(source).not.toContain("http");
  });

  it("picks the row of each version", () => {
    expect(parseMadisonSource(APT_CACHE_MADISON, "6.1.170-1")).toBe("debian:bookworm/main");
  });

  it("works with epochs and the padding madison uses", () => {
    const text = "busybox-static | 1:1.35.0-4+deb12u1+b1 | http://mirror.example/debian bookworm/main amd64 Packages\n";
    expect(parseMadisonSource(text, "1:1.35.0-4+deb12u1+b1")).toBe("debian:bookworm/main");
    const components = "   firmware-misc-nonfree |  20230210-5 | http://mirror.example/debian bookworm/non-free-firmware amd64 Packages\n";
    expect(parseMadisonSource(components, "20230210-5")).toBe("debian:bookworm/non-free-firmware");
  });

  it("falls back to plain 'debian' for an unknown version or empty output", () => {
    expect(parseMadisonSource(APT_CACHE_MADISON, "9.9.9-1")).toBe("debian");
    expect(parseMadisonSource("", "6.1.192-2")).toBe("debian");
    // A version that is only a prefix of a listed one does not match.
    expect(parseMadisonSource(APT_CACHE_MADISON, "6.1.192")).toBe("debian");
  });
});

describe("pickNodeVersion", () => {
  const published = [
    "16.20.2",
    "18.17.0",
    "18.20.4",
    "20.0.0",
    "20.11.1",
    "20.18.0",
    "21.7.3",
    "22.0.0-rc.1",
    "22.1.0-nightly20240101",
    "22.11.0",
    "23.1.0",
    "24.0.0",
    "not-a-version",
  ];

  // Issue 18 item 12: an open range picks the newest LTS in it, not the newest release. An even
  // major is LTS once the next major is out (24 here is still "current": no 25 yet).
  it.each([
    ["20", "20.18.0"],
    ["^20.11", "20.18.0"],
    ["~20.11.0", "20.11.1"],
    ["18", "18.20.4"],
    [">=18 <21", "20.18.0"],
    ["18.17.0", "18.17.0"],
    [">=16", "22.11.0"],
    [">=20", "22.11.0"],
    ["*", "22.11.0"],
    ["20.x || 21.x", "20.18.0"],
    ["21", "21.7.3"],
    ["24", "24.0.0"],
    [">=23", "24.0.0"],
  ])("range %j picks %s", (range, expected) => {
    expect(pickNodeVersion(published, range)).toBe(expected);
  });

  it("says which Node it picked, and why, when its major differs from the Node running kiln", () => {
    expect(nodeChoiceNote(">=20", "22.11.0", "v20.20.2", nodePickReason(published, "22.11.0"))).toBe(
      'Node.js 22.11.0 for engines.node ">=20" (the newest LTS in range); kiln runs on Node.js 20.20.2 here: ' +
        'test the app on Node.js 22, or narrow the range (e.g. "20")',
    );
    expect(nodeChoiceNote("21", "21.7.3", "v20.20.2", nodePickReason(published, "21.7.3"))).toMatch(
      /^Node\.js 21\.7\.3 for engines\.node "21" \(no LTS in range: the newest release\)/,
    );
    expect(nodeChoiceNote("24", "24.0.0", "v20.20.2", nodePickReason(published, "24.0.0"))).toMatch(/\(no LTS in range/);
    expect(nodeChoiceNote(">=20", "20.18.0", "v20.20.2", "the newest LTS in range")).toBeUndefined();
  });

  it("ignores prereleases, even when the range names one", () => {
    expect(pickNodeVersion(["21.7.3", "22.0.0-rc.1"], ">=22.0.0-rc.0")).toBeUndefined();
    expect(pickNodeVersion(["22.0.0-rc.1", "22.1.0-nightly20240101"], "22")).toBeUndefined();
  });

  it("returns undefined when nothing matches or the range is not a range", () => {
    expect(pickNodeVersion(published, "99")).toBeUndefined();
    expect(pickNodeVersion(published, "<10")).toBeUndefined();
    expect(pickNodeVersion([], "20")).toBeUndefined();
    expect(pickNodeVersion(published, "latest-lts")).toBeUndefined();
  });
});

describe("describeDisk", () => {
  const layout = planDiskLayout({ bootBytes: 40 * 1024 * 1024, systemBytes: 30 * 1024 * 1024, appBytes: 1024 * 1024 });
  const mbr = Buffer.alloc(512, 0);
  mbr[510] = 0x55;
  mbr[511] = 0xaa;
  const hashes = { boot: "a".repeat(64), system: "b".repeat(64), app: "c".repeat(64) };

  it("is deterministic and names the size, the MBR hash and every partition", () => {
    const text = describeDisk(layout, mbr, hashes);
    expect(describeDisk(layout, Buffer.from(mbr), { ...hashes })).toBe(text);
    const lines = text.trimEnd().split("\n");
    expect(lines[0]).toBe("kiln-disk-v1");
    expect(lines[1]).toBe(`size ${layout.totalBytes}`);
    expect(lines[2]).toMatch(/^mbr [0-9a-f]{64}$/);
    expect(lines.slice(3)).toEqual(
      layout.partitions.map((p) => expect.stringContaining(`partition ${p.number} ${p.name} offset ${p.offsetBytes} `)),
    );
    expect(text).toContain(`sha256 ${hashes.app}`);
    expect(text.endsWith("\n")).toBe(true);
  });

  it("changes when any partition hash changes", () => {
    const text = describeDisk(layout, mbr, hashes);
    const variants = (["boot", "system", "app"] as const).map((name) => describeDisk(layout, mbr, { ...hashes, [name]: "d".repeat(64) }));
    for (const v of variants) expect(v).not.toBe(text);
    expect(new Set(variants).size).toBe(3);
  });

  it("changes when the MBR, an offset, a slot, a content size or the disk size changes", () => {
    const text = describeDisk(layout, mbr, hashes);
    const otherMbr = Buffer.from(mbr);
    otherMbr.writeUInt32LE(0x12345678, 440);
    expect(describeDisk(layout, otherMbr, hashes)).not.toBe(text);

    const tweak = (edit: (l: DiskLayout) => void): string => {
      const copy = structuredClone(layout);
      edit(copy);
      return describeDisk(copy, mbr, hashes);
    };
    const variants = [
      tweak((l) => (l.partitions[2]!.offsetBytes += 1024 * 1024)),
      tweak((l) => (l.partitions[1]!.offsetBytes += 1024 * 1024)),
      tweak((l) => (l.partitions[1]!.sizeBytes += 64 * 1024 * 1024)),
      tweak((l) => (l.partitions[0]!.contentBytes += 1)),
      tweak((l) => (l.totalBytes += 1024 * 1024)),
    ];
    for (const v of variants) expect(v).not.toBe(text);
    expect(new Set(variants).size).toBe(variants.length);
  });

  it("follows the layout: a bigger app moves nothing before it but changes the description", () => {
    const bigger = planDiskLayout({ bootBytes: 40 * 1024 * 1024, systemBytes: 30 * 1024 * 1024, appBytes: 100 * 1024 * 1024 });
    expect(bigger.partitions[2]!.offsetBytes).toBe(layout.partitions[2]!.offsetBytes);
    expect(describeDisk(bigger, mbr, hashes)).not.toBe(describeDisk(layout, mbr, hashes));
  });
});

describe("diskSignatureFor", () => {
  it("is stable for a name and differs between names", () => {
    expect(diskSignatureFor("hello-node")).toBe(diskSignatureFor("hello-node"));
    expect(diskSignatureFor("hello-node")).not.toBe(diskSignatureFor("hello-native"));
  });

  it("is a non-zero unsigned 32-bit integer, and distinct across many names", () => {
    const names = Array.from({ length: 500 }, (_, i) => `app-${i}`);
    const signatures = names.map(diskSignatureFor);
    for (const s of signatures) {
      expect(Number.isInteger(s)).toBe(true);
      expect(s).toBeGreaterThan(0);
      expect(s).toBeLessThanOrEqual(0xffffffff);
    }
    expect(new Set(signatures).size).toBe(names.length);
  });
});

describe("bootEnv (kiln run --kiln-env and -e)", () => {
  it("lists a bad --kiln-env and bad -e values in one InputError", () => {
    expect(bootEnv("test", ["GREETING=hi"])).toEqual({ KILN_ENV: "test", GREETING: "hi" });
    expect(() => bootEnv("Prod\nX", ["A=x\ry", "KILN_X=1"])).toThrow(
      /^--kiln-env: contains a newline\n-e A: contains a carriage return\n-e KILN_X: KILN_\* variables are set by kiln$/,
    );
  });
});
