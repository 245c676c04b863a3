// Issue 18 item 13: kiln init writes a commented starter kiln.yml that kiln bake's own loader
// accepts, for each example app the suite bakes (copied without its kiln.yml), and never
// replaces an existing file unless --force.
import { chmod, cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { parse } from "yaml";
import type { Baker } from "../../src/bake/baker.js";
import { loadBakers } from "../../src/bake/bakers.js";
import { main } from "../../src/cli/main.js";
import { initConfig } from "../../src/config/init.js";
import { loadEnvironment } from "../../src/config/environments.js";
import { loadSpec } from "../../src/config/load.js";
import { InputError } from "../../src/errors.js";
import { EM, ET, buildElf } from "./helpers/elf-builder.js";

const examples = path.join(import.meta.dirname, "../../examples");
let root: string;
let bakers: Baker[];
let n = 0;
beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "kiln-init-test-"));
  bakers = await loadBakers();
});
afterAll(() => rm(root, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

/** A copy of an example app without its kiln.yml and kiln.lock (what a user has before kiln init). */
async function example(name: string): Promise<string> {
  const dir = path.join(root, `${name}-${++n}`);
  // As checked out: no kiln.yml or kiln.lock, and no build output an earlier test run left (node-esm's dist/).
  await cp(path.join(examples, name), dir, {
    recursive: true,
    filter: (src) => !/kiln\.(yml|lock)$/.test(src) && !src.split(path.sep).includes("dist"),
  });
  return dir;
}

describe("kiln init on the example apps", () => {
  const cases: [example: string, baker: string, name: string, port: number, health: string, prepare?: (dir: string) => Promise<void>][] = [
    ["hello-node", "node", "hello-node", 8080, "/healthz"],
    ["hello-python", "python", "", 8080, "/healthz"],
    ["crash-loop", "node", "crash-loop", 8080, "/"],
    [
      "hello-native",
      "native",
      "",
      8080,
      "/healthz",
      async (dir) => {
        // What make builds: one x86-64 executable next to server.c.
        await writeFile(path.join(dir, "server"), buildElf({ machine: EM.X86_64, type: ET.EXEC }));
        await chmod(path.join(dir, "server"), 0o755);
      },
    ],
  ];
  for (const [name, baker, imageName, port, health, prepare] of cases) {
    it(`${name}: detects the ${baker} baker, port ${port} and health path ${health}; kiln bake's loader accepts the file`, async () => {
      const dir = await example(name);
      await prepare?.(dir);
      const result = await initConfig(dir, {}, bakers);
      expect(result).toMatchObject({ baker, port, healthPath: health, problems: [] });
      const text = await readFile(path.join(dir, "kiln.yml"), "utf8");
      expect(text).toMatch(/^# kiln\.yml: /);
      expect(text.split("\n").filter((l) => l.startsWith("#")).length).toBeGreaterThan(10);
      // The real loader, as kiln bake and kiln promote read it.
      const spec = await loadSpec(dir, {}, bakers);
      expect(spec).toMatchObject({ baker, port, healthcheck: { path: health } });
      expect(spec.name).toBe(imageName || path.basename(dir));
      expect((await bakers.find((b) => b.name === baker)!.entryProblems?.(spec)) ?? []).toEqual([]);
      const dev = await loadEnvironment(dir, spec.name, spec.healthcheck.path, "dev");
      expect(dev).toMatchObject({ target: "local", port: 8000, instances: 2 });
      // Settings the bake detects each time stay comments, so package.json stays the one place for them.
      expect(parse(text)).not.toHaveProperty("cmd");
    });
  }

  it("node-esm before its build: writes the file and returns what kiln bake would still refuse", async () => {
    const dir = await example("node-esm");
    const result = await initConfig(dir, {}, bakers);
    expect(result.problems).toEqual([expect.stringContaining("npm run build")]);
    expect(parse(await readFile(path.join(dir, "kiln.yml"), "utf8"))).toMatchObject({ name: "node-esm", baker: "node" });
  });

  it("finds a hard-coded listening port, and writes a name that passes the schema from any package.json name", async () => {
    const dir = path.join(root, "odd");
    await mkdir(dir);
    await writeFile(
      path.join(dir, "package.json"),
      JSON.stringify({ name: "@Acme/My Shop!\nport: 1", version: "2.0.0", main: "index.js" }),
    );
    await writeFile(path.join(dir, "index.js"), "require('http').createServer((q, s) => s.end('ok')).listen(3000, () => {});\n");
    const result = await initConfig(dir, {}, bakers);
    expect(result).toMatchObject({ port: 3000, name: expect.stringMatching(/^[a-z0-9][a-z0-9._-]*$/), version: "2.0.0", problems: [] });
    expect(await readFile(path.join(dir, "kiln.yml"), "utf8")).toContain("Found in index.js");
    expect((await loadSpec(dir, {}, bakers)).port).toBe(3000);
  });
});

describe("kiln init and an existing kiln.yml", () => {
  it("refuses to replace it, and replaces it with --force", async () => {
    const dir = await example("hello-node");
    await writeFile(path.join(dir, "kiln.yml"), "name: mine\n");
    const error = await initConfig(dir, {}, bakers).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).message).toMatch(/kiln\.yml already exists/);
    expect((error as InputError).hint).toContain("--force");
    expect(await readFile(path.join(dir, "kiln.yml"), "utf8")).toBe("name: mine\n");
    await initConfig(dir, { force: true }, bakers);
    expect(await readFile(path.join(dir, "kiln.yml"), "utf8")).toMatch(/^# kiln\.yml: /);
  });

  it("--force does not write through a link", async () => {
    const dir = await example("hello-node");
    const outside = path.join(root, "outside.txt");
    await writeFile(outside, "keep\n");
    await symlink(outside, path.join(dir, "kiln.yml"));
    await expect(initConfig(dir, { force: true }, bakers)).rejects.toThrow(/not a regular file/);
    expect(await readFile(outside, "utf8")).toBe("keep\n");
  });

  it("refuses a directory kiln cannot bake, naming what it looks for", async () => {
    const dir = path.join(root, "empty");
    await mkdir(dir);
    await expect(initConfig(dir, {}, bakers)).rejects.toThrow(/holds no app kiln recognises/);
  });
});

describe("kiln init on the command line", () => {
  it("writes the file, says what it found and what to run next", async () => {
    const dir = await example("hello-node");
    let stderr = "";
    let stdout = "";
    vi.spyOn(process.stderr, "write").mockImplementation((c: string | Uint8Array) => {
      stderr += String(c);
      return true;
    });
    vi.spyOn(process.stdout, "write").mockImplementation((c: string | Uint8Array) => {
      stdout += String(c);
      return true;
    });
    expect(await main(["node", "kiln", "init", dir])).toBe(0);
    expect(stderr).toContain("node app hello-node, port 8080, health check GET /healthz");
    expect(stdout).toContain(`kiln bake ${dir} && kiln run hello-node:0.1.0`);
    expect(await main(["node", "kiln", "init", dir])).toBe(2);
  });
});
