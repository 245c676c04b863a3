// Issue 12, hole 2: every value of kiln.yml that reaches another program's configuration is
// checked at the edge by kiln.schema.json; each rule the issue names is pinned here with the
// problem line a user sees (path: what is wrong), and all problems come back at once.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Baker } from "../../src/bake/baker.js";
import { loadBakers } from "../../src/bake/bakers.js";
import { loadSpec } from "../../src/config/load.js";
import type { SpecOverrides } from "../../src/config/types.js";
import { SpecError } from "../../src/errors.js";
import { parsePipeline } from "../../src/pipeline/config.js";

let root: string;
let bakers: Baker[];
let n = 0;

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "kiln-schema-test-"));
  bakers = await loadBakers();
});
afterAll(() => rm(root, { recursive: true, force: true }));

/** A Node app whose kiln.yml is `yml`; the problems loadSpec reports (none: []). */
async function problems(yml: Record<string, unknown>, overrides: SpecOverrides = {}): Promise<readonly string[]> {
  const dir = path.join(root, `app${++n}`);
  await mkdir(dir);
  await writeFile(path.join(dir, "package.json"), JSON.stringify({ name: "shop", scripts: { start: "node server.js" } }));
  await writeFile(path.join(dir, "kiln.yml"), stringify(yml));
  const error = await loadSpec(dir, overrides, bakers).then(
    () => undefined,
    (e: unknown) => e,
  );
  if (error === undefined) return [];
  expect(error).toBeInstanceOf(SpecError);
  return (error as SpecError).problems;
}

describe("kiln.yml values that would reach another program's configuration", () => {
  it("refuses newlines in cmd strings and list items", async () => {
    expect(await problems({ cmd: "node server.js\n--inspect=0.0.0.0" })).toEqual(["cmd: contains a newline"]);
    expect(await problems({ cmd: ["node", "server.js\nKILN_X=1"] })).toEqual(["cmd[1]: contains a newline"]);
    expect(await problems({}, { cmd: "node\tserver.js" })).toEqual(["--cmd: contains a tab"]);
  });

  it("refuses newlines and control characters in env values, top level and per environment", async () => {
    expect(await problems({ env: { A: "x\nKILN_ENV=prod", B: "bell\u0007" } })).toEqual([
      "env.A: contains a newline",
      "env.B: contains the control character U+0007",
    ]);
    expect(await problems({ environments: { prod: { env: { FOO: "1\n2" } } } })).toEqual(["environments.prod.env.FOO: contains a newline"]);
  });

  it("refuses KILN_* names and invalid names in an environment's env, as in the top-level env", async () => {
    expect(await problems({ environments: { dev: { env: { KILN_ENV: "prod", "BAD-NAME": "x" } } } })).toEqual([
      "environments.dev.env.KILN_ENV: KILN_* variables are set by kiln",
      "environments.dev.env.BAD-NAME: not a valid environment variable name",
    ]);
  });

  it("refuses a cron line or OnCalendar that is not one line", async () => {
    const pipeline = { stages: ["dev"], schedule: { cron: "0 3 * *\n1 root /evil", onCalendar: "daily\nExecStart=/evil" } };
    expect(await problems({ pipeline })).toEqual([
      "pipeline.schedule.onCalendar: contains a newline",
      "pipeline.schedule.cron: contains a newline",
    ]);
    expect(() => parsePipeline(pipeline, ["dev"], "kiln.yml")).toThrow(/pipeline\.schedule\.cron: contains a newline/);
  });

  it("accepts only printable URL path characters in healthcheck.path, starting with /", async () => {
    expect(await problems({ healthcheck: { path: "/health check" } })).toEqual([
      expect.stringMatching(/^healthcheck\.path: '\/health check' must start with \/ .*no spaces$/),
    ]);
    expect(await problems({ healthcheck: { path: "/h'x\"#y" } })).toHaveLength(1);
    expect(await problems({ healthcheck: { path: "/v1/health?full=1&x=%20" } })).toEqual([]);
  });

  it("gives numbers real ranges", async () => {
    expect(
      await problems({
        stopTimeout: 0,
        resources: { memory: 8, cpus: 1000 },
        port: 0,
        healthcheck: { timeout: 100000 },
        restarts: { maxQuickExits: 0 },
      }),
    ).toEqual([
      "healthcheck.timeout: '100000' must be a whole number from 1 to 3600",
      "resources.memory: '8' must be a whole number from 64 to 1048576",
      "resources.cpus: '1000' must be a whole number from 1 to 128",
      "stopTimeout: '0' must be a whole number from 1 to 3600",
      "restarts.maxQuickExits: '0' must be a whole number from 1 to 1000",
      "port: '0' must be a TCP port number from 1 to 65535",
    ]);
    expect(
      await problems({
        environments: {
          dev: { port: 70000, healthcheck: { interval: 0, healthyThreshold: 50 } },
          prod: { target: "aws", region: "eu-west-1", keepReleases: -1 },
        },
      }),
    ).toEqual([
      "environments.dev.port: '70000' must be a TCP port number from 1 to 65535",
      "environments.dev.healthcheck.interval: '0' must be a whole number from 1 to 300",
      "environments.dev.healthcheck.healthyThreshold: '50' must be a whole number from 1 to 10",
      "environments.prod.keepReleases: '-1' must be a whole number from 0 to 100",
    ]);
  });

  it("requires Debian package names for kernel.package and packages", async () => {
    // kernel is checked with the flags that can stand in for it (--kernel), after the file's other settings.
    expect(await problems({ kernel: { package: "linux-image-amd64\nPackage: evil" }, packages: ["libpq5", "../../etc"] })).toEqual([
      "packages[1]: '../../etc' must be a Debian package name (lowercase letters, digits, '+', '-' and '.')",
      "kernel.package: contains a newline",
    ]);
  });

  it("restricts image names and versions to safe characters, from kiln.yml and from flags", async () => {
    expect(await problems({ name: "shop\ntitle evil", version: "1.0 quiet init=/bin/sh" })).toEqual([
      "name: contains a newline",
      expect.stringMatching(/^version: '1\.0 quiet init=\/bin\/sh' must be letters, digits/),
    ]);
    expect(await problems({}, { name: "x y", version: "1\n2", port: "80; rm" })).toEqual([
      expect.stringMatching(/^--name: 'x y' must be lowercase/),
      "--version: contains a newline",
      "--port: '80; rm' must be a TCP port number from 1 to 65535",
    ]);
  });

  it("reads seccomp: on|off (default on)", async () => {
    expect(await problems({ seccomp: "sometimes" })).toEqual(["seccomp: 'sometimes' must be on or off"]);
    const dir = path.join(root, "seccomp");
    await mkdir(dir);
    await writeFile(path.join(dir, "package.json"), JSON.stringify({ name: "shop", scripts: { start: "node server.js" } }));
    expect((await loadSpec(dir, {}, bakers)).seccomp).toBe(true);
    await writeFile(path.join(dir, "kiln.yml"), "seccomp: off\n");
    expect((await loadSpec(dir, {}, bakers)).seccomp).toBe(false);
  });
});

