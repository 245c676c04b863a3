// The confinement helpers every untrusted path goes through: names with ".." are refused, and
// symlinks are resolved beneath a root (app trees) or inside it as "/" (package trees).
import { mkdir, mkdtemp, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { confinedPath, lexicalTarget, resolveBeneath } from "../../src/confine.js";
import { InputError } from "../../src/errors.js";

describe("confinedPath", () => {
  it("joins plain names under the root and refuses climbing ones", () => {
    expect(confinedPath("/r", "/lib64/ld.so")).toBe("/r/lib64/ld.so");
    expect(confinedPath("/r", "a/./b//c")).toBe("/r/a/b/c");
    expect(confinedPath("/r", "")).toBe("/r");
    expect(() => confinedPath("/r", "a/../../etc/shadow")).toThrow(InputError);
    expect(() => confinedPath("/r", "a\0b")).toThrow(InputError);
  });
});

describe("resolveBeneath", () => {
  it("follows links inside, refuses links out, treats the root as / when asked", async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), "kiln-confine-"));
    await mkdir(path.join(root, "lib", "x"), { recursive: true });
    await writeFile(path.join(root, "lib", "x", "libz.so.1.2"), "z");
    await symlink("libz.so.1.2", path.join(root, "lib", "x", "libz.so.1"));
    await symlink("/lib/x", path.join(root, "abs"));
    await symlink(".", path.join(root, "dot"));
    await symlink("../../../..", path.join(root, "lib", "up"));
    await symlink("loop", path.join(root, "loop"));
    expect(await resolveBeneath(root, "lib/x/libz.so.1")).toEqual({ rel: "lib/x/libz.so.1.2" });
    expect(await resolveBeneath(root, "abs/libz.so.1")).toEqual({ escape: "outside" });
    expect(await resolveBeneath(root, "abs/libz.so.1", { inRoot: true })).toEqual({ rel: "lib/x/libz.so.1.2" });
    expect(await resolveBeneath(root, "dot/..")).toEqual({ escape: "outside" });
    expect(await resolveBeneath(root, "lib/up/etc/shadow", { inRoot: true })).toEqual({ rel: "etc/shadow" });
    expect(await resolveBeneath(root, "loop")).toEqual({ escape: "loop" });
    expect(await resolveBeneath(root, "missing/../lib")).toEqual({ rel: "lib" });
  });

  it("reads link targets lexically for archive entries", () => {
    expect(lexicalTarget("a/b/l", "../c")).toBe("a/c");
    expect(lexicalTarget("a/l", "../../c")).toBeUndefined();
    expect(lexicalTarget("l", "/etc")).toBeUndefined();
  });
});
