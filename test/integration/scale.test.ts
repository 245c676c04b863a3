// Issue 16, item 5: an app with 50 000 files in node_modules goes through the stages that walk
// the tree (staging copy, ELF scan, SBOM walk, tree hash, EROFS build) with bounded memory, and
// a long stage prints a progress line at least every few seconds. Cold and warm figures are
// printed for the report (KILN_SCALE_FILES=n changes the size).
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { copyAppTree } from "../../src/bake/app-tree.js";
import { findElfFiles } from "../../src/bake/libs.js";
import { ElfScanCache, fsReader, type FileReader } from "../../src/elf/scan-cache.js";
import { forgetCopies } from "../../src/file-identity.js";
import { hashTree } from "../../src/fsutil.js";
import { makeErofs } from "../../src/image/erofs.js";
import { scanAppDependencies } from "../../src/packages/app-deps.js";
import { countFiles, stderrProgress } from "../../src/progress.js";
import { makeBigNodeApp, type BigTree } from "./big-tree.js";

const FILES = Number(process.env.KILN_SCALE_FILES ?? 50_000);
const PER_PACKAGE = 100;
const HEARTBEAT_MS = 1000;

let dir: string;
let app: BigTree;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "kiln-scale-"));
  app = await makeBigNodeApp(path.join(dir, "src"), Math.ceil(FILES / PER_PACKAGE), PER_PACKAGE);
}, 600_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Run {
  readonly seconds: number;
  readonly peakRssDelta: number;
  readonly longestSilence: number;
  readonly lines: string[];
  readonly reads: number;
}

/** The tree-walking stages of a bake, as bake.ts runs them, with memory sampled and lines timed. */
async function bakeStages(n: number, opts: { buildLayer: boolean }): Promise<Run> {
  const lines: string[] = [];
  let last = performance.now();
  let longestSilence = 0;
  const progress = stderrProgress({
    heartbeatMs: HEARTBEAT_MS,
    write: (text) => {
      const now = performance.now();
      longestSilence = Math.max(longestSilence, now - last);
      last = now;
      lines.push(text.trimEnd());
    },
  });
  let reads = 0;
  const reader: FileReader = {
    head(f, b) {
      reads++;
      return fsReader.head(f, b);
    },
    whole(f) {
      reads++;
      return fsReader.whole(f);
    },
  };
  globalThis.gc?.();
  const base = process.memoryUsage().rss;
  let peak = base;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 50);
  const started = performance.now();
  const scratch = path.join(dir, `bake-${n}`);
  const staged = path.join(scratch, "app");
  try {
    await progress.step("App files", () => copyAppTree(app.root, staged));
    await progress.step("Shared libraries", async () => {
      const cache = await ElfScanCache.open(path.join(dir, "home", "elf-scan"), reader);
      await findElfFiles(staged, "/app", { cache, onFile: countFiles(progress, "Shared libraries") });
      await cache.save();
    });
    await progress.step("SBOM walk", () => scanAppDependencies(staged));
    const key = await progress.step("Tree hash", () => hashTree(scratch));
    if (opts.buildLayer) await progress.step("App layer", () => makeErofs(scratch, path.join(dir, `app-${n}.erofs`), key.slice(0, 32)));
    last = performance.now();
    return {
      seconds: (performance.now() - started) / 1000,
      peakRssDelta: Math.max(peak, process.memoryUsage().rss) - base,
      longestSilence: longestSilence / 1000,
      lines,
      reads,
    };
  } finally {
    clearInterval(sampler);
    forgetCopies(scratch);
    await rm(scratch, { recursive: true, force: true });
  }
}

const MiB = 1024 * 1024;

describe(`a Node app with ${FILES} files in node_modules`, () => {
  it("bakes its tree-walking stages with bounded memory and a progress line at least every 3 s, cold and warm", async () => {
    const cold = await bakeStages(1, { buildLayer: true });
    // Warm: a rebake of the unchanged app stages a fresh copy; the app layer is a cache hit (not rebuilt).
    const warm = await bakeStages(2, { buildLayer: false });
    const figure = (r: Run) =>
      `${r.seconds.toFixed(1)} s, peak RSS +${(r.peakRssDelta / MiB).toFixed(0)} MiB, ${r.reads} file reads by the ELF scan`;
    process.stderr.write(`scale (${app.files} files): cold ${figure(cold)}; warm ${figure(warm)}\n`);
    process.stderr.write(`${cold.lines.join("\n")}\n--- warm\n${warm.lines.join("\n")}\n`);

    expect(cold.reads).toBeGreaterThanOrEqual(app.files);
    expect(warm.reads).toBe(0);
    // Generous: one file's content in memory at a time; the listing of 50 000 entries is a few MiB.
    for (const r of [cold, warm]) {
      expect(r.peakRssDelta).toBeLessThan(256 * MiB);
      expect(r.longestSilence).toBeLessThan(3 * (HEARTBEAT_MS / 1000) + 1);
    }
    expect(cold.lines.some((l) => /Shared libraries\s+… [\d.]+s, \d+ files/.test(l)) || cold.seconds < 2).toBe(true);
  }, 900_000);
});
