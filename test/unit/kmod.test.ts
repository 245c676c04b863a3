import { existsSync, readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { InputError, KilnError } from "../../src/errors.js";
import { parseModinfo, type ModuleInfo } from "../../src/kmod/modinfo.js";
import { planModuleLoad, renderAliasTable, renderDepTable } from "../../src/kmod/module-set.js";
import { ET, buildElf } from "./helpers/elf-builder.js";

function kernelModule(modinfo: string[], bits: 32 | 64 = 64): Buffer {
  return buildElf({
    bits,
    type: ET.REL,
    programHeaders: false,
    sections: [
      { name: ".text", data: Buffer.from([0xc3]) },
      { name: ".modinfo", data: Buffer.from(modinfo.map((field) => `${field}\0`).join("")) },
    ],
  });
}

function mod(name: string, depends: string[] = [], extra: Partial<ModuleInfo> = {}): ModuleInfo {
  return { name, depends, aliases: [], softdepsPre: [], ...extra };
}

function moduleMap(...modules: ModuleInfo[]): Map<string, ModuleInfo> {
  return new Map(modules.map((m) => [m.name, m]));
}

describe("parseModinfo", () => {
  it("reads name, depends, aliases, pre-softdeps and vermagic", () => {
    const buf = kernelModule([
      "license=GPL",
      "alias=virtio:d00000002v*",
      "alias=fs-demo",
      "softdep=pre: crc32c-generic sha256",
      "softdep=post: later",
      "depends=virtio_ring,virtio",
      "retpoline=Y",
      "name=virtio_demo",
      "vermagic=6.1.0-56-cloud-amd64 SMP preempt mod_unload modversions ",
    ]);
    expect(parseModinfo(buf, "kernel/drivers/virtio_demo.ko")).toEqual({
      name: "virtio_demo",
      depends: ["virtio_ring", "virtio"],
      aliases: ["virtio:d00000002v*", "fs-demo"],
      softdepsPre: ["crc32c_generic", "sha256"],
      vermagic: "6.1.0-56-cloud-amd64 SMP preempt mod_unload modversions ",
    });
  });

  it("treats an empty depends= as no dependencies", () => {
    expect(parseModinfo(kernelModule(["depends=", "name=xts"]), "xts.ko").depends).toEqual([]);
  });

  it("falls back to the file name, normalising '-' to '_', when name= is absent", () => {
    const info = parseModinfo(
      kernelModule(["depends=crypto-simd", "license=GPL"]),
      "/lib/modules/6.1/kernel/arch/x86/crypto/aesni-intel.ko",
    );
    expect(info.name).toBe("aesni_intel");
    expect(info.depends).toEqual(["crypto_simd"]);
    expect(info.vermagic).toBeUndefined();
  });

  it("normalises dashes in name= too", () => {
    expect(parseModinfo(kernelModule(["name=snd-hda-intel"]), "x.ko").name).toBe("snd_hda_intel");
  });

  it("reads softdeps with both phases in one value and glued phase markers", () => {
    const info = parseModinfo(kernelModule(["softdep=post: a pre: b c", "softdep=pre:d post:e"]), "m.ko");
    expect(info.softdepsPre).toEqual(["b", "c", "d"]);
  });

  it("reads a 32-bit module", () => {
    expect(parseModinfo(kernelModule(["name=old", "depends=a,b"], 32), "old.ko")).toMatchObject({ name: "old", depends: ["a", "b"] });
  });

  it("rejects an ELF file without a .modinfo section", () => {
    const notModule = buildElf({ type: ET.REL, programHeaders: false, sections: [{ name: ".text", data: Buffer.from([0xc3]) }] });
    expect(() => parseModinfo(notModule, "foo.ko")).toThrow(InputError);
    expect(() => parseModinfo(notModule, "foo.ko")).toThrow(/foo\.ko is not a kernel module/);
    expect(() => parseModinfo(buildElf({ needed: ["libc.so.6"] }), "bin/app")).toThrow(/bin\/app is not a kernel module/);
  });

  it("rejects files that are not ELF, pointing out compressed modules", () => {
    expect(() => parseModinfo(Buffer.from("hello"), "readme.ko")).toThrow(/readme\.ko is not a kernel module/);
    expect(() => parseModinfo(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 1, 2]), "erofs.ko.xz")).toThrow(
      /erofs\.ko\.xz is a xz-compressed kernel module/,
    );
    expect(() => parseModinfo(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0]), "erofs.ko.zst")).toThrow(/zstd-compressed/);
  });

  it("rejects a truncated module", () => {
    const buf = kernelModule(["name=x"]);
    expect(() => parseModinfo(buf.subarray(0, buf.length - 20), "x.ko")).toThrow(/x\.ko is a truncated or corrupt ELF file/);
  });
});

