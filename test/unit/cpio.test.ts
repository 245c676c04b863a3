import { gunzipSync } from "node:zlib";
import { describe, expect, test } from "vitest";
import { buildCpio, gzipDeterministic, type CpioEntry } from "../../src/image/cpio.js";
import { readNewc } from "./helpers/newc.js";

const sample: CpioEntry[] = [
  { path: "init", type: "file", mode: 0o755, data: Buffer.from("#!/bin/sh\nexec /bin/app\n") },
  { path: "bin/busybox", type: "file", mode: 0o755, data: Buffer.from([1, 2, 3, 4, 5]) },
  { path: "bin/sh", type: "symlink", target: "busybox" },
  { path: "dev/console", type: "char", mode: 0o600, major: 5, minor: 1 },
  { path: "etc", type: "dir", mode: 0o700 },
  { path: "lib/modules/6.6.0/kernel/virtio.ko", type: "file", mode: 0o644, data: Buffer.alloc(0) },
];

describe("buildCpio", () => {
  test("writes every entry with fixed metadata, sorted, with parents and a trailer", () => {
    const entries = readNewc(buildCpio(sample));
    expect(entries.map((e) => e.name)).toEqual([
      "bin",
      "bin/busybox",
      "bin/sh",
      "dev",
      "dev/console",
      "etc",
      "init",
      "lib",
      "lib/modules",
      "lib/modules/6.6.0",
      "lib/modules/6.6.0/kernel",
      "lib/modules/6.6.0/kernel/virtio.ko",
      "TRAILER!!!",
    ]);
    const body = entries.slice(0, -1);
    expect(body.map((e) => e.ino)).toEqual(body.map((_, i) => i + 1));
    for (const e of body) {
      expect([e.uid, e.gid, e.mtime]).toEqual([0, 0, 0]);
      expect(e.nlink).toBe((e.mode & 0o170000) === 0o040000 ? 2 : 1);
    }
    const trailer = entries.at(-1)!;
    expect([trailer.ino, trailer.mode, trailer.nlink, trailer.data.length]).toEqual([0, 0, 1, 0]);
  });

  test("encodes types, modes, data and device numbers", () => {
    const byName = new Map(readNewc(buildCpio(sample)).map((e) => [e.name, e]));
    expect(byName.get("bin")!.mode).toBe(0o040755);
    expect(byName.get("etc")!.mode).toBe(0o040700);
    expect(byName.get("init")!.mode).toBe(0o100755);
    expect(byName.get("init")!.data.toString()).toBe("#!/bin/sh\nexec /bin/app\n");
    expect([...byName.get("bin/busybox")!.data]).toEqual([1, 2, 3, 4, 5]);
    expect(byName.get("bin/sh")!.mode).toBe(0o120777);
    expect(byName.get("bin/sh")!.data.toString()).toBe("busybox");
    const con = byName.get("dev/console")!;
    expect([con.mode, con.rdevMajor, con.rdevMinor, con.data.length]).toEqual([0o020600, 5, 1, 0]);
  });

  test("pads header+name and data to 4 bytes with zeros", () => {
    for (let len = 0; len < 9; len++) {
      const buf = buildCpio([{ path: "x".repeat(len + 1), type: "file", mode: 0o644, data: Buffer.alloc(len, 0xab) }]);
      const [entry, trailer] = readNewc(buf);
      const dataStart = entry!.data.byteOffset - buf.byteOffset;
      expect(buf.subarray(110 + len + 2, dataStart).every((b) => b === 0)).toBe(true);
      expect(buf.subarray(dataStart + len, trailer!.headerOffset).every((b) => b === 0)).toBe(true);
      expect(buf.length % 4).toBe(0);
    }
  });

  test("is byte-identical regardless of input order", () => {
    const a = buildCpio(sample);
    const b = buildCpio([...sample].reverse());
    const c = buildCpio([sample[3]!, sample[0]!, sample[5]!, sample[1]!, sample[4]!, sample[2]!]);
    expect(b.equals(a)).toBe(true);
    expect(c.equals(a)).toBe(true);
  });

  test("sorts by bytes, so explicit and implied parents behave the same", () => {
    const implied = buildCpio([
      { path: "a/b", type: "file", mode: 0o644, data: Buffer.from("x") },
      { path: "a-b", type: "dir", mode: 0o755 },
    ]);
    const explicit = buildCpio([
      { path: "a-b", type: "dir", mode: 0o755 },
      { path: "a", type: "dir", mode: 0o755 },
      { path: "a/b", type: "file", mode: 0o644, data: Buffer.from("x") },
    ]);
    expect(implied.equals(explicit)).toBe(true);
    expect(readNewc(implied).map((e) => e.name)).toEqual(["a", "a-b", "a/b", "TRAILER!!!"]);
  });

  test("rejects duplicates, naming the path", () => {
    expect(() =>
      buildCpio([
        { path: "bin/sh", type: "symlink", target: "busybox" },
        { path: "bin/sh", type: "file", mode: 0o755, data: Buffer.alloc(1) },
      ]),
    ).toThrow(/duplicate path "bin\/sh"/);
  });

  test("rejects bad paths, modes and non-directory parents", () => {
    const file = (path: string, mode = 0o644): CpioEntry => ({ path, type: "file", mode, data: Buffer.alloc(0) });
    for (const p of ["", "/bin/sh", "bin//sh", "bin/", "./init", "a/../b"]) expect(() => buildCpio([file(p)])).toThrow(/invalid path/);
    expect(() => buildCpio([file("init", 0o100755)])).toThrow(/invalid mode/);
    expect(() => buildCpio([{ path: "lib", type: "symlink", target: "usr/lib" }, file("lib/x.so")])).toThrow(/"lib", which is a symlink/);
  });

  test("an empty archive is just the trailer", () => {
    const entries = readNewc(buildCpio([]));
    expect(entries.map((e) => e.name)).toEqual(["TRAILER!!!"]);
  });
});

describe("gzipDeterministic", () => {
  test("round-trips, is stable, and has a zero mtime and Unix OS byte", () => {
    const archive = buildCpio(sample);
    const gz = gzipDeterministic(archive);
    expect(gunzipSync(gz).equals(archive)).toBe(true);
    expect(gzipDeterministic(Buffer.from(archive)).equals(gz)).toBe(true);
    expect([gz[0], gz[1], gz[2]]).toEqual([0x1f, 0x8b, 8]);
    expect(gz.readUInt32LE(4)).toBe(0);
    expect(gz[8]).toBe(2); // XFL: maximum compression
    expect(gz[9]).toBe(3);
  });
});
