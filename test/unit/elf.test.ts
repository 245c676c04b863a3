import { existsSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { describeMachine, isElf, parseElf, readSection } from "../../src/elf/elf.js";
import { InputError } from "../../src/errors.js";
import { DF_1_PIE, EM, ET, buildElf, buildElfWithLayout } from "./helpers/elf-builder.js";

const PIE_SPEC = {
  type: ET.DYN,
  interpreter: "/lib64/ld-linux-x86-64.so.2",
  needed: ["libssl.so.3", "libc.so.6"],
  runpath: "$ORIGIN/../lib:/opt/app/lib",
  flags1: DF_1_PIE,
};

function expectInputError(fn: () => unknown, pattern: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(InputError);
  expect((caught as Error).message).toMatch(pattern);
}

describe("isElf", () => {
  it("recognises the ELF magic", () => {
    expect(isElf(buildElf())).toBe(true);
  });

  it("rejects other content and short buffers", () => {
    expect(isElf(Buffer.from("#!/bin/sh\necho hi\n"))).toBe(false);
    expect(isElf(Buffer.from([0x7f, 0x45, 0x4c]))).toBe(false);
    expect(isElf(Buffer.alloc(0))).toBe(false);
  });
});

describe("parseElf", () => {
  it("reads a 64-bit little-endian PIE with interpreter, needed libraries and runpath", () => {
    expect(parseElf(buildElf(PIE_SPEC))).toEqual({
      bits: 64,
      littleEndian: true,
      machine: 62,
      machineName: "x86-64",
      type: "dyn",
      interpreter: "/lib64/ld-linux-x86-64.so.2",
      needed: ["libssl.so.3", "libc.so.6"],
      runpath: ["$ORIGIN/../lib", "/opt/app/lib"],
      rpath: [],
      isStatic: false,
      isPie: true,
    });
  });

  it("works without section headers, as for stripped binaries", () => {
    const image = buildElf(PIE_SPEC);
    expect(image.readBigUInt64LE(40)).toBe(0n);
    expect(parseElf(image).needed).toEqual(["libssl.so.3", "libc.so.6"]);
  });

  it("finds the string table through its PT_LOAD mapping, not by treating the address as an offset", () => {
    const { image, layout } = buildElfWithLayout(PIE_SPEC);
    expect(layout.dataVaddr).not.toBe(BigInt(layout.dynstrOffset));
    expect(parseElf(image).runpath).toEqual(["$ORIGIN/../lib", "/opt/app/lib"]);
  });

  it("bounds strings by their PT_LOAD segment when DT_STRSZ is absent", () => {
    expect(parseElf(buildElf({ ...PIE_SPEC, omitStrsz: true })).needed).toEqual(["libssl.so.3", "libc.so.6"]);
  });

  it("reads a shared library's soname and split rpath", () => {
    const info = parseElf(buildElf({ type: ET.DYN, soname: "libfoo.so.1", needed: ["libc.so.6"], rpath: "/a::/b" }));
    expect(info).toMatchObject({ type: "dyn", soname: "libfoo.so.1", rpath: ["/a", "/b"], runpath: [], isPie: false, isStatic: false });
    expect(info.interpreter).toBeUndefined();
  });

  it("recognises a PIE built before linkers set DF_1_PIE", () => {
    expect(parseElf(buildElf({ type: ET.DYN, interpreter: "/lib/ld.so", needed: ["libc.so.6"] })).isPie).toBe(true);
  });

  it("does not take a library that also has an interpreter (like libc.so.6) for a PIE", () => {
    const info = parseElf(buildElf({ type: ET.DYN, interpreter: "/lib/ld.so", soname: "libc.so.6", needed: ["ld.so"] }));
    expect(info.isPie).toBe(false);
  });

  it("reports a static executable", () => {
    const info = parseElf(buildElf({ type: ET.EXEC }));
    expect(info).toMatchObject({ type: "exec", isStatic: true, isPie: false, needed: [], runpath: [], rpath: [] });
    expect(info.interpreter).toBeUndefined();
    expect(info.soname).toBeUndefined();
  });

  it("reports a static PIE", () => {
    expect(parseElf(buildElf({ type: ET.DYN, flags1: DF_1_PIE }))).toMatchObject({ isStatic: true, isPie: true });
  });

  it("names an aarch64 binary", () => {
    expect(parseElf(buildElf({ ...PIE_SPEC, machine: EM.AARCH64, interpreter: "/lib/ld-linux-aarch64.so.1" }))).toMatchObject({
      machine: 183,
      machineName: "aarch64",
      interpreter: "/lib/ld-linux-aarch64.so.1",
    });
  });

  it("reads a 32-bit little-endian i386 binary", () => {
    const info = parseElf(
      buildElf({ bits: 32, machine: EM.I386, type: ET.EXEC, interpreter: "/lib/ld-linux.so.2", needed: ["libc.so.6"], runpath: "/x" }),
    );
    expect(info).toMatchObject({
      bits: 32,
      littleEndian: true,
      machineName: "i386",
      type: "exec",
      interpreter: "/lib/ld-linux.so.2",
      needed: ["libc.so.6"],
      runpath: ["/x"],
    });
  });

  it("reads a 32-bit big-endian binary and names an unknown machine by number", () => {
    const info = parseElf(
      buildElf({ bits: 32, littleEndian: false, machine: EM.MIPS, interpreter: "/lib/ld.so.1", needed: ["libc.so.6"], soname: "libbe.so" }),
    );
    expect(info).toMatchObject({
      bits: 32,
      littleEndian: false,
      machine: 8,
      machineName: "machine 0x08",
      needed: ["libc.so.6"],
      soname: "libbe.so",
    });
  });

  it("reads a 64-bit big-endian binary", () => {
    const info = parseElf(buildElf({ ...PIE_SPEC, littleEndian: false, machine: EM.AARCH64 }));
    expect(info).toMatchObject({ bits: 64, littleEndian: false, machineName: "aarch64", needed: ["libssl.so.3", "libc.so.6"] });
  });

  it("names arm and riscv, and maps relocatable and core file types", () => {
    expect(parseElf(buildElf({ bits: 32, machine: EM.ARM })).machineName).toBe("arm");
    expect(parseElf(buildElf({ machine: EM.RISCV })).machineName).toBe("riscv");
    expect(parseElf(buildElf({ type: ET.REL, programHeaders: false })).type).toBe("rel");
    expect(parseElf(buildElf({ type: ET.CORE })).type).toBe("core");
    expect(parseElf(buildElf({ type: 0xfe00 })).type).toBe("other");
    expect(describeMachine(0x1234)).toBe("machine 0x1234");
  });

  it("rejects a file that is not ELF, naming it", () => {
    expectInputError(() => parseElf(Buffer.from("#!/bin/sh\n"), "app/start.sh"), /^app\/start\.sh is not an ELF file/);
    expectInputError(() => parseElf(Buffer.alloc(0), "empty"), /empty is not an ELF file/);
  });

  it("rejects a file cut off inside the ELF header", () => {
    expectInputError(
      () => parseElf(buildElf(PIE_SPEC).subarray(0, 40), "bin/app"),
      /bin\/app is a truncated or corrupt ELF file: the ELF header/,
    );
    expectInputError(() => parseElf(buildElf(PIE_SPEC).subarray(0, 10), "bin/app"), /bin\/app is a truncated or corrupt ELF file/);
  });

  it("rejects a file cut off inside the program headers", () => {
    const { image, layout } = buildElfWithLayout(PIE_SPEC);
    expectInputError(() => parseElf(image.subarray(0, layout.phoff + 60), "bin/app"), /bin\/app .*program header table/);
  });

  it("rejects a file cut off inside the dynamic section", () => {
    const { image, layout } = buildElfWithLayout(PIE_SPEC);
    expectInputError(() => parseElf(image.subarray(0, layout.dynamicOffset + 8), "bin/app"), /bin\/app .*PT_DYNAMIC/);
  });

  it("rejects an unknown ELF class or byte order", () => {
    const badClass = Buffer.from(buildElf());
    badClass[4] = 7;
    expectInputError(() => parseElf(badClass, "weird"), /weird .*unknown ELF class 7/);
    const badData = Buffer.from(buildElf());
    badData[5] = 0;
    expectInputError(() => parseElf(badData, "weird"), /unknown ELF data encoding 0/);
  });

  it("rejects a dynamic string table that no PT_LOAD maps", () => {
    const { image, layout } = buildElfWithLayout(PIE_SPEC);
    const broken = Buffer.from(image);
    const strtabEntry = layout.dynamicOffset + 16 * PIE_SPEC.needed.length + 16 * 2;
    expect(broken.readBigInt64LE(strtabEntry)).toBe(5n);
    broken.writeBigUInt64LE(0x7000000n, strtabEntry + 8);
    expectInputError(() => parseElf(broken, "bin/app"), /no PT_LOAD segment maps the dynamic string table at 0x7000000/);
  });

  it("rejects a string offset past the end of the string table", () => {
    const { image, layout } = buildElfWithLayout(PIE_SPEC);
    const broken = Buffer.from(image);
    broken.writeBigUInt64LE(5000n, layout.dynamicOffset + 8);
    expectInputError(() => parseElf(broken, "bin/app"), /dynamic string offset \(5000\) lies outside the string table/);
  });

  it("rejects an unterminated interpreter path", () => {
    const { image, layout } = buildElfWithLayout(PIE_SPEC);
    const broken = Buffer.from(image);
    const interpEnd = layout.dynstrOffset - 1;
    expect(broken[interpEnd]).toBe(0);
    broken[interpEnd] = 0x41;
    expectInputError(() => parseElf(broken, "bin/app"), /interpreter path is not NUL-terminated/);
  });
});

describe("readSection", () => {
  const sections = [
    { name: ".text", data: Buffer.from([0x90, 0x90, 0xc3]) },
    { name: ".modinfo", data: Buffer.from("license=GPL\0name=demo\0") },
  ];

  it("returns the named section's bytes", () => {
    const image = buildElf({ type: ET.REL, programHeaders: false, sections });
    expect(readSection(image, ".modinfo")?.toString()).toBe("license=GPL\0name=demo\0");
    expect(readSection(image, ".text")).toEqual(Buffer.from([0x90, 0x90, 0xc3]));
  });

  it("works for 32-bit big-endian files", () => {
    const image = buildElf({ bits: 32, littleEndian: false, type: ET.REL, programHeaders: false, sections });
    expect(readSection(image, ".modinfo")?.toString()).toBe("license=GPL\0name=demo\0");
  });

  it("returns undefined for an absent section or a file without section headers", () => {
    expect(readSection(buildElf({ sections }), ".data")).toBeUndefined();
    expect(readSection(buildElf(PIE_SPEC), ".modinfo")).toBeUndefined();
  });

  it("rejects a section that runs past the end of the file", () => {
    const { image, layout } = buildElfWithLayout({ type: ET.REL, programHeaders: false, sections });
    const broken = Buffer.from(image);
    broken.writeBigUInt64LE(1_000_000n, layout.shoff + 2 * 64 + 32);
    expectInputError(() => readSection(broken, ".modinfo", "demo.ko"), /demo\.ko .*section \.modinfo/);
  });

  it("rejects truncated section headers", () => {
    const image = buildElf({ type: ET.REL, programHeaders: false, sections });
    expectInputError(() => readSection(image.subarray(0, image.length - 10), ".modinfo", "demo.ko"), /demo\.ko .*section header table/);
  });
});

describe("parseElf on the host's own binaries", () => {
  it.skipIf(!existsSync("/bin/ls") || process.arch !== "x64")("reads /bin/ls", () => {
    const info = parseElf(readFileSync("/bin/ls"), "/bin/ls");
    expect(info).toMatchObject({
      bits: 64,
      littleEndian: true,
      machineName: "x86-64",
      interpreter: "/lib64/ld-linux-x86-64.so.2",
      isStatic: false,
    });
    expect(info.needed).toContain("libc.so.6");
    expect(readSection(readFileSync("/bin/ls"), ".interp")?.toString()).toBe("/lib64/ld-linux-x86-64.so.2\0");
  });
});
