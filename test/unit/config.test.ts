// loadSpec on real (temporary) app directories: what kiln detects with no configuration, how
// kiln.yml and flags override it, and that every problem is reported at once with its path.
// Files only; no processes.
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Baker } from "../../src/bake/baker.js";
import { loadBakers } from "../../src/bake/bakers.js";
import { InputError, SpecError } from "../../src/errors.js";
import { parseEnvironments } from "../../src/config/environments.js";
import { loadSpec } from "../../src/config/load.js";
import { DEFAULTS, type Spec, type SpecOverrides } from "../../src/config/types.js";
import { EM, ET, buildElf } from "./helpers/elf-builder.js";

let root: string;
let bakers: Baker[];
let counter = 0;

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "kiln-spec-test-"));
  bakers = await loadBakers();
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A fresh app directory holding `files` (strings or bytes; executables get mode 755). */
async function appDir(
  files: Record<string, string | Buffer | { data: Buffer | string; mode: number }>,
  name = `app${++counter}`,
): Promise<string> {
  const dir = path.join(root, name);
  await mkdir(dir, { recursive: true });
  for (const [rel, content] of Object.entries(files)) {
    const file = path.join(dir, rel);
    await mkdir(path.dirname(file), { recursive: true });
    if (typeof content === "string" || Buffer.isBuffer(content)) await writeFile(file, content);
    else {
      await writeFile(file, content.data);
      await chmod(file, content.mode);
    }
  }
  return dir;
}

const packageJson = (value: Record<string, unknown>) => JSON.stringify(value, null, 2);
const x86Exec = () => ({ data: buildElf({ machine: EM.X86_64, type: ET.EXEC }), mode: 0o755 });

function load(target: string, overrides: SpecOverrides = {}): Promise<Spec> {
  return loadSpec(target, overrides, bakers);
}

async function specError(target: string, overrides: SpecOverrides = {}): Promise<SpecError> {
  const error = await load(target, overrides).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(SpecError);
  return error as SpecError;
}

async function inputError(target: string, overrides: SpecOverrides = {}): Promise<InputError> {
  const error = await load(target, overrides).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(InputError);
  return error as InputError;
}

describe("loadBakers", () => {
  it("finds every baker folder, node first and native (the catch-all for ELF files) last", () => {
    const names = bakers.map((b) => b.name);
    expect(names[0]).toBe("node");
    expect(names.at(-1)).toBe("native");
    expect(names).toEqual(expect.arrayContaining(["java", "python"]));
  });
});

