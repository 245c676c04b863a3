// Issue 12, hole 1: a tarball must not write, overwrite or read anything outside its extraction
// directory through links it carries. Each archive is extracted into base/out next to
// base/canary, which holds a 0600 "host" file; the canary must be untouched and nothing
// from it may reach the extracted tree.
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, readlink, stat, writeFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { extractTarball } from "../../src/archive/tarball.js";
import { InputError } from "../../src/errors.js";
import { makeTar, type TarEntry } from "./helpers/tar-builder.js";

let base: string;
let canary: string;
let out: string;
const SECRET = "root:$6$secret-hash:19000:0:99999:7:::\n";

beforeEach(async () => {
  base = await mkdtemp(path.join(os.tmpdir(), "kiln-tar-hole-"));
  canary = path.join(base, "canary");
  out = path.join(base, "out");
  await mkdir(canary);
  await writeFile(path.join(canary, "shadow"), SECRET);
  await chmod(path.join(canary, "shadow"), 0o600);
});

afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

async function extract(entries: readonly TarEntry[]): Promise<unknown> {
  const file = path.join(base, "app.tar");
  await writeFile(file, await makeTar(entries));
  return extractTarball(file, out).then(
    () => undefined,
    (error: unknown) => error,
  );
}

async function canaryIsIntact(): Promise<void> {
  expect((await readdir(canary)).sort()).toEqual(["shadow"]);
  expect(await readFile(path.join(canary, "shadow"), "utf8")).toBe(SECRET);
  expect((await stat(path.join(canary, "shadow"))).mode & 0o777).toBe(0o600);
}

/** Every regular file in the extracted tree, so a copied host secret shows up wherever it landed. */
async function extractedContents(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const full = path.join(dir, name);
    const info = await lstat(full);
    if (info.isDirectory()) found.push(...(await extractedContents(full)));
    else if (info.isFile()) found.push(await readFile(full, "utf8"));
  }
  return found;
}

describe("tarball links cannot reach outside the extraction directory", () => {
  it("refuses a file written through an absolute symlink to a host directory", async () => {
    const error = await extract([
      { name: "evil", type: "symlink", linkname: canary },
      { name: "evil/pwned.txt", data: "pwned" },
    ]);
    expect(error).toBeInstanceOf(InputError);
    expect((error as Error).message).toMatch(/evil/);
    await canaryIsIntact();
  });

  it("refuses a file written through a relative symlink that climbs out", async () => {
    const error = await extract([
      { name: "up", type: "symlink", linkname: "../canary" },
      { name: "up/pwned.txt", data: "pwned" },
    ]);
    expect(error).toBeInstanceOf(InputError);
    await canaryIsIntact();
  });

  it("never overwrites the host file a symlink entry points to with a later file of the same name", async () => {
    const error = await extract([
      { name: "victim", type: "symlink", linkname: path.join(canary, "shadow") },
      { name: "victim", data: "owned\n" },
    ]);
    expect(error).toBeInstanceOf(InputError);
    expect((error as Error).message).toMatch(/victim/);
    await canaryIsIntact();
  });

  it("never copies a host file into the tree through a hard link that goes through a symlink to /", async () => {
    const error = await extract([
      { name: "root", type: "symlink", linkname: "/" },
      { name: "copied", type: "link", linkname: `root${path.join(canary, "shadow")}` },
    ]);
    expect(error).toBeInstanceOf(InputError);
    expect(await extractedContents(out)).not.toContain(SECRET);
    await canaryIsIntact();
  });

  it("never copies a host file into the tree through a hard link that goes through a ../ symlink", async () => {
    const error = await extract([
      { name: "s", type: "symlink", linkname: "../canary" },
      { name: "copied", type: "link", linkname: "s/shadow" },
    ]);
    expect(error).toBeInstanceOf(InputError);
    expect(await extractedContents(out)).not.toContain(SECRET);
    await canaryIsIntact();
  });

  it("refuses a chain of links inside the tree that ends outside it (d -> ., e -> d/..)", async () => {
    const error = await extract([
      { name: "d", type: "symlink", linkname: "." },
      { name: "e", type: "symlink", linkname: "d/.." },
      { name: "f", data: "x" },
    ]);
    expect(error).toBeInstanceOf(InputError);
    expect((error as Error).message).toMatch(/\be\b/);
  });

  it("refuses a hard link to anything but a regular file extracted earlier from the same archive", async () => {
    const error = await extract([
      { name: "later", type: "link", linkname: "not-yet" },
      { name: "not-yet", data: "x" },
    ]);
    expect(error).toBeInstanceOf(InputError);
    expect((error as Error).message).toMatch(/later/);
  });

  it("keeps links that stay inside the tree and hard links to earlier files; later files replace earlier ones", async () => {
    const error = await extract([
      { name: "app/bin/server", data: "ELF", mode: 0o755 },
      { name: "app/static/index.html", data: "old" },
      { name: "app/static/index.html", data: "new" },
      { name: "app/current", type: "symlink", linkname: "static" },
      { name: "app/lib/up", type: "symlink", linkname: "../bin/server" },
      { name: "app/bin/server2", type: "link", linkname: "app/bin/server" },
    ]);
    expect(error).toBeUndefined();
    expect(await readFile(path.join(out, "app/static/index.html"), "utf8")).toBe("new");
    expect(await readlink(path.join(out, "app/current"))).toBe("static");
    expect(await readlink(path.join(out, "app/lib/up"))).toBe("../bin/server");
    expect(await readFile(path.join(out, "app/bin/server2"), "utf8")).toBe("ELF");
    expect((await stat(path.join(out, "app/bin/server2"))).mode & 0o777).toBe(0o755);
  });

  it("drops setuid, setgid, sticky and world-writable bits", async () => {
    const error = await extract([
      { name: "d/", type: "directory", mode: 0o1777 },
      { name: "d/suid", data: "x", mode: 0o4777 },
      { name: "d/plain", data: "x", mode: 0o666 },
    ]);
    expect(error).toBeUndefined();
    expect((await stat(path.join(out, "d"))).mode & 0o7777).toBe(0o755);
    expect((await stat(path.join(out, "d/suid"))).mode & 0o7777).toBe(0o755);
    expect((await stat(path.join(out, "d/plain"))).mode & 0o7777).toBe(0o644);
  });

  it("refuses archives past the entry and size limits with a clear error", async () => {
    const file = path.join(base, "many.tar");
    await writeFile(file, await makeTar(Array.from({ length: 12 }, (_, i) => ({ name: `f${i}`, data: "0123456789" }))));
    await expect(extractTarball(file, path.join(base, "o1"), { maxEntries: 10 })).rejects.toThrow(/more than 10 entries/);
    await expect(extractTarball(file, path.join(base, "o2"), { maxBytes: 50 })).rejects.toThrow(/more than 50 bytes/);
    // Hard links count as the copies they become.
    await writeFile(
      file,
      await makeTar([
        { name: "big", data: "x".repeat(40) },
        { name: "l1", type: "link", linkname: "big" },
      ]),
    );
    await expect(extractTarball(file, path.join(base, "o3"), { maxBytes: 50 })).rejects.toBeInstanceOf(InputError);
  });
});
