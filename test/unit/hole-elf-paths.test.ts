// Issue 12, hole 4: names an ELF file carries (PT_INTERP, DT_NEEDED) and links inside a package
// tree must not climb out of the package tree or out of the image root. A fake libc6 tree sits
// at base/cache/unpacked/libc6 next to base/canary, which holds a 0600 ELF "host file".
import { chmod, mkdir, mkdtemp, readdir, stat, symlink, writeFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { BakeContext } from "../../src/bake/context.js";
import { collectLibraries, type ElfRoot } from "../../src/bake/libs.js";
import { placeFile } from "../../src/bake/system.js";
import type { Spec } from "../../src/config/types.js";
import { parseElf } from "../../src/elf/elf.js";
import { InputError } from "../../src/errors.js";
import { buildElf, ET } from "./helpers/elf-builder.js";

let base: string;
let tree: string;
let secret: string;

beforeEach(async () => {
  base = await mkdtemp(path.join(os.tmpdir(), "kiln-elf-hole-"));
  tree = path.join(base, "cache", "unpacked", "libc6");
  await mkdir(path.join(tree, "lib", "x86_64-linux-gnu"), { recursive: true });
  await mkdir(path.join(tree, "lib64"), { recursive: true });
  await mkdir(path.join(base, "canary"));
  secret = path.join(base, "canary", "secret");
  await writeFile(secret, buildElf({ type: ET.DYN, soname: "secret" }));
  await chmod(secret, 0o600);
});

afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

function fakeContext(): BakeContext {
  const libc6 = { name: "libc6", version: "2.36-9", source: "debian:bookworm/main", sha256: "a".repeat(64), role: "lib" as const };
  return {
    previousLock: { lockfileVersion: 1, packages: [libc6] },
    apt: { unpack: async () => tree, ownerOf: async () => undefined },
    used: [],
    frozen: false,
  } as unknown as BakeContext;
}

function program(spec: Parameters<typeof buildElf>[0]): ElfRoot {
  return { imagePath: "/app/server", hostPath: "/nonexistent", info: parseElf(buildElf({ type: ET.EXEC, ...spec }), "/app/server") };
}

async function outcome(root: ElfRoot): Promise<unknown> {
  return collectLibraries({ packages: [] } as unknown as Spec, [root], new Map(), fakeContext()).then(
    (files) => files,
    (error: unknown) => error,
  );
}

describe("ELF names stay inside their trees", () => {
  it("refuses a PT_INTERP that climbs out of the libc6 tree", async () => {
    const result = await outcome(program({ interpreter: "/lib64/../../../../canary/secret" }));
    expect(result).toBeInstanceOf(InputError);
    expect((result as Error).message).toMatch(/dynamic loader .*canary\/secret/);
  });

  it("refuses a DT_NEEDED name that climbs out of the package tree", async () => {
    const result = await outcome(program({ needed: ["../../../../../canary/secret"] }));
    expect(result).toBeInstanceOf(InputError);
    expect((result as Error).message).toMatch(/canary\/secret/);
  });

  it("never follows a package's symlink out of its tree", async () => {
    await symlink("../../../../../canary/secret", path.join(tree, "lib", "x86_64-linux-gnu", "libevil.so.1"));
    const result = await outcome(program({ needed: ["libevil.so.1"] }));
    // Inside the image the link would stop at "/", where there is no canary: the library is missing.
    expect(result).toBeInstanceOf(InputError);
    expect((result as Error).message).toMatch(/libevil\.so\.1/);
  });

  it("placing a file in the image root never writes or chmods outside it", async () => {
    const root = path.join(base, "image", "root", "system");
    await mkdir(root, { recursive: true });
    const source = path.join(base, "lib.so");
    await writeFile(source, "lib");
    const error = await placeFile(root, "/lib64/../../../../canary/secret", source, 0o755).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(InputError);
    expect((await stat(secret)).mode & 0o777).toBe(0o600);
    expect(await readdir(path.join(base, "canary"))).toEqual(["secret"]);
  });

  it("still resolves the ordinary loader and a library found through a link inside the tree", async () => {
    await writeFile(
      path.join(tree, "lib", "x86_64-linux-gnu", "ld-linux-x86-64.so.2"),
      buildElf({ type: ET.DYN, soname: "ld-linux-x86-64.so.2" }),
    );
    await symlink("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", path.join(tree, "lib64", "ld-linux-x86-64.so.2"));
    await writeFile(path.join(tree, "lib", "x86_64-linux-gnu", "libz.so.1.2"), buildElf({ type: ET.DYN, soname: "libz.so.1" }));
    await symlink("libz.so.1.2", path.join(tree, "lib", "x86_64-linux-gnu", "libz.so.1"));
    const files = await outcome(program({ interpreter: "/lib64/ld-linux-x86-64.so.2", needed: ["libz.so.1"] }));
    expect(files).toEqual([
      {
        dest: "/lib/x86_64-linux-gnu/libz.so.1",
        source: path.join(tree, "lib", "x86_64-linux-gnu", "libz.so.1.2"),
        identity: `${"a".repeat(64)}:lib/x86_64-linux-gnu/libz.so.1.2`,
      },
      {
        dest: "/lib64/ld-linux-x86-64.so.2",
        source: path.join(tree, "lib", "x86_64-linux-gnu", "ld-linux-x86-64.so.2"),
        identity: `${"a".repeat(64)}:/lib64/ld-linux-x86-64.so.2`,
      },
    ]);
  });
});
