// Boots with the kernel kiln builds (`kernel: minimal`); boot-matrix.ts has the tests. The first
// bake compiles the kernel unless scripts/test-lanes.sh's background `kiln kernel build` already
// did (then the bake waits for it): the hook's time limit covers a compile on 2 busy cores.
import { beforeAll, expect } from "vitest";
import { bakeExample, sharedHome } from "./harness.js";
import { describeBoots } from "./boot-matrix.js";

beforeAll(async () => {
  const { image } = await bakeExample("hello-native", sharedHome(), {}, "minimal");
  expect(image.manifest.kernel.build?.source.name).toBe("linux-source-6.1");
}, 45 * 60_000);

describeBoots("minimal");
