// The runtime trees the java and python bakers make (a jlink'd JRE; a trimmed stdlib
// byte-compiled to .pyc) must not break kiln's reproducibility: the same inputs baked in two
// empty homes give the same image digest. Only .deb downloads are shared between the homes
// (a symlinked cache/debs); unpacking, jdeps/jlink, compiling, pip and every layer run twice.
// No VM is booted.
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, rm, symlink } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { bake } from "../../src/bake/bake.js";
import { kilnHome, type KilnHome } from "../../src/home.js";
import { quiet, repo, sharedHome } from "./harness.js";

const roots: string[] = [];
afterAll(async () => {
  for (const root of roots) await rm(root, { recursive: true, force: true });
});

async function emptyHomeSharingDebs(): Promise<KilnHome> {
  const root = await mkdtemp(path.join(os.tmpdir(), "kiln-repro-"));
  roots.push(root);
  await mkdir(path.join(root, "cache"), { recursive: true });
  const debs = path.join(sharedHome().cache, "debs");
  await mkdir(debs, { recursive: true });
  await symlink(debs, path.join(root, "cache", "debs"));
  return kilnHome({ KILN_HOME: root });
}

describe.sequential("java and python images are reproducible", () => {
  it("hello-java.jar and hello-python bake to the same digests in two empty homes", async () => {
    execFileSync("make", ["-s", "-C", path.join(repo, "examples", "hello-java")]);
    const targets = [path.join(repo, "examples", "hello-java", "hello-java.jar"), path.join(repo, "examples", "hello-python")];
    const digests: string[][] = [];
    for (let i = 0; i < 2; i++) {
      const home = await emptyHomeSharingDebs();
      const round: string[] = [];
      for (const target of targets) round.push((await bake(target, {}, home, quiet)).image.digest);
      digests.push(round);
    }
    expect(digests[1]).toEqual(digests[0]);
  }, 1_200_000);
});
