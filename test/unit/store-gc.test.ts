/**
 * Issue 18, items 3 and 8: the local store knows what environments use. `rm` refuses an image a
 * local environment runs or keeps for rollback; a rebake that moves a ref says so; unreferenced
 * images are listed and pruned (never one in use); short digests resolve like git's.
 */
import { mkdtempSync } from "node:fs";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { HistoryEntry } from "../../src/deploy/types.js";
import { InputError, NotFoundError } from "../../src/errors.js";
import { type KilnHome, kilnHome } from "../../src/home.js";
import type { ImageManifest } from "../../src/image/manifest.js";
import { ImageStore } from "../../src/image/store.js";
import { writeState } from "../../src/providers/local/state.js";

const digestOf = (hex: string) => `sha256:${hex.padEnd(64, "0")}`;

function freshHome(): KilnHome {
  return kilnHome({ KILN_HOME: mkdtempSync(path.join(os.tmpdir(), "kiln-store-gc-")) });
}

let staged = 0;
/** Commits a fake image of `bytes` bytes under name:version with the given digest. */
async function put(home: KilnHome, ref: string, digest: string, bytes = 1000) {
  const [name, version] = ref.split(":") as [string, string];
  const dir = path.join(home.tmp, `stage-${staged++}`);
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, "disk.raw"), Buffer.alloc(bytes, 7));
  const manifest = { name, version, digest, bakedAt: new Date().toISOString() } as unknown as ImageManifest;
  return new ImageStore(home).commit(dir, manifest);
}

/** A local environment's state: `running` digests as releases, `history` as live/replaced entries. */
async function envState(home: KilnHome, app: string, env: string, running: string[], history: string[] = []) {
  const image = (digest: string) => ({ ref: `${app}:x`, digest });
  await writeState(path.join(home.root, "envs", app, env), {
    version: 1,
    releases: running.map((digest, i) => ({ id: `r-${env}-${i}`, image: image(digest), desired: 1, instances: [], serving: i === 0 })),
    history: history.map(
      (digest, i): HistoryEntry => ({
        release: `h-${env}-${i}`,
        image: image(digest),
        result: "replaced",
        at: `2026-01-0${i + 1}T00:00:00Z`,
      }),
    ),
  });
}

/** Imported when used, so the tests of the rest of the store run even where prune.ts is absent. */
async function pruneImages(home: KilnHome, opts: { dryRun: boolean }) {
  return (await import("../../src/image/prune.js")).pruneImages(home, opts);
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    () => {
      throw new Error("expected a rejection");
    },
    (error: Error) => error,
  );
}

