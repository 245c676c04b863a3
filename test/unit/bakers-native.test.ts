// The native baker's tarball input without processes: recognising tar and tar.gz, names from
// file names, paths that would escape the app directory, and extraction (built with tar-stream
// here): modes normalised, symlinks and hard links kept, one top-level directory stripped.
import { lstat, mkdtemp, readFile, readlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { pack } from "tar-stream";
import { describe, expect, it } from "vitest";
import { extractTarball, isTarball, safeEntryPath, tarballBaseName } from "../../src/archive/tarball.js";
import { baker } from "../../bakers/native/index.js";
import { InputError } from "../../src/errors.js";

interface TarEntry {
  name: string;
  type?: "file" | "directory" | "symlink" | "link";
  data?: string;
  mode?: number;
  linkname?: string;
}

async function makeTar(entries: readonly TarEntry[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  p.on("data", (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<void>((resolve) => p.on("end", () => resolve()));
  for (const e of entries) {
    const type = e.type ?? "file";
    await new Promise<void>((resolve, reject) =>
      p.entry(
        { name: e.name, type, mode: e.mode ?? (type === "directory" ? 0o755 : 0o644), ...(e.linkname ? { linkname: e.linkname } : {}) },
        type === "file" ? (e.data ?? "") : "",
        (err) => (err ? reject(err) : resolve()),
      ),
    );
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

async function tempFile(name: string, bytes: Buffer): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "kiln-tar-"));
  const file = path.join(dir, name);
  await writeFile(file, bytes);
  return file;
}

describe("tarball helpers", () => {
  it("recognises gzip and ustar, nothing else", async () => {
    const tar = await makeTar([{ name: "a.txt", data: "a" }]);
    expect(isTarball(tar)).toBe("tar");
    expect(isTarball(gzipSync(tar))).toBe("tar.gz");
    expect(isTarball(Buffer.from("\x7fELF\x02\x01\x01"))).toBeUndefined();
  });

  it("names and safe paths", () => {
    expect(tarballBaseName("/x/myapp-1.0.tar.gz")).toBe("myapp-1.0");
    expect(tarballBaseName("srv.tgz")).toBe("srv");
    expect(tarballBaseName("srv.tar")).toBe("srv");
    expect(safeEntryPath("./bin/server")).toBe("bin/server");
    expect(safeEntryPath("app//static/")).toBe("app/static");
    expect(safeEntryPath("../etc/passwd")).toBeUndefined();
    expect(safeEntryPath("a/../../b")).toBeUndefined();
    expect(safeEntryPath("/etc/passwd")).toBeUndefined();
    expect(safeEntryPath("./")).toBeUndefined();
  });
});

describe("extractTarball", () => {
  it("strips one top-level directory, normalises modes, keeps symlinks and hard links", async () => {
    const tar = await makeTar([
      { name: "./", type: "directory" },
      { name: "./myapp-1.0/", type: "directory" },
      { name: "./myapp-1.0/bin/server", data: "\x7fELF", mode: 0o700 },
      { name: "./myapp-1.0/static/index.html", data: "<h1>hi</h1>", mode: 0o600 },
      { name: "./myapp-1.0/current", type: "symlink", linkname: "static" },
      { name: "./myapp-1.0/bin/server2", type: "link", linkname: "./myapp-1.0/bin/server" },
    ]);
    const file = await tempFile("myapp-1.0.tar.gz", gzipSync(tar));
    const out = await extractTarball(file, path.join(path.dirname(file), "out"));
    expect(path.basename(out)).toBe("myapp-1.0");
    expect((await lstat(path.join(out, "bin/server"))).mode & 0o777).toBe(0o755);
    expect((await lstat(path.join(out, "static/index.html"))).mode & 0o777).toBe(0o644);
    expect(await readFile(path.join(out, "static/index.html"), "utf8")).toBe("<h1>hi</h1>");
    expect(await readlink(path.join(out, "current"))).toBe("static");
    expect(await readFile(path.join(out, "bin/server2"), "utf8")).toBe("\x7fELF");
  });

  it("keeps the root when the tarball has several top-level entries", async () => {
    const file = await tempFile(
      "flat.tar",
      await makeTar([
        { name: "server", data: "x", mode: 0o755 },
        { name: "data/a.txt", data: "a" },
      ]),
    );
    const out = await extractTarball(file, path.join(path.dirname(file), "out"));
    expect(out).toBe(path.join(path.dirname(file), "out"));
    expect(await readFile(path.join(out, "data/a.txt"), "utf8")).toBe("a");
  });

  it("refuses entries that would land outside the app directory", async () => {
    const file = await tempFile(
      "evil.tar",
      await makeTar([
        { name: "ok.txt", data: "ok" },
        { name: "../../escape.txt", data: "no" },
      ]),
    );
    await expect(extractTarball(file, path.join(path.dirname(file), "out"))).rejects.toThrow(InputError);
    await expect(extractTarball(file, path.join(path.dirname(file), "out2"))).rejects.toThrow(
      /entries kiln refuses:\n {2}- \.\.\/\.\.\/escape\.txt would land outside the app directory/,
    );
  });
});

describe("native detection of a tarball", () => {
  it("names the app after the tarball and leaves cmd to kiln.yml or --cmd", async () => {
    const file = await tempFile("probe-1.0.tar.gz", gzipSync(await makeTar([{ name: "probe/bin/server", data: "x", mode: 0o755 }])));
    expect(await baker.detect({ dir: path.dirname(file), file })).toEqual({ name: "probe-1.0" });
  });
});
