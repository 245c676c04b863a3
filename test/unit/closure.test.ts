import { describe, expect, it } from "vitest";
import { computeLibClosure, type LibRequest, type ResolvedLib } from "../../src/elf/closure.js";
import { parseElf, type ElfInfo } from "../../src/elf/elf.js";
import { EM, ET, buildElf } from "./helpers/elf-builder.js";

function lib(needed: string[] = [], extra: Partial<ElfInfo> = {}): ElfInfo {
  return {
    bits: 64,
    littleEndian: true,
    machine: 62,
    machineName: "x86-64",
    type: "dyn",
    needed,
    runpath: [],
    rpath: [],
    isStatic: needed.length === 0,
    isPie: false,
    ...extra,
  };
}

const APP = {
  path: "/opt/app/bin/app",
  info: lib(["libz.so.1", "libc.so.6"], { interpreter: "/lib64/ld-linux-x86-64.so.2", isPie: true }),
};

/** A resolver over a fixed soname → file table that records what it was asked. */
function fakeResolver(files: Record<string, ElfInfo>) {
  const requests: LibRequest[] = [];
  const resolve = async (req: LibRequest): Promise<ResolvedLib | undefined> => {
    requests.push(req);
    const info = files[req.soname];
    return info === undefined ? undefined : { soname: req.soname, path: `/lib/${req.soname}`, info };
  };
  return { resolve, requests };
}

