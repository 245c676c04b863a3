import { describe, expect, test } from "vitest";
import { layoutToMbrPartitions, planDiskLayout, type DiskLayout } from "../../src/image/layout.js";
import { buildMbr, parseMbr } from "../../src/image/mbr.js";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const base = { bootBytes: 40 * MiB, systemBytes: 30 * MiB, appBytes: 5 * MiB };

function part(layout: DiskLayout, name: "boot" | "system" | "deps" | "app") {
  const p = layout.partitions.find((x) => x.name === name);
  if (!p) throw new Error(`no ${name}`);
  return p;
}

describe("planDiskLayout", () => {
  test("boot at 1 MiB, 64 MiB minimum, then system and app slots", () => {
    const l = planDiskLayout(base);
    expect(l.sectorSize).toBe(512);
    expect(l.partitions.map((p) => [p.name, p.number, p.type, p.bootable])).toEqual([
      ["boot", 1, 0xef, true],
      ["system", 2, 0x83, false],
      ["app", 3, 0x83, false],
    ]);
    expect(part(l, "boot")).toMatchObject({ offsetBytes: MiB, sizeBytes: 64 * MiB, contentBytes: 40 * MiB });
    // 30 MiB * 1.25 = 37.5 MiB -> 64 MiB slot
    expect(part(l, "system")).toMatchObject({ offsetBytes: 65 * MiB, sizeBytes: 64 * MiB, contentBytes: 30 * MiB });
    // 5 MiB * 1.25 + 1 MiB = 7.25 MiB -> 16 MiB slot
    expect(part(l, "app")).toMatchObject({ offsetBytes: 129 * MiB, sizeBytes: 16 * MiB, contentBytes: 5 * MiB });
    expect(l.totalBytes).toBe(145 * MiB);
    expect(l.volumeGiB).toBe(1);
  });

  test("a large boot partition is rounded up to 1 MiB", () => {
    const l = planDiskLayout({ ...base, bootBytes: 100 * MiB + 1 });
    expect(part(l, "boot").sizeBytes).toBe(101 * MiB);
    expect(part(l, "system").offsetBytes).toBe(102 * MiB);
  });

  test("everything is 1 MiB aligned and slots hold their content without overlap", () => {
    for (const sizes of [
      base,
      { bootBytes: 0, systemBytes: 0, appBytes: 0 },
      { bootBytes: 123_457, systemBytes: 987_654_321, appBytes: 55_555_555 },
    ]) {
      const l = planDiskLayout(sizes);
      let end = 0;
      for (const p of l.partitions) {
        expect(p.offsetBytes % MiB).toBe(0);
        expect(p.sizeBytes % MiB).toBe(0);
        expect(p.sizeBytes).toBeGreaterThanOrEqual(p.contentBytes);
        expect(p.sizeBytes).toBeGreaterThan(0);
        expect(p.offsetBytes).toBeGreaterThanOrEqual(end);
        end = p.offsetBytes + p.sizeBytes;
      }
      expect(l.totalBytes).toBe(end);
      expect(l.totalBytes % MiB).toBe(0);
    }
  });

  test("app growing within its slot moves nothing", () => {
    const before = planDiskLayout(base);
    const after = planDiskLayout({ ...base, appBytes: base.appBytes + MiB });
    expect(after.partitions.map((p) => [p.offsetBytes, p.sizeBytes])).toEqual(before.partitions.map((p) => [p.offsetBytes, p.sizeBytes]));
    expect(after.totalBytes).toBe(before.totalBytes);
  });

  test("app growing past its slot only changes the app and the total", () => {
    const before = planDiskLayout(base);
    const after = planDiskLayout({ ...base, appBytes: 50 * MiB });
    expect(part(after, "app").offsetBytes).toBe(part(before, "app").offsetBytes);
    expect(part(after, "app").sizeBytes).toBe(64 * MiB); // 63.5 MiB -> 64 MiB
    expect(after.totalBytes).toBeGreaterThan(before.totalBytes);
  });

  test("system growing within headroom keeps the app offset; large growth moves it", () => {
    const before = planDiskLayout(base);
    const small = planDiskLayout({ ...base, systemBytes: 50 * MiB });
    expect(part(small, "app").offsetBytes).toBe(part(before, "app").offsetBytes);
    const large = planDiskLayout({ ...base, systemBytes: 60 * MiB });
    expect(part(large, "system").sizeBytes).toBe(128 * MiB); // 75 MiB -> 128 MiB
    expect(part(large, "app").offsetBytes).toBe(part(before, "app").offsetBytes + 64 * MiB);
    expect(part(large, "boot")).toEqual(part(before, "boot"));
  });

  test("volumeGiB rounds the total up to whole GiB", () => {
    expect(planDiskLayout({ bootBytes: 0, systemBytes: 0, appBytes: 0 }).volumeGiB).toBe(1);
    // 1 + 64 + 832 (660 * 1.25 = 825 -> 832) + 16 = 913 MiB
    expect(planDiskLayout({ bootBytes: 0, systemBytes: 660 * MiB, appBytes: 0 }).volumeGiB).toBe(1);
    // 1 + 64 + 960 (720 * 1.25 = 900 -> 960) + 16 = 1041 MiB
    const l = planDiskLayout({ bootBytes: 0, systemBytes: 720 * MiB, appBytes: 0 });
    expect(l.totalBytes).toBe(1041 * MiB);
    expect(l.volumeGiB).toBe(2);
    expect(planDiskLayout({ bootBytes: 0, systemBytes: 3 * GiB, appBytes: 0 }).volumeGiB).toBe(4);
  });

  test("rejects negative, NaN, fractional and infinite sizes", () => {
    expect(() => planDiskLayout({ ...base, appBytes: -1 })).toThrow(/appBytes/);
    expect(() => planDiskLayout({ ...base, systemBytes: NaN })).toThrow(/systemBytes/);
    expect(() => planDiskLayout({ ...base, bootBytes: 1.5 })).toThrow(/bootBytes/);
    expect(() => planDiskLayout({ ...base, appBytes: Infinity })).toThrow(/appBytes/);
  });

  test("rejects disks an MBR cannot address", () => {
    expect(() => planDiskLayout({ ...base, systemBytes: 2 * 1024 * GiB })).toThrow(/2 TiB/);
  });

  test("converts to MBR entries that build and parse", () => {
    const l = planDiskLayout(base);
    const entries = layoutToMbrPartitions(l);
    expect(entries[0]).toEqual({ bootable: true, type: 0xef, startLba: 2048, sectors: 131072 });
    expect(parseMbr(buildMbr({ diskSignature: 7, partitions: entries })).partitions).toEqual(entries);
  });

  test("a dependency partition (number 4) sits between system and app and does not move when the app sources change", () => {
    const withDeps = { ...base, depsBytes: 26 * MiB };
    const before = planDiskLayout(withDeps);
    expect(before.partitions.map((p) => [p.name, p.number])).toEqual([
      ["boot", 1],
      ["system", 2],
      ["deps", 4],
      ["app", 3],
    ]);
    // 26 MiB * 1.25 + 1 MiB = 33.5 MiB -> 48 MiB slot right after system; the app follows it.
    expect(part(before, "deps")).toMatchObject({ offsetBytes: 129 * MiB, sizeBytes: 48 * MiB, contentBytes: 26 * MiB });
    expect(part(before, "app")).toMatchObject({ offsetBytes: 177 * MiB, sizeBytes: 16 * MiB });
    for (const p of before.partitions) expect([p.offsetBytes % MiB, p.sizeBytes % MiB]).toEqual([0, 0]);
    // A source change (a bigger app layer, even past its slot) moves neither the deps nor the app.
    for (const appBytes of [5 * MiB + 4096, 40 * MiB]) {
      const after = planDiskLayout({ ...withDeps, appBytes });
      expect(part(after, "deps")).toEqual(part(before, "deps"));
      expect(part(after, "app").offsetBytes).toBe(part(before, "app").offsetBytes);
    }
    // Partition 4 is a real MBR entry; the table keeps number order, not disk order.
    const entries = layoutToMbrPartitions(before);
    expect(entries.map((e) => e.startLba * 512)).toEqual([MiB, 65 * MiB, 177 * MiB, 129 * MiB]);
    expect(parseMbr(buildMbr({ diskSignature: 7, partitions: entries })).partitions).toEqual(entries);
  });

  test("an app without dependencies has no fourth partition (its disk is unchanged)", () => {
    expect(planDiskLayout(base)).toEqual(planDiskLayout({ ...base }));
    expect(planDiskLayout(base).partitions.map((p) => p.name)).toEqual(["boot", "system", "app"]);
  });
});
