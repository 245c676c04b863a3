// The node baker's detection for compiled apps: scripts.start pointing at a build output that
// does not exist yet is a problem that names the build step; once built, it is the command.
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { baker } from "../../bakers/node/index.js";

async function app(pkg: Record<string, unknown>): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "kiln-node-"));
  await writeFile(path.join(dir, "package.json"), JSON.stringify(pkg));
  return dir;
}

describe("node detection of compiled (TypeScript → ESM) apps", () => {
  const pkg = {
    name: "@acme/Api",
    version: "2.0.0",
    type: "module",
    scripts: { build: "tsc -p .", start: "node --enable-source-maps dist/server.js" },
    engines: { node: "20" },
  };

  it("before the build: a problem that names the missing file and npm run build", async () => {
    const dir = await app(pkg);
    const detection = await baker.detect({ dir, file: undefined });
    expect(detection).toMatchObject({ name: "api", version: "2.0.0", nodeVersion: "20" });
    expect(detection?.cmd).toBeUndefined();
    expect(detection?.problems).toEqual([
      `scripts.start runs dist/server.js, which does not exist in ${dir}; build the app first (npm run build), then bake: kiln bakes the app's files as they are`,
    ]);
  });

  it("after the build: scripts.start is the command, flags included", async () => {
    const dir = await app(pkg);
    await mkdir(path.join(dir, "dist"));
    await writeFile(path.join(dir, "dist", "server.js"), "export {};\n");
    expect((await baker.detect({ dir, file: undefined }))?.cmd).toEqual(["node", "--enable-source-maps", "dist/server.js"]);
  });
});
