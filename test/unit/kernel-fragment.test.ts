import { readFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { readKernelFragments, X86_64 } from "../../src/kernel/build.js";
import { parseConfigFragment, renderFragment, unmetLines } from "../../src/kernel/fragment.js";
import { kernelBuildChange } from "../../src/packages/lock.js";

const configs = path.join(import.meta.dirname, "..", "..", "kernel-configs");

describe("minimal kernel configuration fragments", () => {
  it("parse CONFIG_NAME=value lines with their place, skipping comments", () => {
    const lines = parseConfigFragment('# a comment\n\nCONFIG_A=y\nCONFIG_B=n\nCONFIG_C=128\nCONFIG_D="-kiln"\n', "f.config");
    expect(lines).toEqual([
      { option: "CONFIG_A", value: "y", where: "f.config:3" },
      { option: "CONFIG_B", value: "n", where: "f.config:4" },
      { option: "CONFIG_C", value: "128", where: "f.config:5" },
      { option: "CONFIG_D", value: '"-kiln"', where: "f.config:6" },
    ]);
    expect(renderFragment(lines)).toBe('CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=128\nCONFIG_D="-kiln"\n');
  });

  it("refuse lines that are not settings, naming file and line", () => {
    const error = (() => {
      try {
        parseConfigFragment('CONFIG_A=y\nCONFIG_B = y\nCONFIG_C=m\nCONFIG_D="a\\"b"\n', "bad.config");
      } catch (e) {
        return e as InputError;
      }
      throw new Error("no error");
    })();
    expect(error).toBeInstanceOf(InputError);
    expect(error.message).toContain("bad.config:2: 'CONFIG_B = y'");
    // Modules are not allowed: the minimal kernel has none.
    expect(error.message).toContain("bad.config:3: 'CONFIG_C=m'");
    expect(error.message).toContain("bad.config:4:");
    expect(error.message).not.toContain("bad.config:1:");
  });

  it("name every line olddefconfig did not keep, the last of repeated lines counting", () => {
    const lines = parseConfigFragment("CONFIG_A=y\nCONFIG_B=y\nCONFIG_C=n\nCONFIG_D=y\nCONFIG_D=n\nCONFIG_E=64\n", "f.config");
    const built = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=y\nCONFIG_E=64\n";
    expect(unmetLines(lines, built)).toEqual([
      "CONFIG_B=y (f.config:2): the build left it unset (an option it depends on is off, or no such option in this kernel)",
      "CONFIG_C=n (f.config:3): the build has CONFIG_C=y",
    ]);
  });

  it("kiln's own fragments parse and ask for the hardening the issue names", async () => {
    const lines = await readKernelFragments(configs, X86_64);
    const value = (o: string) => lines.filter((l) => l.option === o).at(-1)?.value;
    for (const off of ["CONFIG_MODULES", "CONFIG_KEXEC", "CONFIG_DEVMEM"]) expect(value(off), off).toBe("n");
    for (const on of ["CONFIG_SECCOMP_FILTER", "CONFIG_STACKPROTECTOR_STRONG", "CONFIG_RANDOMIZE_BASE", "CONFIG_EFI_STUB"])
      expect(value(on), on).toBe("y");
    for (const driver of ["CONFIG_VIRTIO_BLK", "CONFIG_BLK_DEV_NVME", "CONFIG_ENA_ETHERNET", "CONFIG_ATA_PIIX", "CONFIG_EROFS_FS"])
      expect(value(driver), driver).toBe("y");
    // The Debian kernel's feature list (kiln.config) is covered: every =y/=m there is =y here.
    const debian = (await readFile(path.join(configs, "kiln.config"), "utf8")).matchAll(/^(CONFIG_\w+)=[ym]/gm);
    const missing = [...debian].map((m) => m[1]!).filter((o) => value(o) !== "y");
    expect(missing).toEqual([]);
  });
});

describe("kiln.lock's minimal kernel build under --frozen", () => {
  const build = { key: "k1", release: "6.1.192-kiln", configSha256: "a".repeat(64), compiler: "gcc 12.2.0", imageSha256: "b".repeat(64) };
  it("agrees when the key is the same, and names what changed otherwise", () => {
    expect(kernelBuildChange(build, { ...build })).toBeUndefined();
    expect(kernelBuildChange(undefined, undefined)).toBeUndefined();
    expect(kernelBuildChange(undefined, build)).toBe("the lock has no minimal kernel build");
    expect(kernelBuildChange(build, undefined)).toBe("the lock has a minimal kernel build this bake does not use");
    expect(kernelBuildChange(build, { ...build, key: "k2", configSha256: "c".repeat(64) })).toBe(
      "the minimal kernel's configuration changed (config sha256 aaaaaaaaaaaa → cccccccccccc)",
    );
    expect(kernelBuildChange(build, { ...build, key: "k2", compiler: "gcc 13" })).toBe(
      "the minimal kernel's compiler changed (gcc 12.2.0 → gcc 13)",
    );
    expect(kernelBuildChange(build, { ...build, key: "k2" })).toBe("the minimal kernel's build key changed (k1 → k2)");
  });
});
