// Property: whatever a tar archive holds (files, directories, symlinks absolute, relative,
// climbing or pointing at earlier entries, hard links, duplicate names, deep paths), extracting
// it either succeeds or throws InputError, and never creates, changes or reads anything outside
// its root: a canary directory next to the root is hashed before and after, no file in the
// result carries the canary's secret, and no symlink in the result resolves outside the root.
import { createHash } from "node:crypto";
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { extractTarball } from "../../src/archive/tarball.js";
import { resolveBeneath } from "../../src/confine.js";
import { InputError } from "../../src/errors.js";
import { fuzzRuns, fuzzTimeoutMs } from "./helpers/fuzz.js";
import { makeTar, type TarEntry } from "./helpers/tar-builder.js";

const SECRET = "canary-secret-5f1c";
let base: string;
let canary: string;

beforeAll(async () => {
  base = await mkdtemp(path.join(os.tmpdir(), "kiln-fuzz-tar-"));
  canary = path.join(base, "canary");
  await mkdir(path.join(canary, "sub"), { recursive: true });
  await writeFile(path.join(canary, "shadow"), SECRET);
  await chmod(path.join(canary, "shadow"), 0o600);
  await writeFile(path.join(canary, "sub", "key"), SECRET);
});

afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

/** Names, modes, link targets and contents of a tree (links not followed). */
async function hashTree(dir: string): Promise<string> {
  const hash = createHash("sha256");
  async function walk(rel: string): Promise<void> {
    for (const name of (await readdir(path.join(dir, rel))).sort()) {
      const child = path.join(dir, rel, name);
      const info = await lstat(child);
      hash.update(`${rel}/${name}\0${info.mode}\0`);
      if (info.isSymbolicLink()) hash.update(await readlink(child));
      else if (info.isDirectory()) await walk(path.join(rel, name));
      else hash.update(await readFile(child));
    }
  }
  await walk("");
  return hash.digest("hex");
}

/** Every symlink and file in the extracted tree: links must resolve inside, files must not hold the secret. */
async function checkResult(root: string): Promise<void> {
  // An archive refused before extraction starts (no tar header at all) leaves no root.
  if (
    !(await lstat(root).then(
      () => true,
      () => false,
    ))
  )
    return;
  async function walk(rel: string): Promise<void> {
    for (const name of await readdir(path.join(root, rel))) {
      const childRel = rel ? `${rel}/${name}` : name;
      const info = await lstat(path.join(root, childRel));
      if (info.isSymbolicLink())
        expect(await resolveBeneath(root, childRel), `${childRel} -> ${await readlink(path.join(root, childRel))}`).toHaveProperty("rel");
      else if (info.isDirectory()) await walk(childRel);
      else {
        expect((await readFile(path.join(root, childRel), "utf8")).includes(SECRET), childRel).toBe(false);
        expect(info.mode & 0o7022, `${childRel} mode`).toBe(0);
      }
    }
  }
  await walk("");
}

/** Path pieces that make collisions, links through links and climbs likely. */
const segment = fc.constantFrom("a", "b", "c", "d", ".", "..", "", "canary", "shadow", "x".repeat(100));
const entryPath = fc.array(segment, { minLength: 1, maxLength: 6 }).map((parts) => parts.join("/"));

function linkTarget(): fc.Arbitrary<string> {
  return fc.oneof(
    entryPath,
    fc.constantFrom("/", "/etc", "/etc/shadow", "../canary", "../canary/shadow", "../../..", "..", ".", "a/../..", "d/.."),
    fc.constant("CANARY_ABS"),
  );
}

const entry: fc.Arbitrary<TarEntry> = fc.oneof(
  fc.record({
    name: entryPath,
    type: fc.constant("file" as const),
    data: fc.string({ maxLength: 20 }),
    mode: fc.constantFrom(0o644, 0o755, 0o4755, 0o777, 0o000),
  }),
  fc.record({ name: entryPath, type: fc.constant("directory" as const), mode: fc.constantFrom(0o755, 0o1777, 0o700) }),
  fc.record({ name: entryPath, type: fc.constant("symlink" as const), linkname: linkTarget() }),
  fc.record({ name: entryPath, type: fc.constant("link" as const), linkname: linkTarget() }),
);

describe("tar extraction, property", () => {
  // Each archive run makes and removes a small tree (~50 ms on a busy 2-core machine): fewer by default.
  const runs = fuzzRuns(200);
  const archiveRuns = fuzzRuns(100);
  it(
    `stays inside its root for any archive (${archiveRuns} runs)`,
    async () => {
      const before = await hashTree(canary);
      let n = 0;
      await fc.assert(
        fc.asyncProperty(fc.array(entry, { maxLength: 12 }), fc.boolean(), async (entries, gzip) => {
          const run = path.join(base, `run-${n++}`);
          const root = path.join(run, "root");
          await mkdir(run);
          try {
            const concrete = entries.map((e) => (e.linkname === "CANARY_ABS" ? { ...e, linkname: canary } : e));
            const tar = await makeTar(concrete);
            const file = path.join(run, gzip ? "app.tar.gz" : "app.tar");
            await writeFile(file, gzip ? (await import("node:zlib")).gzipSync(tar) : tar);
            const outcome = await extractTarball(file, root).then(
              () => undefined,
              (error: unknown) => error,
            );
            if (outcome !== undefined && !(outcome instanceof InputError)) throw outcome;
            await checkResult(root);
            expect(await hashTree(canary)).toBe(before);
            expect((await readdir(run)).filter((name) => name !== "root")).toEqual([gzip ? "app.tar.gz" : "app.tar"]);
          } finally {
            await rm(run, { recursive: true, force: true });
          }
        }),
        { numRuns: archiveRuns },
      );
    },
    fuzzTimeoutMs(archiveRuns, 200),
  );

  it(
    `never throws anything but InputError on corrupt bytes (${runs} runs)`,
    async () => {
      const seed = await makeTar([
        { name: "a/b", data: "hello" },
        { name: "l", type: "symlink", linkname: "a/b" },
        { name: "h", type: "link", linkname: "a/b" },
      ]);
      let n = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.tuple(fc.nat(seed.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 16 }),
          fc.nat(seed.length),
          async (flips, cut) => {
            const bytes = Buffer.from(seed.subarray(0, Math.max(cut, 262)));
            for (const [at, value] of flips) if (at < bytes.length) bytes[at] = value;
            const run = path.join(base, `corrupt-${n++}`);
            await mkdir(run);
            try {
              const file = path.join(run, "app.tar");
              await writeFile(file, bytes);
              const outcome = await extractTarball(file, path.join(run, "root")).then(
                () => undefined,
                (error: unknown) => error,
              );
              if (outcome !== undefined && !(outcome instanceof InputError)) throw outcome;
              await checkResult(path.join(run, "root"));
            } finally {
              await rm(run, { recursive: true, force: true });
            }
          },
        ),
        { numRuns: runs },
      );
    },
    fuzzTimeoutMs(runs, 50),
  );
});
