// Boots with the kernel kiln builds (`kernel: minimal`); boot-matrix.ts has the tests. The first
// bake compiles the kernel unless scripts/test-lanes.sh's background `kiln kernel build` already
// did (then the bake waits for it): the hook's time limit covers a compile on 2 busy cores.
import { beforeAll, describe, expect, it } from "vitest";
import type { KernelBuildRecord } from "../../src/kernel/build.js";
import { bakeExample, cli, sharedHome } from "./harness.js";
import { describeBoots } from "./boot-matrix.js";

const home = sharedHome();
let build: KernelBuildRecord;

beforeAll(async () => {
  const { image } = await bakeExample("hello-native", home, {}, "minimal");
  build = image.manifest.kernel.build!;
  expect(build.source.name).toBe("linux-source-6.1");
  expect(image.manifest.kernel.modules).toEqual([]);
  expect(image.manifest.kernel.builtIn).toEqual(expect.arrayContaining(["ena", "nvme", "ixgbevf"]));
  expect(image.manifest.lock?.kernelBuild).toMatchObject({ key: build.key, imageSha256: build.imageSha256 });
  expect(image.manifest.lock?.packages.find((p) => p.role === "kernel-source")?.name).toBe("linux-source-6.1");
  expect(image.manifest.lock?.packages.some((p) => p.role === "kernel")).toBe(false);
}, 45 * 60_000);

describe("kiln kernel", () => {
  it("show reports the build the image uses, and --config its .config with the hardening lines", async () => {
    const env = { KILN_HOME: home.root };
    const shown = await cli(["kernel", "show", "examples/hello-native", "--json"], env);
    expect(shown.code, shown.stderr).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({ key: build.key, built: { imageSha256: build.imageSha256 } });
    const config = await cli(["kernel", "show", "examples/hello-native", "--config"], env);
    expect(config.stdout).toContain("# CONFIG_MODULES is not set");
    expect(config.stdout).toContain("# CONFIG_KEXEC is not set");
    expect(config.stdout).toContain("CONFIG_SECCOMP_FILTER=y");
    const again = await cli(["kernel", "build", "examples/hello-native", "--json"], env);
    expect(JSON.parse(again.stdout)).toMatchObject({ key: build.key, cached: true });
  });
});

describeBoots("minimal");
