/**
 * Issue 16: a warm bake does not re-prove what it proved before. A cached package file's
 * verification is kept while the file's identity is unchanged, and `dpkg -S` answers while the
 * host's dpkg database is unchanged; what is read back is checked, never simply trusted.
 */
import { appendFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AptSource } from "../../src/packages/apt.js";
import { recordVerified, verifiedUnchanged } from "../../src/packages/verified-record.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "kiln-verified-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("a verified record", () => {
  it("holds for the same file and facts only", async () => {
    const file = path.join(dir, "pkg.deb");
    const record = `${file}.verified`;
    await writeFile(file, "package bytes");
    const facts = { package: "libc6", version: "2.36-9", sha256: "a".repeat(64) };
    expect(await verifiedUnchanged(record, file, facts)).toBe(false);
    await recordVerified(record, file, facts);
    expect(await verifiedUnchanged(record, file, facts)).toBe(true);
    expect(await verifiedUnchanged(record, file, { ...facts, version: "2.36-10" })).toBe(false);
    expect(await verifiedUnchanged(record, file, { package: "libc6", version: "2.36-9" })).toBe(false);
    await appendFile(file, "tampered");
    expect(await verifiedUnchanged(record, file, facts)).toBe(false);
    await writeFile(record, "{not json");
    expect(await verifiedUnchanged(record, file, facts)).toBe(false);
  });
});

describe("dpkg -S answers kept while the dpkg database is unchanged", () => {
  const libc = "/usr/lib/x86_64-linux-gnu/libc.so.6";

  it("asks dpkg once, then answers from what it kept; answers kept for another database are not used", async () => {
    expect(await new AptSource(dir).ownerOf(libc)).toBe("libc6");
    const file = path.join(dir, "host-owners.json");
    const kept = JSON.parse(await readFile(file, "utf8")) as { database: string; owners: Record<string, string> };
    expect(kept.owners[libc]).toBe("libc6");
    // A kept answer is used as it is (shown by changing it) …
    await writeFile(file, JSON.stringify({ ...kept, owners: { [libc]: "libc6-kept" } }));
    expect(await new AptSource(dir).ownerOf(libc)).toBe("libc6-kept");
    // … unless it is not a package name, or the database it was kept for is not this one.
    await writeFile(file, JSON.stringify({ ...kept, owners: { [libc]: "../../etc" } }));
    expect(await new AptSource(dir).ownerOf(libc)).toBe("libc6");
    await writeFile(file, JSON.stringify({ database: "0:0:0:0:0 -", owners: { [libc]: "libc6-kept" } }));
    expect(await new AptSource(dir).ownerOf(libc)).toBe("libc6");
  });
});