describe("computeLibClosure", () => {
  it("follows DT_NEEDED transitively and returns libraries sorted by soname", async () => {
    const { resolve } = fakeResolver({
      "libz.so.1": lib(["libc.so.6"]),
      "libc.so.6": lib(["ld-linux-x86-64.so.2"]),
      "ld-linux-x86-64.so.2": lib(),
    });
    const closure = await computeLibClosure(APP, resolve);
    expect(closure.interpreter).toBe("/lib64/ld-linux-x86-64.so.2");
    expect(closure.libs.map((l) => l.soname)).toEqual(["ld-linux-x86-64.so.2", "libc.so.6", "libz.so.1"]);
    expect(closure.libs.map((l) => l.path)).toEqual(["/lib/ld-linux-x86-64.so.2", "/lib/libc.so.6", "/lib/libz.so.1"]);
    expect(closure.missing).toEqual([]);
  });

  it("resolves each soname once, breadth-first, even when many objects need it", async () => {
    const { resolve, requests } = fakeResolver({
      "libz.so.1": lib(["libc.so.6", "libm.so.6"]),
      "libc.so.6": lib(),
      "libm.so.6": lib(["libc.so.6"]),
    });
    await computeLibClosure(APP, resolve);
    expect(requests.map((r) => r.soname)).toEqual(["libz.so.1", "libc.so.6", "libm.so.6"]);
    expect(requests.find((r) => r.soname === "libc.so.6")?.neededBy).toBe("/opt/app/bin/app");
  });

  it("terminates on libraries that need each other", async () => {
    const { resolve } = fakeResolver({ "libz.so.1": lib(["libc.so.6"]), "libc.so.6": lib(["libz.so.1"]) });
    expect((await computeLibClosure(APP, resolve)).libs.map((l) => l.soname)).toEqual(["libc.so.6", "libz.so.1"]);
  });

  it("does not resolve a library's own soname when a dependency needs it back", async () => {
    const root = { path: "/opt/app/lib/libplugin.so", info: lib(["libhelper.so"], { soname: "libplugin.so" }) };
    const { resolve, requests } = fakeResolver({ "libhelper.so": lib(["libplugin.so"]) });
    const closure = await computeLibClosure(root, resolve);
    expect(requests.map((r) => r.soname)).toEqual(["libhelper.so"]);
    expect(closure.missing).toEqual([]);
    expect(closure.interpreter).toBeUndefined();
  });

  it("reports what cannot be found, with who needed it, sorted", async () => {
    const { resolve } = fakeResolver({ "libz.so.1": lib(["libzstd.so.1", "libbz2.so.1"]) });
    const closure = await computeLibClosure(APP, resolve);
    expect(closure.libs.map((l) => l.soname)).toEqual(["libz.so.1"]);
    expect(closure.missing).toEqual([
      { soname: "libbz2.so.1", neededBy: "/lib/libz.so.1" },
      { soname: "libc.so.6", neededBy: "/opt/app/bin/app" },
      { soname: "libzstd.so.1", neededBy: "/lib/libz.so.1" },
    ]);
  });

  it("treats a library for another machine as missing and does not follow it", async () => {
    const { resolve, requests } = fakeResolver({
      "libz.so.1": lib(["libarm-only.so"], { machine: EM.AARCH64, machineName: "aarch64" }),
      "libc.so.6": lib(),
    });
    const closure = await computeLibClosure(APP, resolve);
    expect(closure.libs.map((l) => l.soname)).toEqual(["libc.so.6"]);
    expect(closure.missing).toEqual([{ soname: "libz.so.1", neededBy: "/opt/app/bin/app" }]);
    expect(requests.map((r) => r.soname)).not.toContain("libarm-only.so");
  });

  it("treats a 32-bit library as missing for a 64-bit program", async () => {
    const { resolve } = fakeResolver({ "libz.so.1": lib([], { bits: 32 }), "libc.so.6": lib() });
    expect((await computeLibClosure(APP, resolve)).missing).toEqual([{ soname: "libz.so.1", neededBy: "/opt/app/bin/app" }]);
  });

  it("passes the requester's runpath, rpath and directory to the resolver", async () => {
    const root = { path: "/opt/app/bin/app", info: lib(["libz.so.1"], { runpath: ["$ORIGIN/../lib"], rpath: ["/old"] }) };
    const { resolve, requests } = fakeResolver({ "libz.so.1": lib(["libc.so.6"]), "libc.so.6": lib() });
    await computeLibClosure(root, resolve);
    expect(requests[0]).toEqual({
      soname: "libz.so.1",
      neededBy: "/opt/app/bin/app",
      runpath: ["$ORIGIN/../lib"],
      rpath: ["/old"],
      origin: "/opt/app/bin",
    });
    // The root has DT_RUNPATH, so its DT_RPATH is not inherited by libz.
    expect(requests[1]).toEqual({ soname: "libc.so.6", neededBy: "/lib/libz.so.1", runpath: [], rpath: [], origin: "/lib" });
  });

  it("hands an rpath down the loading chain with $ORIGIN expanded, as ld.so does", async () => {
    const root = { path: "/opt/app/bin/app", info: lib(["libz.so.1"], { rpath: ["$ORIGIN/../lib", "${ORIGIN}/x"] }) };
    const { resolve, requests } = fakeResolver({
      "libz.so.1": lib(["libc.so.6"], { rpath: ["$ORIGIN"] }),
      "libc.so.6": lib(["libm.so.6"]),
      "libm.so.6": lib(),
    });
    await computeLibClosure(root, resolve);
    expect(requests.map((r) => r.rpath)).toEqual([
      ["$ORIGIN/../lib", "${ORIGIN}/x"],
      ["$ORIGIN", "/opt/app/bin/../lib", "/opt/app/bin/x"],
      ["/lib", "/opt/app/bin/../lib", "/opt/app/bin/x"],
    ]);
  });

  it("gives the same answer whatever order lookups finish in", async () => {
    const files: Record<string, ElfInfo> = {
      "libz.so.1": lib(["libb.so"]),
      "libc.so.6": lib(["liba.so"]),
      "liba.so": lib(),
      "libb.so": lib(),
    };
    const delays: Record<string, number> = { "libz.so.1": 5, "libc.so.6": 0, "liba.so": 0, "libb.so": 3 };
    const slow = async (req: LibRequest): Promise<ResolvedLib | undefined> => {
      await new Promise((r) => setTimeout(r, delays[req.soname] ?? 0));
      const info = files[req.soname];
      return info === undefined ? undefined : { soname: req.soname, path: `/lib/${req.soname}`, info };
    };
    const { resolve } = fakeResolver(files);
    expect(await computeLibClosure(APP, slow)).toEqual(await computeLibClosure(APP, resolve));
  });

  it("returns nothing to copy for a static program", async () => {
    const { resolve, requests } = fakeResolver({});
    const info = parseElf(buildElf({ type: ET.EXEC }));
    expect(await computeLibClosure({ path: "/app", info }, resolve)).toEqual({ libs: [], missing: [] });
    expect(requests).toEqual([]);
  });

  it("works on infos parsed from ELF images", async () => {
    const app = parseElf(buildElf({ interpreter: "/lib/ld-linux-aarch64.so.1", machine: EM.AARCH64, needed: ["libfoo.so"] }));
    const foo = parseElf(buildElf({ machine: EM.AARCH64, soname: "libfoo.so", needed: ["libc.so.6"] }));
    const amd64Libc = parseElf(buildElf({ machine: EM.X86_64, soname: "libc.so.6" }));
    const { resolve } = fakeResolver({ "libfoo.so": foo, "libc.so.6": amd64Libc });
    const closure = await computeLibClosure({ path: "/app", info: app }, resolve);
    expect(closure.libs.map((l) => l.soname)).toEqual(["libfoo.so"]);
    expect(closure.missing).toEqual([{ soname: "libc.so.6", neededBy: "/lib/libfoo.so" }]);
  });
});