describe("kiln rm (item 3)", () => {
  it("refuses an image a local environment runs, naming the environment and release; the image stays", async () => {
    const home = freshHome();
    const a = digestOf("aaaa1111");
    await put(home, "app:1.0", a);
    await envState(home, "app", "dev", [a]);
    const error = await rejection(new ImageStore(home).remove("app:1.0"));
    expect(error).toBeInstanceOf(InputError);
    expect(error.message).toMatch(/app:1\.0.*live in app\/dev \(release r-dev-0\)/);
    expect((error as InputError).hint).toMatch(/--force/);
    expect((await new ImageStore(home).resolve("app:1.0")).digest).toBe(a);
  });

  it("refuses an image kept as a rollback target in an environment's history", async () => {
    const home = freshHome();
    const [a, b] = [digestOf("aaaa1111"), digestOf("bbbb2222")];
    await put(home, "app:1.0", a);
    await put(home, "app:2.0", b);
    await envState(home, "app", "dev", [b], [a, b]);
    const error = await rejection(new ImageStore(home).remove("app:1.0"));
    expect(error.message).toMatch(/rollback target of app\/dev \(release h-dev-0\)/);
  });

  it("--force removes it anyway and reports what it breaks", async () => {
    const home = freshHome();
    const a = digestOf("aaaa1111");
    await put(home, "app:1.0", a);
    await envState(home, "app", "dev", [a]);
    const removed = await new ImageStore(home).remove("app:1.0", { force: true });
    expect(removed.imageRemoved).toBe(true);
    expect(removed.usedBy.map((u) => `${u.role} ${u.app}/${u.env}`)).toEqual(["live app/dev"]);
    expect(await readdir(home.images)).toEqual([]);
  });

  it("removing one of two refs of a running image is fine: the image stays", async () => {
    const home = freshHome();
    const a = digestOf("aaaa1111");
    await put(home, "app:1.0", a);
    await put(home, "app:1.0-copy", a);
    await envState(home, "app", "dev", [a]);
    const removed = await new ImageStore(home).remove("app:1.0");
    expect(removed).toMatchObject({ imageRemoved: false, refs: ["app:1.0"] });
  });

  it("rm by digest removes that image and the refs pointing at it, never the ref that moved on", async () => {
    const home = freshHome();
    const [a, b] = [digestOf("aaaa1111"), digestOf("bbbb2222")];
    await put(home, "app:1.0", a);
    await put(home, "app:1.0", b); // the ref moves to b; a is unreferenced
    const removed = await new ImageStore(home).remove("aaaa11");
    expect(removed).toMatchObject({ digest: a, imageRemoved: true, refs: [] });
    expect((await new ImageStore(home).resolve("app:1.0")).digest).toBe(b);
  });

  it("a missing image names its digest once and does not promise that a bake brings it back", async () => {
    const home = freshHome();
    const a = digestOf("aaaa1111");
    await mkdir(home.images, { recursive: true });
    const error = await rejection(new ImageStore(home).resolve(a));
    expect(error).toBeInstanceOf(NotFoundError);
    expect(error.message.split(a).length - 1).toBe(1);
    expect((error as NotFoundError).hint).not.toMatch(/^bake it again$/);
    expect((error as NotFoundError).hint).toMatch(/byte-identical/);
    expect((error as NotFoundError).hint).toMatch(/kiln images/);
  });
});

describe("ref moves and short digests (item 8)", () => {
  it("commit reports the digest a ref moved away from", async () => {
    const home = freshHome();
    const [a, b] = [digestOf("aaaa1111"), digestOf("bbbb2222")];
    expect((await put(home, "app:1.0", a)).movedFrom).toBeUndefined();
    expect((await put(home, "app:1.0", a)).movedFrom).toBeUndefined();
    expect((await put(home, "app:1.0", b)).movedFrom).toBe(a);
  });

  it("resolves a unique prefix of at least 4 hex characters, with or without sha256:", async () => {
    const home = freshHome();
    const [a, b] = [digestOf("abcd1111"), digestOf("abcd2222")];
    await put(home, "app:1.0", a);
    await put(home, "app:2.0", b);
    const store = new ImageStore(home);
    expect((await store.resolve("sha256:abcd1")).digest).toBe(a);
    expect((await store.resolve("abcd2")).digest).toBe(b);
    expect((await store.resolve(a)).digest).toBe(a);
    const ambiguous = await rejection(store.resolve("abcd"));
    expect(ambiguous).toBeInstanceOf(InputError);
    expect(ambiguous.message).toMatch(/ambiguous/);
    expect(ambiguous.message).toContain("sha256:abcd11110000 (app:1.0)");
    expect(ambiguous.message).toContain("sha256:abcd22220000 (app:2.0)");
    expect(await rejection(store.resolve("sha256:abc"))).toBeInstanceOf(InputError);
    expect((await rejection(store.resolve("sha256:abcx"))).message).toMatch(/not a digest/);
    expect((await rejection(store.resolve("sha256:../../etc"))).message).toMatch(/not a digest/);
    expect(await rejection(store.resolve("sha256:ffff"))).toBeInstanceOf(NotFoundError);
  });

  it("a name that is also hex is a name first", async () => {
    const home = freshHome();
    await put(home, "app:1.0", digestOf("cafe1111"));
    await put(home, "cafe:1.0", digestOf("bbbb2222"));
    expect((await new ImageStore(home).resolve("cafe")).ref).toBe("cafe:1.0");
  });
});