describe("Node.js apps with no kiln.yml", () => {
  it("take name, version and cmd from package.json; port 8080; Node from engines.node", async () => {
    const dir = await appDir({
      "package.json": packageJson({ name: "shop", version: "1.2.3", scripts: { start: "node server.js" }, engines: { node: ">=20 <23" } }),
      "server.js": "require('http').createServer().listen(8080)\n",
    });
    const spec = await load(dir);
    expect(spec).toMatchObject({
      appDir: dir,
      appFile: undefined,
      name: "shop",
      version: "1.2.3",
      baker: "node",
      cmd: ["node", "server.js"],
      port: 8080,
      env: {},
      node: { version: ">=20 <23" },
    });
  });

  it("fill in the documented defaults", async () => {
    const dir = await appDir({ "package.json": packageJson({ name: "plain" }), "index.js": "" });
    const spec = await load(dir);
    expect(spec.version).toBe("0.1.0");
    expect(spec.node.version).toBe("20");
    expect(spec.cmd).toEqual(["node", "index.js"]);
    expect(spec.healthcheck).toEqual({ path: DEFAULTS.healthPath, timeoutSeconds: DEFAULTS.healthTimeoutSeconds });
    expect(spec.kernel).toEqual({ kind: "debian", package: DEFAULTS.kernelPackage });
    expect(spec.resources).toEqual({ memoryMiB: DEFAULTS.memoryMiB, cpus: DEFAULTS.cpus });
    expect(spec.packages).toEqual([]);
    expect(spec.stopTimeoutSeconds).toBe(DEFAULTS.stopTimeoutSeconds);
    expect(spec.restarts).toEqual({ maxQuickExits: DEFAULTS.maxQuickExits, windowSeconds: DEFAULTS.quickExitWindowSeconds });
  });

  it("use main, then server.js, when there is no start script", async () => {
    const withMain = await appDir({
      "package.json": packageJson({ name: "m", main: "lib/entry.js" }),
      "lib/entry.js": "",
      "server.js": "",
    });
    expect((await load(withMain)).cmd).toEqual(["node", "lib/entry.js"]);
    const withServer = await appDir({ "package.json": packageJson({ name: "s" }), "server.js": "", "index.js": "" });
    expect((await load(withServer)).cmd).toEqual(["node", "server.js"]);
  });

  it("drop the npm scope from the name and lowercase it", async () => {
    const scoped = await appDir({ "package.json": packageJson({ name: "@acme/shop", scripts: { start: "node server.js" } }) });
    expect((await load(scoped)).name).toBe("shop");
    const upper = await appDir({ "package.json": packageJson({ name: "MyShop", scripts: { start: "node server.js" } }) });
    expect((await load(upper)).name).toBe("myshop");
  });

  it("keep start script arguments, quoted ones too", async () => {
    const dir = await appDir({
      "package.json": packageJson({ name: "args", scripts: { start: `node --enable-source-maps dist/main.js --title "my shop"` } }),
    });
    expect((await load(dir)).cmd).toEqual(["node", "--enable-source-maps", "dist/main.js", "--title", "my shop"]);
  });

  it("report a start script that needs a shell, naming the feature and what to do", async () => {
    const dir = await appDir({ "package.json": packageJson({ name: "twostep", scripts: { start: "node a.js && node b.js" } }) });
    const error = await specError(dir);
    // The detection problem comes first (a generic "cmd: required" may follow it).
    expect(error.problems[0]).toContain("scripts.start: 'node a.js && node b.js'");
    expect(error.problems[0]).toContain("'&'");
    expect(error.problems[0]).toMatch(/no shell/);
    expect(error.problems[0]).toMatch(/set cmd: in kiln\.yml/);
    // No kiln.yml: the problem is reported against the app directory.
    expect(error.message).toMatch(new RegExp(`^${escapeRegExp(dir)} has \\d+ problems?:\n  - scripts\\.start: `));
    expect(error.exitCode).toBe(2);
  });

  it("report a start script that does not run node, with a hint how to write cmd", async () => {
    const dir = await appDir({ "package.json": packageJson({ name: "nextapp", scripts: { start: "next start -p 8080" } }) });
    const error = await specError(dir);
    expect(error.problems[0]).toMatch(
      /^scripts\.start: 'next start -p 8080' runs 'next', not node; set cmd: in kiln\.yml, e\.g\. \[node, node_modules\//,
    );
    expect(error.problems.slice(1).every((p) => p.startsWith("cmd: "))).toBe(true);
  });

  it("report a missing entry point", async () => {
    const dir = await appDir({ "package.json": packageJson({ name: "empty" }) });
    const error = await specError(dir);
    expect(error.problems[0]).toMatch(/^cmd: package\.json has no scripts\.start and no main.*set cmd: in kiln\.yml/);
    expect(error.problems.every((p) => p.startsWith("cmd: "))).toBe(true);
  });

  it("refuse a package.json that is not JSON", async () => {
    const dir = await appDir({ "package.json": "{ name: shop" });
    const error = await inputError(dir);
    expect(error).not.toBeInstanceOf(SpecError);
    expect(error.message).toMatch(/package\.json is not valid JSON/);
    expect(error.hint).toMatch(/package\.json/);
  });

  it("take the app name from kiln.yml over package.json when package.json has none", async () => {
    const dir = await appDir({ "package.json": packageJson({ scripts: { start: "node server.js" } }), "kiln.yml": "name: fromyml\n" });
    expect((await load(dir)).name).toBe("fromyml");
  });

  it("need a name from somewhere", async () => {
    const dir = await appDir({ "package.json": packageJson({ scripts: { start: "node server.js" } }) });
    const error = await specError(dir);
    expect(error.problems).toEqual([expect.stringMatching(/^name: required/)]);
  });
});

describe("kiln.yml and flags", () => {
  const ymlApp = () =>
    appDir({
      "package.json": packageJson({ name: "shop", version: "1.0.0", scripts: { start: "node server.js" } }),
      "kiln.yml": [
        "name: storefront",
        "version: 2.0.0-beta.1",
        "cmd: node dist/server.js --port 3000",
        "port: 3000",
        "env:",
        "  NODE_ENV: production",
        "  WORKERS: 4",
        "  DEBUG: false",
        "healthcheck:",
        "  path: /healthz",
        "  timeout: 30",
        "kernel:",
        "  package: linux-image-amd64",
        "resources:",
        "  memory: 1024",
        "  cpus: 2",
        "packages: [libvips42, ca-certificates]",
        "stopTimeout: 25",
        "restarts:",
        "  maxQuickExits: 3",
        "  window: 60",
        "node:",
        '  version: "22"',
        "",
      ].join("\n"),
    });

  it("override what was detected, setting by setting", async () => {
    const spec = await load(await ymlApp());
    expect(spec).toMatchObject({
      name: "storefront",
      version: "2.0.0-beta.1",
      baker: "node",
      cmd: ["node", "dist/server.js", "--port", "3000"],
      port: 3000,
      env: { NODE_ENV: "production", WORKERS: "4", DEBUG: "false" },
      healthcheck: { path: "/healthz", timeoutSeconds: 30 },
      kernel: { package: "linux-image-amd64" },
      resources: { memoryMiB: 1024, cpus: 2 },
      packages: ["libvips42", "ca-certificates"],
      stopTimeoutSeconds: 25,
      restarts: { maxQuickExits: 3, windowSeconds: 60 },
      node: { version: "22" },
    });
  });

  it("are overridden by flags", async () => {
    const spec = await load(await ymlApp(), { name: "flagname", version: "9.9.9", cmd: "node other.js", port: "9090" });
    expect(spec).toMatchObject({ name: "flagname", version: "9.9.9", cmd: ["node", "other.js"], port: 9090 });
  });

  it("read seccomp as on/off/true/false, on by default, and refuse anything else", async () => {
    const packageFile = packageJson({ name: "sc", scripts: { start: "node server.js" } });
    const withSeccomp = async (line: string) => load(await appDir({ "package.json": packageFile, "kiln.yml": line }));
    expect((await withSeccomp("")).seccomp).toBe(true);
    for (const [value, expected] of [
      ["off", false],
      ["false", false],
      ["on", true],
      ["true", true],
      ['"off"', false],
    ] as const) {
      expect((await withSeccomp(`seccomp: ${value}\n`)).seccomp, value).toBe(expected);
    }
    const dir = await appDir({ "package.json": packageFile, "kiln.yml": "seccomp: maybe\n" });
    expect((await specError(dir)).problems).toEqual(["seccomp: 'maybe' must be on or off"]);
  });

  it("read kernel: debian, minimal, a package, or --kernel; refuse anything else naming the choices", async () => {
    const packageFile = packageJson({ name: "k", scripts: { start: "node server.js" } });
    const withKernel = async (yml: string, overrides: SpecOverrides = {}) =>
      load(await appDir({ "package.json": packageFile, "kiln.yml": yml }), overrides);
    expect((await withKernel("kernel: minimal\n")).kernel).toEqual({ kind: "minimal" });
    expect((await withKernel("kernel: debian\n")).kernel).toEqual({ kind: "debian", package: DEFAULTS.kernelPackage });
    expect((await withKernel("kernel: { package: linux-image-6.1.0-9-cloud-amd64 }\n")).kernel).toEqual({
      kind: "debian",
      package: "linux-image-6.1.0-9-cloud-amd64",
    });
    expect((await withKernel("kernel: debian\n", { kernel: "minimal" })).kernel).toEqual({ kind: "minimal" });
    const dir = await appDir({ "package.json": packageFile, "kiln.yml": "kernel: tiny\n" });
    expect((await specError(dir)).problems).toEqual(["kernel: 'tiny' must be debian or minimal (or a mapping with package:)"]);
    expect((await specError(dir, { kernel: "small" })).problems).toEqual([
      "--kernel: 'small' must be debian or minimal (or a mapping with package:)",
    ]);
    const listed = await appDir({ "package.json": packageFile, "kiln.yml": "kernel: [minimal]\n" });
    expect((await specError(listed)).problems).toEqual(["kernel: must be debian, minimal, or a mapping with package:"]);
  });

  it("accept cmd as a list", async () => {
    const dir = await appDir({
      "package.json": packageJson({ name: "list", scripts: { start: "node server.js" } }),
      "kiln.yml": 'cmd: [node, "server.js", --title, "a && b"]\n',
    });
    expect((await load(dir)).cmd).toEqual(["node", "server.js", "--title", "a && b"]);
  });

  it("report bad flags against the flag name", async () => {
    const dir = await appDir({ "package.json": packageJson({ name: "flags", scripts: { start: "node server.js" } }) });
    const error = await specError(dir, { port: "http", cmd: "node a.js | tee", name: "Bad Name" });
    expect(error.problems).toEqual([
      expect.stringMatching(/^--name: 'Bad Name' must be lowercase/),
      expect.stringMatching(/^--cmd: 'node a\.js \| tee' uses the shell feature '\|'/),
      "--port: 'http' must be a TCP port number from 1 to 65535",
    ]);
  });

  it("report a kiln.yml with several problems in one SpecError, each with its path", async () => {
    const dir = await appDir({
      "package.json": packageJson({ name: "shop", scripts: { start: "node server.js" } }),
      "kiln.yml": [
        "name: MyShop",
        "port: 70000",
        "colour: blue",
        "env:",
        "  1BAD: x",
        "  GOOD: fine",
        "healthcheck:",
        "  path: healthz",
        "",
      ].join("\n"),
    });
    const error = await specError(dir);
    expect(error.problems).toHaveLength(5);
    const expected = [
      /^colour: unknown setting \(known: name, version, .*\)$/,
      /^name: 'MyShop' must be lowercase letters, digits/,
      /^port: '70000' must be a TCP port number from 1 to 65535$/,
      /^env\.1BAD: not a valid environment variable name$/,
      /^healthcheck\.path: 'healthz' must start with \/ and hold only URL path characters/,
    ];
    for (const pattern of expected) expect(error.problems).toContainEqual(expect.stringMatching(pattern));
    // One message, headed by the kiln.yml path, one "  - " line per problem.
    const lines = error.message.split("\n");
    expect(lines[0]).toBe(`${path.join(dir, "kiln.yml")} has 5 problems:`);
    expect(lines.slice(1)).toEqual(error.problems.map((p) => `  - ${p}`));
    expect(error.exitCode).toBe(2);
  });

  it("report wrongly typed settings with their paths", async () => {
    const dir = await appDir({
      "package.json": packageJson({ name: "shop", scripts: { start: "node server.js" } }),
      "kiln.yml": [
        "resources:",
        "  memory: lots",
        "  cpus: 0",
        "healthcheck: /healthz",
        "restarts:",
        "  window: -5",
        "packages: [Not_A_Package]",
        "stopTimeout: 2.5",
        "env:",
        "  KILN_ENV: prod",
        "  EMPTY:",
        "cmd: []",
        "",
      ].join("\n"),
    });
    const error = await specError(dir);
    expect(error.problems).toEqual(
      expect.arrayContaining([
        "resources.memory: 'lots' must be a whole number from 64 to 1048576",
        "resources.cpus: '0' must be a whole number from 1 to 128",
        "healthcheck: '/healthz' must be a mapping",
        "restarts.window: '-5' must be a whole number from 1 to 86400",
        "packages[0]: 'Not_A_Package' must be a Debian package name (lowercase letters, digits, '+', '-' and '.')",
        "stopTimeout: '2.5' must be a whole number from 1 to 3600",
        "env.KILN_ENV: KILN_* variables are set by kiln",
        "env.EMPTY: must be a string, number or boolean",
        "cmd: must be a command string or a non-empty list of strings",
      ]),
    );
    expect(error.problems).toHaveLength(9);
  });

  it("report invalid YAML as a SpecError naming kiln.yml", async () => {
    const dir = await appDir({
      "package.json": packageJson({ name: "shop", scripts: { start: "node server.js" } }),
      "kiln.yml": "name: shop\nport: [8080\n",
    });
    const error = await specError(dir);
    expect(error.problems).toEqual([
      expect.stringMatching(/^not valid YAML at line 2, column 12 \(the end of the file\): .*: port: \[8080$/),
    ]);
    expect(error.message.split("\n")[0]).toBe(`${path.join(dir, "kiln.yml")} has 1 problem:`);
  });

  it("report a kiln.yml that is not a mapping", async () => {
    const dir = await appDir({
      "package.json": packageJson({ name: "shop", scripts: { start: "node server.js" } }),
      "kiln.yml": "- name: shop\n",
    });
    const error = await specError(dir);
    expect(error.problems).toEqual([expect.stringMatching(/top level must be a mapping/)]);
  });

  it("treat an empty kiln.yml like none", async () => {
    const dir = await appDir({
      "package.json": packageJson({ name: "shop", scripts: { start: "node server.js" } }),
      "kiln.yml": "# nothing yet\n",
    });
    expect((await load(dir)).name).toBe("shop");
  });

  it("refuse an unknown baker", async () => {
    const dir = await appDir({ "package.json": packageJson({ name: "shop" }), "kiln.yml": "baker: cobol\n" });
    const error = await inputError(dir);
    expect(error.message).toMatch(/baker: 'cobol' is not one of node, .*native/);
  });

  // The scripts.start problem tells the user to set cmd:, so an explicit cmd must silence it.
  it("accept an unusable start script once kiln.yml sets cmd:", async () => {
    const dir = await appDir({
      "package.json": packageJson({ name: "nextapp", scripts: { start: "next start" } }),
      "kiln.yml": "cmd: [node, node_modules/next/dist/bin/next, start]\n",
    });
    expect((await load(dir)).cmd).toEqual(["node", "node_modules/next/dist/bin/next", "start"]);
  });
});

describe("native apps", () => {
  it("a directory with one x86-64 executable gets the native baker and cmd ./<file>", async () => {
    const dir = await appDir({ server: x86Exec(), "data.txt": "hello\n" }, "My App");
    const spec = await load(dir);
    expect(spec).toMatchObject({
      baker: "native",
      cmd: ["./server"],
      name: "my-app",
      version: "0.1.0",
      port: undefined,
      appFile: undefined,
    });
  });

  it("a single executable as the target: its directory is the app dir and it is the command", async () => {
    const dir = await appDir({ "prog-1.0": x86Exec(), "other.bin": x86Exec() });
    const spec = await load(path.join(dir, "prog-1.0"), { port: "8080" });
    expect(spec).toMatchObject({
      baker: "native",
      appDir: dir,
      appFile: path.join(dir, "prog-1.0"),
      cmd: ["./prog-1.0"],
      name: "prog-1.0",
      port: 8080,
    });
  });

  it("needs cmd: when the directory holds several executables", async () => {
    const dir = await appDir({ a: x86Exec(), b: x86Exec() });
    const error = await specError(dir);
    expect(error.problems).toEqual([expect.stringMatching(/^cmd: required for a native app/)]);
    const spec = await load(dir, { cmd: "./b --fast" });
    expect(spec.cmd).toEqual(["./b", "--fast"]);
  });

  it("needs cmd: when baker: native is forced on a directory without executables", async () => {
    const dir = await appDir({ "kiln.yml": "baker: native\nname: forced\n", README: "no binaries here\n" });
    const error = await specError(dir);
    expect(error.problems).toEqual([expect.stringMatching(/^cmd: required for a native app/)]);
  });

  it("ignores shared libraries and object files when looking for the executable", async () => {
    const dir = await appDir({
      server: x86Exec(),
      "libfoo.so": buildElf({ type: ET.DYN, soname: "libfoo.so" }),
      "main.o": buildElf({ type: ET.REL, programHeaders: false }),
    });
    expect((await load(dir)).cmd).toEqual(["./server"]);
  });

  it("a directory with package.json and an ELF file is a Node app", async () => {
    const dir = await appDir({ "package.json": packageJson({ name: "mixed", scripts: { start: "node server.js" } }), tool: x86Exec() });
    expect((await load(dir)).baker).toBe("node");
  });
});

describe("bad targets", () => {
  it("a missing path is an InputError with a hint, not a SpecError", async () => {
    const error = await inputError(path.join(root, "does-not-exist"));
    expect(error).not.toBeInstanceOf(SpecError);
    expect(error.message).toMatch(/does-not-exist does not exist/);
    expect(error.hint).toMatch(/package\.json/);
    expect(error.exitCode).toBe(2);
  });

  it("an empty directory is an InputError naming package.json and ELF executables", async () => {
    const dir = await appDir({});
    const error = await inputError(dir);
    expect(error).not.toBeInstanceOf(SpecError);
    expect(error.message).toContain(dir);
    expect(error.message).toMatch(/package\.json/);
    expect(error.message).toMatch(/ELF/);
    expect(error.hint).toBeTruthy();
  });

  it("a single file that is not an executable is not an app", async () => {
    const dir = await appDir({ "notes.txt": "hello\n" });
    const error = await inputError(path.join(dir, "notes.txt"));
    expect(error.message).toMatch(/ELF/);
  });
});

describe("the spec", () => {
  it("is deeply frozen", async () => {
    const dir = await appDir({
      "package.json": packageJson({ name: "frozen", scripts: { start: "node server.js" } }),
      "kiln.yml": "env:\n  A: b\npackages: [libvips42]\n",
    });
    const spec = await load(dir);
    for (const part of [spec, spec.cmd, spec.env, spec.healthcheck, spec.kernel, spec.resources, spec.packages, spec.restarts, spec.node]) {
      expect(Object.isFrozen(part)).toBe(true);
    }
    expect(() => {
      (spec as { name: string }).name = "changed";
    }).toThrow(TypeError);
    expect(() => (spec.cmd as string[]).push("--more")).toThrow(TypeError);
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

describe("single-instance environments", () => {
  const parse = (prod: Record<string, unknown>) =>
    parseEnvironments({ prod: { target: "aws", region: "eu-west-1", mode: "single-instance", ...prod } }, "shop", "/healthz", "kiln.yml");
  const problems = (prod: Record<string, unknown>): string => {
    try {
      parse(prod);
    } catch (e) {
      if (e instanceof SpecError) return e.problems.join("\n");
      throw e;
    }
    return "";
  };

  it("run one instance by default, in any number of availability zones", () => {
    expect(parse({ subnets: ["subnet-1"] }).get("prod")).toMatchObject({
      mode: "single-instance",
      instances: 1,
      min: 1,
      max: 1,
      subnets: ["subnet-1"],
    });
  });

  it("refuse more than one instance and point at load-balanced", () => {
    expect(problems({ instances: 2 })).toMatch(
      /environments\.prod\.instances: a single-instance environment runs exactly 1 instance \(got 2\); use mode: load-balanced/,
    );
    expect(problems({ max: 3 })).toMatch(
      /environments\.prod: a single-instance environment has min: 1 and max: 1 \(got min 1, max 3\); use mode: load-balanced/,
    );
    expect(problems({ min: 0 })).toMatch(/got min 0, max 1/);
  });

  it("keep the load-balanced default of two instances", () => {
    const envs = parseEnvironments({ prod: { target: "aws", region: "eu-west-1" } }, "shop", "/", "kiln.yml");
    expect(envs.get("prod")).toMatchObject({ mode: "load-balanced", instances: 2 });
  });
});
