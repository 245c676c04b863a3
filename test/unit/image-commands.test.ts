/**
 * Issue 18, items 3 and 8, through the command line (in-process, temp KILN_HOME, fake images):
 * `kiln rm` refuses an image a local environment runs (exit 2, environment named, --force warns),
 * `kiln images` says where each image is live and `--all` shows the unnamed ones, `kiln prune`
 * reports sizes and a total, `--dry-run` and `--json`.
 */
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.js";
import { kilnHome } from "../../src/home.js";
import type { ImageManifest } from "../../src/image/manifest.js";
import { ImageStore } from "../../src/image/store.js";
import { writeState } from "../../src/providers/local/state.js";

const A = `sha256:${"a1".repeat(32)}`;
const B = `sha256:${"b2".repeat(32)}`;
const C = `sha256:${"c3".repeat(32)}`;

let base: string;
let out: string;
let err: string;
const writes = { stdout: process.stdout.write.bind(process.stdout), stderr: process.stderr.write.bind(process.stderr) };
const originalHome = process.env.KILN_HOME;

beforeEach(async () => {
  base = await mkdtemp(path.join(os.tmpdir(), "kiln-image-cli-"));
  process.env.KILN_HOME = base;
  out = "";
  err = "";
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += chunk.toString();
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    err += chunk.toString();
    return true;
  }) as typeof process.stderr.write;
  process.exitCode = undefined;
});

afterEach(async () => {
  process.stdout.write = writes.stdout;
  process.stderr.write = writes.stderr;
  if (originalHome === undefined) delete process.env.KILN_HOME;
  else process.env.KILN_HOME = originalHome;
  await rm(base, { recursive: true, force: true });
});

async function put(ref: string, digest: string, bytes: number): Promise<void> {
  const home = kilnHome({ KILN_HOME: base });
  const [name, version] = ref.split(":") as [string, string];
  const dir = path.join(home.tmp, `stage-${digest.slice(7, 15)}-${version}`);
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, "disk.raw"), Buffer.alloc(bytes, 1));
  const manifest = {
    name,
    version,
    digest,
    baker: "native",
    bakedAt: "2026-11-01T10:00:00.000Z",
    sizes: { rawDisk: bytes, allocated: bytes },
  } as unknown as ImageManifest;
  await new ImageStore(home).commit(dir, manifest);
}

/** dev runs A; hello:1.0 was rebaked from C to B, so C has no name; B names nothing in dev. */
async function scene(): Promise<void> {
  await put("hello:0.9", A, 8192);
  await put("hello:1.0", C, 16384);
  await put("hello:1.0", B, 4096);
  await writeState(path.join(base, "envs", "hello", "dev"), {
    version: 1,
    releases: [{ id: "r-7", image: { ref: "hello:0.9", digest: A }, desired: 2, instances: [], serving: true }],
    history: [],
  });
}

describe("kiln rm / images / prune", () => {
  it("rm refuses an image live in a local environment: exit 2, the environment named, nothing removed", async () => {
    await scene();
    expect(await main(["node", "kiln", "rm", "hello:0.9"])).toBe(2);
    expect(err).toMatch(/hello:0\.9 \(sha256:a1a1a1a1a1a1\) is live in hello\/dev \(release r-7\)/);
    expect(err).toMatch(/hint: .*--force/);
    expect(await readdir(path.join(base, "images"))).toContain(A.slice(7));

    err = "";
    expect(await main(["node", "kiln", "rm", "hello:0.9", "--force"])).toBe(0);
    expect(err).toMatch(/warning: removed an image that is live in hello\/dev/);
    expect(out).toMatch(/removed hello:0\.9 \(sha256:a1a1a1a1a1a1\)/);
    expect(await readdir(path.join(base, "images"))).not.toContain(A.slice(7));
  });

  it("images shows where each image is live; --all adds the unnamed ones", async () => {
    await scene();
    expect(await main(["node", "kiln", "images"])).toBe(0);
    expect(out).toMatch(/hello:0\.9\s+sha256:a1a1a1a1a1a1\s+\S+ KiB\s+2026-11-01T10:00:00\.000Z\s+hello\/dev\n/);
    expect(out).toMatch(/hello:1\.0\s+sha256:b2b2b2b2b2b2 .* -\n/);
    expect(out).not.toMatch(/c3c3/);
    expect(out).toMatch(/1 more without a name/);
    out = "";
    expect(await main(["node", "kiln", "images", "--all", "--json"])).toBe(0);
    const rows = JSON.parse(out) as { ref: string | null; digest: string; bakedAs: string; usedBy: { env: string; role: string }[] }[];
    expect(rows.map((r) => [r.ref, r.digest])).toEqual([
      ["hello:0.9", A],
      ["hello:1.0", B],
      [null, C],
    ]);
    expect(rows[0]!.usedBy).toEqual([{ app: "hello", env: "dev", release: "r-7", role: "live" }]);
    expect(rows[2]!.bakedAs).toBe("hello:1.0");
  });

  it("prune --dry-run lists sizes and the total and removes nothing; prune --json removes exactly that", async () => {
    await scene();
    expect(await main(["node", "kiln", "prune", "--dry-run"])).toBe(0);
    // The disk (16 KiB) plus the manifest and the directory, as allocated on disk.
    const size = /would remove sha256:c3c3c3c3c3c3\s+hello:1\.0\s+(\d+\.\d KiB)/.exec(out)?.[1];
    expect(Number.parseFloat(size ?? "0")).toBeGreaterThanOrEqual(16);
    expect(out).toContain(`would free ${size} in 1 image(s)`);
    expect(await readdir(path.join(base, "images"))).toContain(C.slice(7));
    out = "";
    expect(await main(["node", "kiln", "prune", "--json"])).toBe(0);
    const result = JSON.parse(out) as { removed: { digest: string; bytes: number }[]; bytes: number };
    expect(result.removed.map((r) => r.digest)).toEqual([C]);
    expect(result.bytes).toBe(result.removed[0]!.bytes);
    expect((await readdir(path.join(base, "images"))).sort()).toEqual([A.slice(7), B.slice(7)].sort());
  });

  it("inspect and rm take a short digest; an ambiguous one lists the candidates", async () => {
    await scene();
    await put("other:1.0", `sha256:b2b2${"0".repeat(60)}`, 1024);
    expect(await main(["node", "kiln", "rm", "b2b2"])).toBe(2);
    expect(err).toMatch(/ambiguous[\s\S]*sha256:b2b200000000 \(other:1\.0\)[\s\S]*sha256:b2b2b2b2b2b2 \(hello:1\.0\)/);
    expect(await main(["node", "kiln", "rm", "sha256:b2b2b"])).toBe(0);
    expect(out).toMatch(/removed hello:1\.0 \(sha256:b2b2b2b2b2b2\)/);
  });
});
