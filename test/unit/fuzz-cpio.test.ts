/**
 * Property: whatever entries the initramfs writer is given, it either refuses them with its own
 * "cpio:" error or writes an archive an independent newc reader reads back to exactly those
 * entries (plus their parent directories), sorted, aligned, with a trailer, byte-identical when
 * written again from the same entries in another order.
 */
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { buildCpio, type CpioEntry } from "../../src/image/cpio.js";
import { fuzzRuns } from "./helpers/fuzz-runs.js";
import { readNewc } from "./helpers/newc.js";

const segment = fc.oneof(fc.constantFrom("bin", "lib", "a", "b", ".", "..", "", "x\0y", "é"), fc.string({ minLength: 0, maxLength: 6 }));
const entryPath = fc.array(segment, { minLength: 1, maxLength: 4 }).map((parts) => parts.join("/"));
const mode = fc.oneof(fc.constantFrom(0o755, 0o644, 0o600, 0o4755), fc.integer({ min: -1, max: 0o20000 }));

const entry: fc.Arbitrary<CpioEntry> = fc.oneof(
  fc.record({ path: entryPath, type: fc.constant("dir" as const), mode }),
  fc.record({
    path: entryPath,
    type: fc.constant("file" as const),
    mode,
    data: fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
  }),
  fc.record({ path: entryPath, type: fc.constant("symlink" as const), target: fc.string({ maxLength: 12 }) }),
  fc.record({
    path: entryPath,
    type: fc.constant("char" as const),
    mode,
    major: fc.integer({ min: -1, max: 300 }),
    minor: fc.integer({ min: -1, max: 300 }),
  }),
);

const TYPE_BITS: Record<CpioEntry["type"], number> = { dir: 0o040000, file: 0o100000, symlink: 0o120000, char: 0o020000 };

describe("property: cpio writer round trip", () => {
  let written = 0;
  afterAll(() => {
    // Not vacuous: a good share of the generated sets must be valid archives, not refusals.
    expect(written).toBeGreaterThan(fuzzRuns(300) / 10);
  });

  it("refuses with its own error, or writes exactly the entries given", () => {
    fc.assert(
      fc.property(fc.array(entry, { maxLength: 12 }), (entries) => {
        let archive: Buffer;
        try {
          archive = buildCpio(entries);
        } catch (error) {
          expect((error as Error).message).toMatch(/^cpio: /);
          return;
        }
        written += 1;
        const read = readNewc(archive);
        expect(read.at(-1)?.name).toBe("TRAILER!!!");
        const body = read.slice(0, -1);
        const names = body.map((e) => e.name);
        expect(names).toEqual([...names].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
        expect(new Set(names).size).toBe(names.length);
        for (const name of names) {
          const parent = name.split("/").slice(0, -1).join("/");
          if (parent) expect(body.find((e) => e.name === parent)?.mode ?? 0).toBeGreaterThanOrEqual(0o040000);
        }
        for (const given of entries) {
          const found = body.find((e) => e.name === given.path);
          expect(found, given.path).toBeDefined();
          if (!found) continue;
          expect(found.mode & 0o170000).toBe(TYPE_BITS[given.type]);
          if (given.type === "file") expect(Buffer.compare(found.data, given.data)).toBe(0);
          if (given.type === "symlink") expect(found.data.toString("utf8")).toBe(given.target);
          if (given.type !== "symlink") expect(found.mode & 0o7777).toBe(given.mode);
        }
        expect(Buffer.compare(buildCpio([...entries].reverse()), archive)).toBe(0);
      }),
      { numRuns: fuzzRuns(300) },
    );
  });
});
