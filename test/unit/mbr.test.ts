import { describe, expect, test } from "vitest";
import { buildMbr, encodeChs, parseMbr, partUuid, type MbrPartition } from "../../src/image/mbr.js";

const parts: MbrPartition[] = [
  { bootable: true, type: 0xef, startLba: 2048, sectors: 131072 },
  { bootable: false, type: 0x83, startLba: 133120, sectors: 262144 },
  { bootable: false, type: 0x83, startLba: 395264, sectors: 32768 },
];

describe("buildMbr", () => {
  test("round-trips through parseMbr", () => {
    const sector = buildMbr({ diskSignature: 0x1a2b3c4d, partitions: parts });
    expect(sector.length).toBe(512);
    expect(parseMbr(sector)).toEqual({ diskSignature: 0x1a2b3c4d, partitions: parts });
  });

  test("places boot code, signature, reserved bytes, entries and 0x55AA", () => {
    const bootCode = Buffer.alloc(440, 0xcc);
    const sector = buildMbr({ bootCode, diskSignature: 0xdeadbeef, partitions: parts.slice(0, 1) });
    expect(sector.subarray(0, 440).equals(bootCode)).toBe(true);
    expect([...sector.subarray(440, 446)]).toEqual([0xef, 0xbe, 0xad, 0xde, 0, 0]);
    const e = sector.subarray(446, 462);
    expect(e[0]).toBe(0x80);
    expect([...e.subarray(1, 4)]).toEqual([32, 33, 0]);
    expect(e[4]).toBe(0xef);
    expect(e.readUInt32LE(8)).toBe(2048);
    expect(e.readUInt32LE(12)).toBe(131072);
    expect(sector.subarray(462, 510).every((b) => b === 0)).toBe(true);
    expect([sector[510], sector[511]]).toEqual([0x55, 0xaa]);
  });

  test("short boot code is zero-filled", () => {
    const sector = buildMbr({ bootCode: Buffer.from([0xfa, 0x31]), diskSignature: 1, partitions: [] });
    expect([sector[0], sector[1]]).toEqual([0xfa, 0x31]);
    expect(sector.subarray(2, 440).every((b) => b === 0)).toBe(true);
    expect(parseMbr(sector).partitions).toEqual([]);
  });

  test("writes the last-sector CHS and the LBA sentinel for large disks", () => {
    const sector = buildMbr({ diskSignature: 1, partitions: [{ bootable: false, type: 0x83, startLba: 2048, sectors: 40_000_000 }] });
    expect([...sector.subarray(446 + 5, 446 + 8)]).toEqual([0xfe, 0xff, 0xff]);
  });

  test("rejects invalid tables with clear messages", () => {
    const one = (p: Partial<MbrPartition>): MbrPartition[] => [{ bootable: false, type: 0x83, startLba: 2048, sectors: 8, ...p }];
    expect(() => buildMbr({ diskSignature: 1, partitions: [parts[0]!, { ...parts[1]!, startLba: 2048 + 131071 }] })).toThrow(
      /partition 1 .* overlaps partition 2/,
    );
    expect(() => buildMbr({ diskSignature: 1, partitions: [parts[1]!, parts[0]!, { ...parts[2]!, startLba: 133120 + 100 }] })).toThrow(
      /overlaps/,
    );
    expect(() => buildMbr({ diskSignature: 1, partitions: one({ startLba: 0 }) })).toThrow(/≥ 1/);
    expect(() => buildMbr({ diskSignature: 1, partitions: one({ sectors: 0 }) })).toThrow(/positive/);
    expect(() => buildMbr({ diskSignature: 1, partitions: one({ startLba: 2 ** 32 - 4 }) })).toThrow(/2 TiB/);
    expect(() => buildMbr({ diskSignature: 1, partitions: one({ type: 0 }) })).toThrow(/invalid type/);
    expect(() => buildMbr({ diskSignature: 2 ** 32, partitions: [] })).toThrow(/disk signature/);
    expect(() => buildMbr({ bootCode: Buffer.alloc(441), diskSignature: 1, partitions: [] })).toThrow(/441 bytes/);
    expect(() => buildMbr({ diskSignature: 1, partitions: [...parts, parts[0]!, parts[0]!] })).toThrow(/at most 4/);
    expect(() => buildMbr({ diskSignature: 1, partitions: [parts[0]!, { ...parts[1]!, bootable: true }] })).toThrow(/bootable/);
  });

  test("adjacent partitions are fine", () => {
    expect(() =>
      buildMbr({
        diskSignature: 1,
        partitions: [
          { bootable: false, type: 0x83, startLba: 1, sectors: 10 },
          { bootable: false, type: 0x83, startLba: 11, sectors: 10 },
        ],
      }),
    ).not.toThrow();
  });
});

describe("encodeChs", () => {
  test("known values", () => {
    expect(encodeChs(0)).toEqual([0, 1, 0]);
    expect(encodeChs(2048)).toEqual([32, 33, 0]); // C/H/S 0/32/33
    expect(encodeChs(255 * 63)).toEqual([0, 1, 1]); // cylinder 1
    // cylinder 1023, head 254, sector 63: the last CHS-addressable sector
    expect(encodeChs(1024 * 255 * 63 - 1)).toEqual([254, 63 | 0xc0, 0xff]);
    expect(encodeChs(1024 * 255 * 63)).toEqual([0xfe, 0xff, 0xff]);
  });
});

describe("parseMbr", () => {
  test("rejects sectors without the boot signature or too short", () => {
    expect(() => parseMbr(Buffer.alloc(512))).toThrow(/0x55AA/);
    expect(() => parseMbr(Buffer.alloc(100))).toThrow(/512 bytes/);
  });
});

describe("partUuid", () => {
  test("formats like the kernel", () => {
    expect(partUuid(0x1a2b3c4d, 2)).toBe("1a2b3c4d-02");
    expect(partUuid(0xabc, 1)).toBe("00000abc-01");
    expect(partUuid(0xffffffff, 3)).toBe("ffffffff-03");
    expect(() => partUuid(-1, 1)).toThrow();
    expect(() => partUuid(1, 0)).toThrow();
  });
});