describe("planModuleLoad", () => {
  it("orders dependencies before dependents, ties alphabetically", () => {
    const available = moduleMap(
      mod("erofs", ["libcrc32c"]),
      mod("libcrc32c"),
      mod("virtio_blk", ["virtio", "virtio_ring"]),
      mod("virtio_ring"),
      mod("virtio", ["virtio_ring"]),
      mod("unused"),
    );
    expect(planModuleLoad(available, ["virtio_blk", "erofs"])).toEqual({
      order: ["libcrc32c", "erofs", "virtio_ring", "virtio", "virtio_blk"],
      missing: [],
    });
  });

  it("is independent of the order modules are wanted or listed in", () => {
    const modules = [mod("d", ["b", "c"]), mod("c", ["a"]), mod("b", ["a"]), mod("a"), mod("e")];
    const forward = planModuleLoad(moduleMap(...modules), ["d", "e"]);
    const backward = planModuleLoad(moduleMap(...[...modules].reverse()), ["e", "d", "d"]);
    expect(forward).toEqual(backward);
    expect(forward.order).toEqual(["a", "b", "c", "d", "e"]);
  });

  it("loads existing pre-softdeps first and ignores ones that do not exist", () => {
    const available = moduleMap(
      mod("xt_LOG", ["x_tables"], { softdepsPre: ["nf_log_syslog", "nf_log_ghost"] }),
      mod("x_tables"),
      mod("nf_log_syslog"),
    );
    expect(planModuleLoad(available, ["xt_LOG"])).toEqual({ order: ["nf_log_syslog", "x_tables", "xt_LOG"], missing: [] });
  });

  it("lists missing wanted and depended-on modules, sorted and once each", () => {
    const available = moduleMap(mod("a", ["zz_missing", "b"]), mod("b", ["zz_missing"]));
    expect(planModuleLoad(available, ["nope", "a", "nope"])).toEqual({ order: ["b", "a"], missing: ["nope", "zz_missing"] });
  });

  it("treats '-' and '_' as the same character", () => {
    const available = new Map([
      ["crc32c-intel", mod("crc32c_intel", ["crypto-simd"])],
      ["crypto_simd", mod("crypto_simd")],
    ]);
    expect(planModuleLoad(available, ["crc32c-intel"])).toEqual({ order: ["crypto_simd", "crc32c_intel"], missing: [] });
  });

  it("throws on a dependency cycle, naming the modules in it", () => {
    const available = moduleMap(mod("top", ["a"]), mod("a", ["b"]), mod("b", ["c"]), mod("c", ["a"]));
    expect(() => planModuleLoad(available, ["top"])).toThrow(KilnError);
    expect(() => planModuleLoad(available, ["top"])).toThrow(/cycle: a -> b -> c -> a/);
  });

  it("throws on a module that depends on itself", () => {
    expect(() => planModuleLoad(moduleMap(mod("loop", ["loop"])), ["loop"])).toThrow(/cycle: loop -> loop/);
  });

  it("returns an empty plan for nothing wanted", () => {
    expect(planModuleLoad(moduleMap(mod("a")), [])).toEqual({ order: [], missing: [] });
  });
});

describe("renderAliasTable", () => {
  it("writes one sorted, tab-separated line per alias", () => {
    const table = renderAliasTable([
      mod("virtio_net", [], { aliases: ["virtio:d00000001v*"] }),
      mod("erofs", [], { aliases: ["fs-erofs"] }),
      mod("virtio_blk", [], { aliases: ["virtio:d00000002v*", "virtio:d00000002v*"] }),
    ]);
    expect(table).toBe("alias\tfs-erofs\terofs\n" + "alias\tvirtio:d00000001v*\tvirtio_net\n" + "alias\tvirtio:d00000002v*\tvirtio_blk\n");
  });

  it("is empty when no module has aliases", () => {
    expect(renderAliasTable([mod("a")])).toBe("");
  });

  it("refuses aliases that would break the table's format", () => {
    expect(() => renderAliasTable([mod("bad", [], { aliases: ["a\tb"] })])).toThrow(/bad has an alias containing a tab/);
  });
});

describe("renderDepTable", () => {
  const available = moduleMap(
    mod("virtio_blk", ["virtio", "virtio_ring"]),
    mod("virtio_ring"),
    mod("virtio", ["virtio_ring"]),
    mod("erofs", ["libcrc32c", "gone"]),
    mod("libcrc32c"),
  );

  it("gives each module's full load order, ending with itself, sorted by module", () => {
    expect(renderDepTable(available, ["virtio_blk", "virtio_ring", "virtio-blk"])).toBe(
      "virtio_blk\tvirtio_ring virtio virtio_blk\n" + "virtio_ring\tvirtio_ring\n",
    );
  });

  it("leaves out dependencies that are not available", () => {
    expect(renderDepTable(available, ["erofs"])).toBe("erofs\tlibcrc32c erofs\n");
  });

  it("refuses modules that are not available", () => {
    expect(() => renderDepTable(available, ["erofs", "ext4"])).toThrow(/not available: ext4/);
  });
});

/**
 * A real erofs.ko: from the kernel package the integration tests unpack into the shared test
 * home (.kiln-test/home), when it is there (unit tests never download anything themselves).
 */
function findErofsModule(): { path: string; release: string } | undefined {
  const unpacked = new URL("../../.kiln-test/home/cache/unpacked/", import.meta.url).pathname;
  if (!existsSync(unpacked)) return undefined;
  for (const pkg of readdirSync(unpacked)
    .filter((d) => d.startsWith("linux-image-"))
    .sort()) {
    const modulesDir = `${unpacked}${pkg}/lib/modules`;
    if (!existsSync(modulesDir)) continue;
    for (const release of readdirSync(modulesDir).sort()) {
      const path = `${modulesDir}/${release}/kernel/fs/erofs/erofs.ko`;
      if (existsSync(path)) return { path, release };
    }
  }
  return undefined;
}

describe("parseModinfo on a real kernel module", () => {
  const erofs = findErofsModule();

  it.skipIf(erofs === undefined)("reads erofs.ko", () => {
    const { path, release } = erofs!;
    const info = parseModinfo(readFileSync(path), path);
    expect(info.name).toBe("erofs");
    expect(info.depends).toEqual(["libcrc32c"]);
    expect(info.aliases).toContain("fs-erofs");
    expect(info.softdepsPre).toEqual([]);
    expect(info.vermagic?.startsWith(`${release} `)).toBe(true);
  });
});
