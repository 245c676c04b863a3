import { mkdtemp, mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { findElfFiles } from "../../src/bake/libs.js";
import { copyTreeNormalized } from "../../src/fsutil.js";
import { ElfScanCache, fsReader, type FileReader } from "../../src/elf/scan-cache.js";
import { DF_1_PIE, ET, buildElf } from "./helpers/elf-builder.js";

const ADDON = { type: ET.DYN, needed: ["libc.so.6"], soname: "addon.node" };
const PROGRAM = { type: ET.DYN, interpreter: "/lib64/ld-linux-x86-64.so.2", needed: ["libz.so.1", "libc.so.6"], flags1: DF_1_PIE };

/** Counts every read of file contents (head or whole), so "reads nothing" is evidence, not timing. */
function countingReader(): FileReader & { reads: string[] } {
  const reads: string[] = [];
  return {
    reads,
    head(file, bytes) {
      reads.push(`head ${path.basename(file)}`);
      return fsReader.head(file, bytes);
    },
    whole(file) {
      reads.push(`whole ${path.basename(file)}`);
      return fsReader.whole(file);
    },
  };
}

let dir: string;
let tree: string;
let cacheDir: string;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "kiln-elfscan-"));
  tree = path.join(dir, "app");
  cacheDir = path.join(dir, "home", "cache", "elf-scan");
  await mkdir(path.join(tree, "node_modules", "addon", "build"), { recursive: true });
  await writeFile(path.join(tree, "server.js"), "console.log('hi')\n");
  await writeFile(path.join(tree, "node_modules", "addon", "index.js"), "module.exports = 1\n");
  await writeFile(path.join(tree, "node_modules", "addon", "build", "addon.node"), buildElf(ADDON));
  await writeFile(path.join(tree, "server"), buildElf(PROGRAM));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function scanTwice(): Promise<{ first: string[]; second: string[]; roots: Awaited<ReturnType<typeof findElfFiles>> }> {
  const cold = countingReader();
  const c1 = await ElfScanCache.open(cacheDir, cold);
  await findElfFiles(tree, "/app", { cache: c1 });
  await c1.save();
  const warm = countingReader();
  const c2 = await ElfScanCache.open(cacheDir, warm);
  const roots = await findElfFiles(tree, "/app", { cache: c2 });
  await c2.save();
  return { first: cold.reads, second: warm.reads, roots };
}

