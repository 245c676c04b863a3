/**
 * Hole 6: everything under KILN_HOME that can hold values (-e values in user-data and the seed
 * drive, env baked into images, environment state) or logs (VM consoles) is private to its
 * owner — 0700 directories, 0600 files — whatever the umask, while a VM runs; and a KILN_HOME
 * written by an older kiln with the umask's modes is tightened on first use.
 */
import { mkdirSync, mkdtempSync, statSync, writeFileSync } from "node:fs";
import { mkdir, readdir, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kilnHome, openKilnHome } from "../../src/home.js";
import type { ImageManifest } from "../../src/image/manifest.js";
import { ImageStore, type StoredImage } from "../../src/image/store.js";
import { LocalProvider } from "../../src/providers/local/provider.js";
import { LocalVm } from "../../src/providers/qemu.js";
import type { LocalEnvironment } from "../../src/config/environments.js";

const mode = (p: string) => (statSync(p).mode & 0o777).toString(8);

/** Every path under `root` that others can read, search or write, as "path mode". */
async function openToOthers(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string) => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isSymbolicLink()) continue;
      if (statSync(full).mode & 0o077) out.push(`${path.relative(root, full)} ${mode(full)}`);
      if (entry.isDirectory()) await walk(full);
    }
  };
  if (statSync(root).mode & 0o077) out.push(`. ${mode(root)}`);
  await walk(root);
  return out;
}

function freshRoot(): string {
  return path.join(mkdtempSync(path.join(os.tmpdir(), "kiln-perm-")), "home");
}

let savedUmask = 0;
beforeAll(() => {
  savedUmask = process.umask(0o022);
});
afterAll(() => {
  process.umask(savedUmask);
});

describe("KILN_HOME permissions (umask 022)", () => {
  it("a new KILN_HOME is created 0700", () => {
    const root = freshRoot();
    openKilnHome({ KILN_HOME: root });
    expect(mode(root)).toBe("700");
  });

  it("tightens a KILN_HOME an older kiln left world-readable", async () => {
    const root = freshRoot();
    for (const dir of ["vms/ab12cd34", "envs/app/dev", "images/0123", "refs/app", "tmp", "cache/debs"])
      mkdirSync(path.join(root, dir), { recursive: true, mode: 0o755 });
    for (const file of [
      "vms/ab12cd34/user-data",
      "vms/ab12cd34/console.log",
      "vms/ab12cd34/seed.img",
      "envs/app/dev/state.json",
      "images/0123/disk.raw",
      "images/0123/manifest.json",
      "refs/app/1.0",
    ]) {
      writeFileSync(path.join(root, file), "SECRET=value\n", { mode: 0o644 });
    }
    openKilnHome({ KILN_HOME: root });
    expect(mode(root)).toBe("700");
    const left = (await openToOthers(root)).filter((p) => !p.startsWith("cache/debs"));
    expect(left).toEqual([]);
  });

  it("a running VM's directory, seed drive, user-data and console log are private", async () => {
    const home = kilnHome({ KILN_HOME: freshRoot() });
    const dir = mkdtempSync(path.join(os.tmpdir(), "kiln-perm-image-"));
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, "disk.raw"), Buffer.alloc(1024 * 1024));
    const image = {
      ref: "perm:1",
      digest: `sha256:${"0".repeat(64)}`,
      dir,
      disk: path.join(dir, "disk.raw"),
      manifest: { name: "perm", version: "1", digest: `sha256:${"0".repeat(64)}`, resources: { memoryMiB: 64, cpus: 1 } },
    } as unknown as StoredImage;
    const vm = await LocalVm.start({ image, home, firmware: "uefi", accelerator: "tcg", forwards: [], env: { API_TOKEN: "s3cret" } });
    try {
      expect(mode(home.root)).toBe("700");
      expect(mode(home.vms)).toBe("700");
      expect(mode(vm.dir)).toBe("700");
      for (const f of ["user-data", "meta-data", "seed.img", "console.log", "vm.json", "OVMF_VARS.fd"])
        expect(`${f} ${mode(path.join(vm.dir, f))}`).toBe(`${f} 600`);
    } finally {
      await vm.shutdown(0);
      await vm.cleanup();
    }
  }, 60_000);

  it("images, refs and a local environment's lock and state are private", async () => {
    const home = kilnHome({ KILN_HOME: freshRoot() });
    const staged = path.join(os.tmpdir(), `kiln-perm-staged-${process.pid}`);
    await mkdir(staged, { recursive: true });
    await writeFile(path.join(staged, "disk.raw"), "image with baked env");
    const digest = `sha256:${"1".repeat(64)}`;
    await new ImageStore(home).commit(staged, { name: "perm", version: "1.0", digest } as unknown as ImageManifest);
    const provider = new LocalProvider({ app: "perm", name: "dev" } as unknown as LocalEnvironment, home);
    const release = await provider.lock("test");
    await provider.record({ release: "r1", action: "promote", at: new Date().toISOString() } as never);
    try {
      expect(await openToOthers(home.root)).toEqual([]);
      expect(mode(path.join(provider.dir, "lock"))).toBe("600");
      expect(mode(path.join(provider.dir, "state.json"))).toBe("600");
      expect(mode(path.join(home.images, "1".repeat(64), "disk.raw"))).toBe("600");
    } finally {
      await release();
    }
  });
});
