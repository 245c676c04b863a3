// Properties of the two readers kiln runs on untrusted bytes: the ELF reader (programs, libraries,
// kernel modules) and the modinfo reader. On arbitrary and on mutated well-formed input, each
// returns or throws InputError (its own error type), nothing else, and answers quickly.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { parseElf, readSection } from "../../src/elf/elf.js";
import { parseModinfo } from "../../src/kmod/modinfo.js";
import { buildElf, EM, ET } from "./helpers/elf-builder.js";
import { fuzzRuns, fuzzTimeoutMs } from "./helpers/fuzz.js";

const runs = fuzzRuns(200);
/** Far above what a reader of a few-KB input needs; a hang or a quadratic blow-up shows. */
const MAX_MS = 500;

const SEEDS: readonly Buffer[] = [
  buildElf({
    type: ET.EXEC,
    interpreter: "/lib64/ld-linux-x86-64.so.2",
    needed: ["libc.so.6", "libz.so.1"],
    runpath: "$ORIGIN/lib",
    rpath: "/opt/lib:",
  }),
  buildElf({ type: ET.DYN, soname: "libfoo.so.1", needed: ["libc.so.6"], flags1: 0x08000000 }),
  buildElf({ bits: 32, littleEndian: false, machine: EM.ARM, type: ET.DYN, needed: ["libm.so.6"], omitStrsz: true }),
  buildElf({
    type: ET.REL,
    programHeaders: false,
    sections: [
      {
        name: ".modinfo",
        data: Buffer.from(
          "name=e1000\0depends=a,b-c\0alias=pci:v00008086d*\0softdep=pre: crc32c post: x\0vermagic=6.1.0 SMP mod_unload \0",
        ),
      },
    ],
  }),
];

/** A seed with some bytes overwritten and maybe cut short: the kind of damage that finds bounds bugs. */
const mutated = fc
  .tuple(
    fc.nat(SEEDS.length - 1),
    fc.array(fc.tuple(fc.nat(4095), fc.integer({ min: 0, max: 255 })), { maxLength: 24 }),
    fc.option(fc.nat(4096)),
  )
  .map(([i, flips, cut]) => {
    const seed = SEEDS[i]!;
    const bytes = Buffer.from(cut === null ? seed : seed.subarray(0, cut));
    for (const [at, value] of flips) if (at < bytes.length) bytes[at] = value;
    return bytes;
  });

/** Random bytes behind a valid identification, so the header parsing is reached. */
const headed = fc
  .tuple(fc.constantFrom(1, 2), fc.constantFrom(1, 2), fc.uint8Array({ maxLength: 512 }))
  .map(([elfClass, data, rest]) => Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, elfClass, data, 1]), Buffer.from(rest)]));

const input = fc.oneof(
  mutated,
  headed,
  fc.uint8Array({ maxLength: 256 }).map((b) => Buffer.from(b)),
);

/** Runs a reader; only InputError may escape, and it must answer within MAX_MS. */
function readsSafely(read: () => unknown): void {
  const started = performance.now();
  try {
    read();
  } catch (error) {
    if (!(error instanceof InputError)) throw error;
  }
  expect(performance.now() - started).toBeLessThan(MAX_MS);
}

describe("ELF and modinfo readers, property", () => {
  it(
    `parseElf and readSection throw only InputError (${runs} runs each)`,
    () => {
      fc.assert(
        fc.property(input, (bytes) => {
          readsSafely(() => parseElf(bytes, "fuzz"));
          readsSafely(() => readSection(bytes, ".modinfo", "fuzz"));
        }),
        { numRuns: runs },
      );
    },
    fuzzTimeoutMs(runs, 20),
  );

  it(
    `parseModinfo throws only InputError (${runs} runs)`,
    () => {
      fc.assert(
        fc.property(input, (bytes) => readsSafely(() => parseModinfo(bytes, "fuzz.ko"))),
        { numRuns: runs },
      );
    },
    fuzzTimeoutMs(runs, 20),
  );

  it("the seeds themselves parse (the mutations start from valid files)", () => {
    expect(parseElf(SEEDS[0]!).needed).toEqual(["libc.so.6", "libz.so.1"]);
    expect(parseModinfo(SEEDS[3]!, "e1000.ko").depends).toEqual(["a", "b_c"]);
  });
});