describe("ELF scan cache", () => {
  it("a second scan of an unchanged tree reads no file contents and finds the same ELF files", async () => {
    const uncached = await findElfFiles(tree, "/app");
    const { first, second, roots } = await scanTwice();
    expect(first).toContain("whole addon.node");
    expect(first).toContain("head server.js");
    expect(second).toEqual([]);
    expect(roots).toEqual(uncached);
    expect(roots.map((r) => r.imagePath)).toEqual(["/app/node_modules/addon/build/addon.node", "/app/server"]);
  });

  it("rescans a changed file, and only that file", async () => {
    await scanTwice();
    await writeFile(path.join(tree, "server"), buildElf({ ...PROGRAM, needed: ["libssl.so.3", "libc.so.6"] }));
    const reader = countingReader();
    const roots = await findElfFiles(tree, "/app", { cache: await ElfScanCache.open(cacheDir, reader) });
    expect(reader.reads).toEqual(["head server", "whole server"]);
    expect(roots.find((r) => r.imagePath === "/app/server")?.info.needed).toEqual(["libssl.so.3", "libc.so.6"]);
  });

  it("a file that turned from ELF into text is no longer reported", async () => {
    await scanTwice();
    await writeFile(path.join(tree, "server"), "#!/bin/sh\n");
    const roots = await findElfFiles(tree, "/app", { cache: await ElfScanCache.open(cacheDir) });
    expect(roots.map((r) => r.imagePath)).toEqual(["/app/node_modules/addon/build/addon.node"]);
  });

  it("a copy of a known file (new inode) is read once to hash it, but its parsed result is reused", async () => {
    await scanTwice();
    const copy = path.join(dir, "copy");
    await mkdir(copy);
    await writeFile(path.join(copy, "addon.node"), await readFile(path.join(tree, "node_modules", "addon", "build", "addon.node")));
    const reader = countingReader();
    const roots = await findElfFiles(copy, "/app", { cache: await ElfScanCache.open(cacheDir, reader) });
    expect(reader.reads).toEqual(["head addon.node", "whole addon.node"]);
    expect(roots[0]?.info.soname).toBe("addon.node");
  });

  it("ignores a poisoned content entry and a corrupt index: the file is parsed again, nothing fails", async () => {
    await scanTwice();
    const shards = await readdir(path.join(cacheDir, "content"));
    for (const shard of shards) {
      for (const name of await readdir(path.join(cacheDir, "content", shard))) {
        const file = path.join(cacheDir, "content", shard, name);
        const entry = JSON.parse(await readFile(file, "utf8")) as { info: Record<string, unknown> };
        // A lie that would pull a library from outside the tree, and a type a reader would trip on.
        entry.info.needed = ["../../etc/shadow", 7];
        await writeFile(file, JSON.stringify(entry));
      }
    }
    const reader = countingReader();
    const roots = await findElfFiles(tree, "/app", { cache: await ElfScanCache.open(cacheDir, reader) });
    expect(reader.reads.filter((r) => r.startsWith("whole")).sort()).toEqual(["whole addon.node", "whole server"]);
    expect(roots.find((r) => r.imagePath === "/app/server")?.info.needed).toEqual(["libz.so.1", "libc.so.6"]);

    await writeFile(path.join(cacheDir, "index.json"), '{"version":1,"entries":{"x":"n","1:2:3:4:5":{"a":1}}');
    const again = await findElfFiles(tree, "/app", { cache: await ElfScanCache.open(cacheDir) });
    expect(again.map((r) => r.imagePath)).toEqual(["/app/node_modules/addon/build/addon.node", "/app/server"]);
  });

  it("a content entry filed under another file's digest is not used", async () => {
    await scanTwice();
    const files: string[] = [];
    for (const shard of await readdir(path.join(cacheDir, "content")))
      for (const name of await readdir(path.join(cacheDir, "content", shard))) files.push(path.join(cacheDir, "content", shard, name));
    expect(files).toHaveLength(2);
    // Swap the two entries' bodies: each now claims the other's digest.
    const [a, b] = await Promise.all(files.map((f) => readFile(f, "utf8")));
    await writeFile(files[0]!, b!);
    await writeFile(files[1]!, a!);
    const roots = await findElfFiles(tree, "/app", { cache: await ElfScanCache.open(cacheDir) });
    expect(roots.find((r) => r.imagePath === "/app/server")?.info.interpreter).toBe("/lib64/ld-linux-x86-64.so.2");
    expect(roots.find((r) => r.imagePath === "/app/node_modules/addon/build/addon.node")?.info.soname).toBe("addon.node");
  });

  it("a fresh staging copy of an unchanged source (new inodes, as every bake makes) reads nothing", async () => {
    const stage = async (n: number) => {
      const staged = path.join(dir, `stage-${n}`);
      await copyTreeNormalized(tree, staged);
      return staged;
    };
    const first = await stage(1);
    const c1 = await ElfScanCache.open(cacheDir);
    await findElfFiles(first, "/app", { cache: c1 });
    await c1.save();

    const reader = countingReader();
    const roots = await findElfFiles(await stage(2), "/app", { cache: await ElfScanCache.open(cacheDir, reader) });
    expect(reader.reads).toEqual([]);
    expect(roots.map((r) => r.imagePath)).toEqual(["/app/node_modules/addon/build/addon.node", "/app/server"]);

    // The source changes: its next copy is read. A copy changed after staging is read too.
    await writeFile(path.join(tree, "server"), buildElf({ ...PROGRAM, needed: ["libssl.so.3"] }));
    const third = await stage(3);
    await writeFile(path.join(third, "node_modules", "addon", "build", "addon.node"), buildElf({ ...ADDON, soname: "other.node" }));
    const again = countingReader();
    const changed = await findElfFiles(third, "/app", { cache: await ElfScanCache.open(cacheDir, again) });
    expect(again.reads.sort()).toEqual(["head addon.node", "head server", "whole addon.node", "whole server"]);
    expect(changed.map((r) => r.info.soname ?? r.info.needed.join(","))).toEqual(["other.node", "libssl.so.3"]);
  });
});