describe("kiln.schema.json and the documentation", () => {
  const repo = path.resolve(import.meta.dirname, "../..");

  it("accepts every example's kiln.yml, each pointing editors at the schema", async () => {
    const { readdir, readFile } = await import("node:fs/promises");
    const { parse } = await import("yaml");
    const { schemaProblems } = await import("../../src/config/schema.js");
    for (const example of await readdir(path.join(repo, "examples"))) {
      const text = await readFile(path.join(repo, "examples", example, "kiln.yml"), "utf8").catch(() => undefined);
      if (text === undefined) continue;
      expect(text.split("\n")[0], example).toBe("# yaml-language-server: $schema=../../kiln.schema.json");
      expect(schemaProblems("", parse(text) ?? {}), example).toEqual([]);
    }
  });

  it("accepts the README's kiln.yml reference block", async () => {
    const { readFile } = await import("node:fs/promises");
    const { parse } = await import("yaml");
    const { schemaProblems } = await import("../../src/config/schema.js");
    const readme = await readFile(path.join(repo, "README.md"), "utf8");
    const block = /### kiln\.yml[\s\S]*?```yaml\n(name: shop[\s\S]*?)```/.exec(readme)?.[1];
    expect(block).toBeDefined();
    const doc = parse(block!) as Record<string, unknown>;
    expect(schemaProblems("", { ...doc, version: String(doc.version) })).toEqual([]);
  });
});

describe("values the schema refuses are never turned into text (found by fuzz-spec)", () => {
  it("an env value that is a mapping with a toString key is a problem, not a TypeError", async () => {
    expect(await problems({ environments: { dev: { env: { A: { toString: 1 } } } } })).toEqual([
      "environments.dev.env.A: must be a string, number or boolean",
    ]);
    expect(await problems({ pipeline: { stages: [{ env: "dev", canary: { toString: 1 } }] } })).toEqual([
      "pipeline.stages[0].canary: must be a string or a whole number",
    ]);
  });
});

describe("values kiln detects are held to the same rules", () => {
  it("package.json's name, version and engines.node", async () => {
    const dir = path.join(root, "detected");
    await mkdir(dir);
    await writeFile(
      path.join(dir, "package.json"),
      JSON.stringify({ name: "shop", version: "1.0.0\nx", engines: { node: ">=20\n" }, scripts: { start: "node server.js" } }),
    );
    const error = await loadSpec(dir, {}, bakers).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(SpecError);
    expect((error as SpecError).problems).toEqual(["version: contains a newline", "package.json engines.node: contains a newline"]);
  });
});
