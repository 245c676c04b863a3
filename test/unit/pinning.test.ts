// Issue 16, item 4: an app whose dependency versions are not pinned (no package-lock.json, loose
// requirements.txt lines) is announced on every bake, refused under --frozen, and its SBOM says so.
import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { bake } from "../../src/bake/bake.js";
import { InputError } from "../../src/errors.js";
import { kilnHome } from "../../src/home.js";
import { scanAppDependencies } from "../../src/packages/app-deps.js";
import { findUnpinned, unpinnedRequirements, unpinnedWarning } from "../../src/packages/pinning.js";
import { buildSbom } from "../../src/packages/sbom.js";
import type { Progress } from "../../src/progress.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "kiln-pinning-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function nodeApp(files: Record<string, string>): Promise<string> {
  const app = path.join(dir, "app");
  await mkdir(app, { recursive: true });
  await writeFile(path.join(app, "server.js"), "require('express')\n");
  for (const [name, text] of Object.entries(files)) await writeFile(path.join(app, name), text);
  return app;
}

const WITH_DEPS = JSON.stringify({ name: "api", version: "1.0.0", main: "server.js", dependencies: { express: "^4.19.0" } });

describe("requirements.txt pinning", () => {
  it.each([
    ["flask==3.0.3", true],
    ["Flask[async] == 3.0.3 ; python_version >= '3.8'", true],
    ["requests===2.31.0", true],
    ["./wheels/tool-1.0-py3-none-any.whl", true],
    ["tool @ https://example.invalid/tool-1.0-py3-none-any.whl", true],
    ["flask", false],
    ["flask>=2", false],
    ["flask~=3.0", false],
    ["flask==3.*", false],
    ["flask==3.0.3,<4", false],
    ["flask!=3.0.0", false],
  ])("%s is pinned: %s", (line, pinned) => {
    expect(unpinnedRequirements(`# deps\n${line}\n`)).toEqual(pinned ? [] : [{ line: 2, text: line }]);
  });

  it("names the loose lines of a python app's requirements.txt", async () => {
    const app = path.join(dir, "py");
    await mkdir(app);
    await writeFile(
      path.join(app, "requirements.txt"),
      "flask==3.0.3\nrequests>=2\n--index-url https://example.invalid/simple\ngunicorn\n",
    );
    const [u, ...rest] = await findUnpinned("python", app, undefined);
    expect(rest).toEqual([]);
    expect(u?.file).toBe(path.join(app, "requirements.txt"));
    expect(u?.detail).toContain("line 2: requests>=2; line 4: gunicorn");
    expect(unpinnedWarning(u!)).toMatch(
      /^warning: .*requirements\.txt has requirements without an exact version.*To pin: pin every line as name==version/,
    );
  });
});

describe("Node lock files", () => {
  it("an app with dependencies and no lock file is unpinned; either lock file pins it", async () => {
    const app = await nodeApp({ "package.json": WITH_DEPS });
    const [u] = await findUnpinned("node", app, undefined);
    expect(unpinnedWarning(u!)).toBe(
      `warning: ${app}/package.json has dependencies but no package-lock.json or npm-shrinkwrap.json next to it: npm/pip resolve versions ` +
        "at bake time, so two bakes of this source can differ. To pin: run `npm install --package-lock-only` in the app directory and commit package-lock.json",
    );
    await writeFile(path.join(app, "npm-shrinkwrap.json"), "{}");
    expect(await findUnpinned("node", app, undefined)).toEqual([]);
    await rm(path.join(app, "npm-shrinkwrap.json"));
    await writeFile(path.join(app, "package-lock.json"), "{}");
    expect(await findUnpinned("node", app, undefined)).toEqual([]);
  });

  it("an app without dependencies, or a single-file app, has nothing to pin", async () => {
    const app = await nodeApp({ "package.json": JSON.stringify({ name: "api", main: "server.js" }) });
    expect(await findUnpinned("node", app, undefined)).toEqual([]);
    expect(await findUnpinned("native", app, undefined)).toEqual([]);
    expect(await findUnpinned("python", app, path.join(app, "server.js"))).toEqual([]);
  });

  it("bake --frozen refuses an unpinned app with an InputError that says how to pin, before any work", async () => {
    const app = await nodeApp({ "package.json": WITH_DEPS, "kiln.yml": "name: api\nversion: 1.0.0\nbaker: node\nport: 8080\n" });
    const lines: string[] = [];
    const progress: Progress = { step: (_l, work) => work(), info: (m) => lines.push(m) };
    const home = kilnHome({ KILN_HOME: path.join(dir, "home") });
    const error = await bake(app, {}, home, progress, { frozen: true }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).message).toBe(
      `--frozen: ${app}/package.json has dependencies but no package-lock.json or npm-shrinkwrap.json next to it`,
    );
    expect((error as InputError).hint).toContain("npm install --package-lock-only");
    expect(lines).toEqual([]);
  });
});

describe("SBOM of an unpinned app", () => {
  it("lists each resolved package with its exact version and records that it was not pinned", async () => {
    const staged = path.join(dir, "staged");
    await mkdir(path.join(staged, "node_modules", "express"), { recursive: true });
    await writeFile(path.join(staged, "node_modules", "express", "package.json"), JSON.stringify({ name: "express", version: "4.21.2" }));
    const bom = buildSbom({
      name: "api",
      version: "1.0.0",
      digest: `sha256:${"a".repeat(64)}`,
      bakedAt: "2026-01-01T00:00:00.000Z",
      packages: [],
      appDependencies: await scanAppDependencies(staged),
      kilnVersion: "0.1.0",
      unpinned: ["package.json"],
    });
    expect(bom.components.map((c) => c.purl)).toEqual(["pkg:npm/express@4.21.2"]);
    expect(bom.metadata.component.properties).toContainEqual({ name: "kiln:unpinned-dependencies", value: "package.json" });
  });
});
