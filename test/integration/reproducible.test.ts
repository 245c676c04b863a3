// Reproducibility and layer caching: the same inputs baked in two empty kiln homes give the
// same digest and the same disk bytes; changing one app file rebuilds only the app layer.
import { randomUUID } from "node:crypto";
import { cpSync, mkdtempSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { bake } from "../../src/bake/bake.js";
import { digestOfDiskFile } from "../../src/image/disk.js";
import { freshHome, quiet, repo, sharedHome } from "./harness.js";

function sameBytes(a: string, b: string): boolean {
  return readFileSync(a).equals(readFileSync(b));
}

describe.sequential("reproducible bakes", () => {
  it("two cold bakes of hello-node in separate homes give the same digest and identical raw bytes", async () => {
    const app = mkdtempSync(path.join(os.tmpdir(), "kiln-repro-"));
    cpSync(path.join(repo, "examples", "hello-node"), app, { recursive: true });
    rmSync(path.join(app, "kiln.lock"), { force: true });
    const first = await bake(app, {}, freshHome(), quiet);
    // The second bake reads the lock the first one wrote, as a teammate's checkout would.
    const second = await bake(app, {}, freshHome(), quiet);
    expect(second.image.digest).toBe(first.image.digest);
    expect(sameBytes(first.image.disk, second.image.disk)).toBe(true);
    // The digest really describes the bytes on disk.
    expect(await digestOfDiskFile(first.image.disk, first.image.manifest.layout)).toBe(first.image.digest);
    expect(first.image.manifest.layers.every((l) => !l.cached || l.name === "kernel")).toBe(true);
  });

  it("changing one app file rebuilds only the app layer and keeps the other partitions in place", async () => {
    const home = sharedHome();
    const app = mkdtempSync(path.join(os.tmpdir(), "kiln-change-"));
    cpSync(path.join(repo, "examples", "hello-node"), app, { recursive: true });
    const before = await bake(app, {}, home, quiet);
    const server = path.join(app, "server.js");
    // Unique per run: the shared home keeps app layers from earlier runs.
    writeFileSync(server, `${readFileSync(server, "utf8")}\n// change ${randomUUID()}\n`);
    const after = await bake(app, {}, home, quiet);
    expect(after.image.digest).not.toBe(before.image.digest);
    const cached = Object.fromEntries(after.image.manifest.layers.map((l) => [l.name, l.cached]));
    expect(cached).toEqual({ kernel: true, init: true, boot: true, system: true, app: false });
    const layer = (image: typeof before.image, name: string) => image.manifest.layers.find((l) => l.name === name)!.sha256;
    for (const name of ["init", "boot", "system"]) expect(layer(after.image, name)).toBe(layer(before.image, name));
    expect(after.image.manifest.layout.partitions.map((p) => p.offsetBytes)).toEqual(
      before.image.manifest.layout.partitions.map((p) => p.offsetBytes),
    );
  });
});