describe("images --all and prune (item 8)", () => {
  async function scene() {
    const home = freshHome();
    const d = {
      tagged: digestOf("1111"),
      live: digestOf("2222"),
      rollback: digestOf("3333"),
      old: digestOf("4444"),
      older: digestOf("5555"),
      tooOld: digestOf("6666"),
    };
    for (const [i, key] of (["older", "old", "tooOld", "rollback", "live"] as const).entries())
      await put(home, "app:1.0", d[key], 1000 * (i + 1));
    await put(home, "app:2.0", d.tagged);
    // dev runs `live`; its history went through tooOld, older, old, rollback, live: the three newest earlier ones are kept.
    await envState(home, "app", "dev", [d.live], [d.tooOld, d.older, d.old, d.rollback, d.live]);
    // One more image that no ref, release or history entry names.
    const free = digestOf("7777");
    await put(home, "app:3.0", free, 4096);
    await put(home, "app:3.0", d.tagged); // app:3.0 moves away: `free` is unreferenced and unused
    return { home, d: { ...d, free } };
  }

  it("listAll shows unreferenced images with where they are used", async () => {
    const { home, d } = await scene();
    const all = await new ImageStore(home).listAll();
    const byDigest = new Map(all.map((e) => [e.digest, e]));
    expect(byDigest.get(d.tagged)?.refs).toEqual(["app:2.0", "app:3.0"]);
    expect(byDigest.get(d.free)?.refs).toEqual([]);
    expect(byDigest.get(d.live)?.refs).toEqual(["app:1.0"]);
    expect(byDigest.get(d.live)?.usedBy.map((u) => u.role)).toEqual(["live"]);
    expect(byDigest.get(d.rollback)?.usedBy.map((u) => u.role)).toEqual(["rollback"]);
    expect(byDigest.get(d.free)?.bakedAs).toBe("app:3.0");
    expect(byDigest.get(d.free)!.bytes).toBeGreaterThanOrEqual(4096);
  });

  it("--dry-run lists what prune would free and deletes nothing; prune then frees exactly that", async () => {
    const { home, d } = await scene();
    const before = (await readdir(home.images)).sort();
    const plan = await pruneImages(home, { dryRun: true });
    // kept: tagged (refs), live (dev runs it), rollback/old/older (dev's three newest earlier releases).
    expect(plan.removed.map((r) => r.digest).sort()).toEqual([d.free, d.tooOld].sort());
    expect(plan.bytes).toBe(plan.removed.reduce((n, r) => n + r.bytes, 0));
    expect(plan.bytes).toBeGreaterThanOrEqual(4096 + 3000);
    expect((await readdir(home.images)).sort()).toEqual(before);

    const done = await pruneImages(home, { dryRun: false });
    expect(done.removed.map((r) => r.digest).sort()).toEqual(plan.removed.map((r) => r.digest).sort());
    expect((await readdir(home.images)).sort()).toEqual(before.filter((h) => ![d.free, d.tooOld].includes(`sha256:${h}`)).sort());
    // What stays still resolves.
    for (const ref of ["app:1.0", "app:2.0", "app:3.0"]) await new ImageStore(home).resolve(ref);
    expect((await pruneImages(home, { dryRun: false })).removed).toEqual([]);
  });

  it("prune racing with commits of the digest it removes never leaves a ref without its image", async () => {
    const home = freshHome();
    const [a, b] = [digestOf("aaaa1111"), digestOf("bbbb2222")];
    for (let round = 0; round < 8; round++) {
      await put(home, "app:1.0", a);
      await put(home, "app:1.0", b); // a is unreferenced again
      await Promise.all([pruneImages(home, { dryRun: false }), put(home, `app:again-${round}`, a)]);
      const image = await new ImageStore(home).resolve(`app:again-${round}`);
      expect(await readFile(image.disk)).toHaveLength(1000);
      await new ImageStore(home).remove(`app:again-${round}`);
    }
  });
});
