// reuseAppLayer on a stored image with a dependency partition, with the image crafted here
// (two small EROFS files laid end to end as the raw disk): a good one is reused, a damaged or
// hostile one (deps bytes that do not match the manifest, a launch.conf without KILN_DEPS_DIR
// or with one that leaves /app) is refused with a KilnError that says what and how to fix it,
// and nothing of the crafted partition is written outside the dependency's own directory.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { KilnError } from "../../src/errors.js";
import { run } from "../../src/exec.js";
import { sha256File } from "../../src/fsutil.js";
import type { StoredImage } from "../../src/image/store.js";
import { reuseAppLayer } from "../../src/rebake/app-layer.js";

const BLOCK = 4096;

/** A raw disk of [app EROFS][deps EROFS] and the manifest fields reuseAppLayer reads. */
async function craftImage(launchConf: string, opts: { damageDeps?: boolean } = {}): Promise<{ image: StoredImage; scratch: string }> {
  const work = mkdtempSync(path.join(os.tmpdir(), "kiln-rebake-deps-unit-"));
  const appTree = path.join(work, "app-tree");
  mkdirSync(path.join(appTree, "kiln"), { recursive: true });
  mkdirSync(path.join(appTree, "app", "node_modules"), { recursive: true });
  writeFileSync(path.join(appTree, "kiln", "launch.conf"), launchConf);
  writeFileSync(path.join(appTree, "app", "server.js"), "require('kiln-greeter');\n");
  const depsTree = path.join(work, "deps-tree");
  mkdirSync(path.join(depsTree, "kiln-greeter"), { recursive: true });
  writeFileSync(path.join(depsTree, "kiln-greeter", "package.json"), '{"name":"kiln-greeter","version":"1.3.0"}\n');
  // A crafted partition would like this file to land next to the rebake's own scratch files.
  writeFileSync(path.join(depsTree, "planted-by-deps"), "x\n");
  const appFs = path.join(work, "app.erofs");
  const depsFs = path.join(work, "deps.erofs");
  await run(["mkfs.erofs", "-T0", appFs, appTree]);
  await run(["mkfs.erofs", "-T0", depsFs, depsTree]);
  const app = readFileSync(appFs);
  const deps = readFileSync(depsFs);
  const depsOffset = Math.ceil(app.length / BLOCK) * BLOCK;
  const disk = Buffer.alloc(depsOffset + deps.length);
  app.copy(disk, 0);
  deps.copy(disk, depsOffset);
  if (opts.damageDeps) disk[depsOffset + deps.length - 1]! ^= 0xff;
  writeFileSync(path.join(work, "disk.raw"), disk);
  const manifest = {
    name: "crafted",
    version: "1",
    port: 8080,
    healthcheck: { path: "/" },
    env: {},
    cmd: ["node", "server.js"],
    sizes: { app: app.length },
    layout: {
      partitions: [
        { name: "app", number: 3, offsetBytes: 0, contentBytes: app.length },
        { name: "deps", number: 4, offsetBytes: depsOffset, contentBytes: deps.length },
      ],
    },
    layers: [
      { name: "app", sha256: await sha256File(appFs), bytes: app.length },
      { name: "deps", sha256: await sha256File(depsFs), bytes: deps.length },
    ],
  };
  const image = { ref: "crafted:1", digest: "sha256:0", dir: work, disk: path.join(work, "disk.raw"), manifest } as unknown as StoredImage;
  // The rebake's scratch directory (rebake makes it before reusing the layers).
  const scratch = path.join(work, "scratch");
  mkdirSync(scratch);
  return { image, scratch };
}

async function refusal(promise: Promise<unknown>): Promise<KilnError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(KilnError);
  return error as KilnError;
}

describe("rebake: reusing a stored image's dependency partition", () => {
  it("reuses a good one: the deps are unpacked where the bake expects them, named like their mount point", async () => {
    const { image, scratch } = await craftImage("KILN_DEPS_DIR='/app/node_modules'\n");
    const reused = await reuseAppLayer(image, scratch);
    const spec = { port: 8080, healthcheck: { path: "/" }, env: {} } as unknown as Parameters<typeof reused.stage>[0];
    // The reused layer ignores the bake context (nothing is staged again).
    const ctx = {} as Parameters<typeof reused.stage>[1];
    const staged = await reused.stage(spec, ctx);
    expect(staged.deps?.imageDir).toBe("/app/node_modules");
    expect(path.basename(staged.deps!.hostDir)).toBe("node_modules");
    expect(readFileSync(path.join(staged.deps!.hostDir, "kiln-greeter", "package.json"), "utf8")).toContain("1.3.0");
    const layer = await reused.layer(ctx);
    expect(layer.deps?.sha256).toBe(image.manifest.layers.find((l) => l.name === "deps")?.sha256);
  });

  it("refuses a dependency partition whose bytes do not match the manifest: damaged, kiln rm", async () => {
    const { image, scratch } = await craftImage("KILN_DEPS_DIR='/app/node_modules'\n", { damageDeps: true });
    const error = await refusal(reuseAppLayer(image, scratch));
    expect(error.message).toMatch(/dependency partition of crafted:1 does not match its manifest/);
    expect(error.hint).toMatch(/damaged.*kiln rm/);
  });

  it("refuses an app layer that does not say where the dependency partition is mounted", async () => {
    const { image, scratch } = await craftImage("KILN_SECCOMP=on\n");
    const error = await refusal(reuseAppLayer(image, scratch));
    expect(error.message).toMatch(/crafted:1 has a dependency partition but its app layer does not say where it is mounted/);
    expect(error.hint).toMatch(/kiln rm/);
  });

  for (const dir of [
    "/app/..",
    "/app/.",
    "/app",
    "/etc",
    "/app/../etc",
    "/app/node_modules/../../etc",
    "/app/./node_modules",
    "/app/node_modules/",
    "/app//x",
  ]) {
    it(`refuses KILN_DEPS_DIR='${dir}' (not a plain directory under /app) and writes nothing of it`, async () => {
      const { image, scratch } = await craftImage(`KILN_DEPS_DIR='${dir}'\n`);
      const error = await refusal(reuseAppLayer(image, scratch));
      expect(error.message).toContain(`KILN_DEPS_DIR ${dir}, which is not a plain directory under /app`);
      expect(error.hint).toMatch(/kiln rm/);
      expect(existsSync(path.join(scratch, "planted-by-deps"))).toBe(false);
      expect(existsSync(path.join(scratch, "deps-root"))).toBe(false);
    });
  }
});
