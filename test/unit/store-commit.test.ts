/** Hole 7a: concurrent commits of one digest (two bakes of the same inputs) all succeed and leave the store intact. */
import { mkdtempSync } from "node:fs";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { kilnHome } from "../../src/home.js";
import type { ImageManifest } from "../../src/image/manifest.js";
import { ImageStore } from "../../src/image/store.js";

const DIGEST = `sha256:${"ab".repeat(32)}`;

function manifestOf(version: string): ImageManifest {
  return { name: "race", version, digest: DIGEST, bakedAt: new Date().toISOString() } as unknown as ImageManifest;
}

async function stage(home: ReturnType<typeof kilnHome>, i: number): Promise<string> {
  const dir = path.join(home.tmp, `image-${i}`);
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, "disk.raw"), "the same bytes from every bake");
  return dir;
}

describe("ImageStore.commit", () => {
  it("is idempotent under concurrency: every writer of one digest succeeds", async () => {
    const home = kilnHome({ KILN_HOME: mkdtempSync(path.join(os.tmpdir(), "kiln-store-race-")) });
    const store = new ImageStore(home);
    const staged = await Promise.all(Array.from({ length: 16 }, (_, i) => stage(home, i)));
    const results = await Promise.allSettled(staged.map((dir, i) => store.commit(dir, manifestOf(`1.${i % 4}`))));
    const failures = results.filter((r) => r.status === "rejected").map((r) => String((r as PromiseRejectedResult).reason));
    expect(failures).toEqual([]);
    // One image directory, complete, and every ref resolves to it.
    expect(await readdir(home.images)).toEqual([DIGEST.slice("sha256:".length)]);
    const image = await store.resolve("race:1.3");
    expect(await readFile(image.disk, "utf8")).toBe("the same bytes from every bake");
    expect(JSON.parse(await readFile(path.join(image.dir, "manifest.json"), "utf8")).digest).toBe(DIGEST);
    for (const v of ["1.0", "1.1", "1.2", "1.3"]) expect((await store.resolve(`race:${v}`)).digest).toBe(DIGEST);
    // Nothing half-moved is left in the image directory.
    expect((await readdir(image.dir)).sort()).toEqual(["disk.raw", "manifest.json"]);
  });
});
