// Bad input for the bakers, through the real CLI (bin/kiln.js, so dist/ must be built): each
// case must end in one "kiln: error:" paragraph that says what is wrong and names the fix, with
// exit code 2 (input error), and no image. No VM is booted. Package downloads go to the shared
// test home.
import { execFileSync } from "node:child_process";
import { cp, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cli, repo, sharedHome } from "./harness.js";

const home = sharedHome();
const env = { KILN_HOME: home.root };

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `kiln-${prefix}-`));
  dirs.push(dir);
  return dir;
}

/** The error paragraph: from "kiln: error:" to the end, with its hint line. */
function errorOf(result: { code: number | null; stderr: string }): { message: string; hint: string } {
  const start = result.stderr.indexOf("kiln: error: ");
  expect(start, `no "kiln: error:" in stderr:\n${result.stderr}`).toBeGreaterThanOrEqual(0);
  const block = result.stderr.slice(start).trimEnd();
  const hintAt = block.lastIndexOf("\n  hint: ");
  expect(hintAt, `no hint in:\n${block}`).toBeGreaterThan(0);
  expect(block).not.toMatch(/\n\s+at .+:\d+:\d+\)?$/m);
  return { message: block.slice(0, hintAt), hint: block.slice(hintAt + "\n  hint: ".length) };
}

describe.sequential("bakers: bad input", () => {
  it("a jar without Main-Class: names the manifest attribute and how to set it or the cmd", async () => {
    const dir = await tempDir("jar");
    await mkdir(path.join(dir, "src", "lib"), { recursive: true });
    await writeFile(
      path.join(dir, "src", "lib", "Util.java"),
      "package lib;\npublic final class Util { public static int one() { return 1; } }\n",
    );
    execFileSync("javac", ["--release", "17", "-d", path.join(dir, "classes"), path.join(dir, "src", "lib", "Util.java")]);
    execFileSync("jar", ["--create", "--file", path.join(dir, "util-1.0.jar"), "-C", path.join(dir, "classes"), "."]);
    const result = await cli(["bake", path.join(dir, "util-1.0.jar")], env);
    expect(result.code).toBe(2);
    const { message } = errorOf(result);
    expect(message).toContain("util-1.0.jar has no Main-Class in META-INF/MANIFEST.MF");
    expect(message).toContain("--main-class");
    expect(message).toContain("cmd: [java, -cp, util-1.0.jar, com.example.Main]");
  }, 120_000);

  it("a requirements.txt that cannot resolve: names the requirement and how to check and fix it", async () => {
    const dir = await tempDir("py");
    await writeFile(path.join(dir, "app.py"), "print('never runs')\n");
    await writeFile(path.join(dir, "requirements.txt"), "packaging==24.1\nkiln-no-such-project-zz9==1.0\n");
    const result = await cli(["bake", dir], env);
    expect(result.code).toBe(2);
    const { message, hint } = errorOf(result);
    expect(message).toContain("pip found nothing to install for kiln-no-such-project-zz9==1.0");
    expect(message).toContain("No matching distribution found");
    expect(hint).toContain("pip index versions kiln-no-such-project-zz9");
    expect(hint).toContain("wheels only");
  }, 600_000);

  it("requirements.txt lines that need a source build: every one listed with its line number", async () => {
    const dir = await tempDir("py-src");
    await writeFile(path.join(dir, "app.py"), "print('never runs')\n");
    await writeFile(path.join(dir, "requirements.txt"), "-e ./mylib\ngit+https://example.invalid/repo.git#egg=thing\nflask==3.0.3\n");
    const result = await cli(["bake", dir], env);
    expect(result.code).toBe(2);
    const { message, hint } = errorOf(result);
    expect(message).toContain("requirements.txt:1: '-e ./mylib' is an editable install");
    expect(message).toContain("requirements.txt:2: 'git+https://example.invalid/repo.git#egg=thing' is a version-control checkout");
    expect(hint).toContain("wheels");
  }, 600_000);

  it("a Node app whose engines.node matches no published Node: names engines.node and a range to use", async () => {
    const dir = await tempDir("node");
    await writeFile(
      path.join(dir, "package.json"),
      JSON.stringify({ name: "future", version: "1.0.0", main: "server.js", engines: { node: ">=99" } }),
    );
    await writeFile(path.join(dir, "server.js"), "console.log('never runs')\n");
    const result = await cli(["bake", dir], env);
    expect(result.code).toBe(2);
    const { message, hint } = errorOf(result);
    expect(message).toContain("engines.node '>=99' matches no published Node.js release");
    expect(hint).toContain("change engines.node in package.json");
  }, 120_000);

  it("a native addon whose install script npm did not run: names npm install-scripts approve and ignore-scripts", async () => {
    const dir = await tempDir("addon");
    await cp(path.join(repo, "examples", "node-addon"), dir, {
      recursive: true,
      filter: (src) => !/node_modules|kiln\.lock|\/build$/.test(src),
    });
    // npm 11 skips unapproved dependency install scripts; ignore-scripts skips them all, the same way.
    await writeFile(path.join(dir, ".npmrc"), "ignore-scripts=true\n");
    const result = await cli(["bake", dir], env);
    expect(result.code).toBe(2);
    const { message, hint } = errorOf(result);
    expect(message).toContain("native addon kiln-probe-addon did not compile during npm install");
    expect(hint).toContain("npm install-scripts approve kiln-probe-addon");
    expect(hint).toContain("ignore-scripts");
  }, 600_000);

  it("a TypeScript app baked before its build step: names the missing file and npm run build", async () => {
    const dir = await tempDir("esm");
    await cp(path.join(repo, "examples", "node-esm"), dir, { recursive: true, filter: (src) => !/\/dist$|kiln\.lock/.test(src) });
    const result = await cli(["bake", dir], env);
    expect(result.code).toBe(2);
    const { message } = errorOf(result);
    expect(message).toContain("scripts.start runs dist/server.js, which does not exist");
    expect(message).toContain("npm run build");
  }, 120_000);

  // Issue 18 item 11: each of these baked an image that could only crash at boot.
  const missingEntries: [what: string, files: Record<string, string>, expected: RegExp][] = [
    [
      "scripts.start runs a file that does not exist",
      { "package.json": JSON.stringify({ name: "a", scripts: { start: "node srv.js" } }), "server.js": "" },
      /package\.json scripts\.start \(node srv\.js\): srv\.js does not exist in .*kiln-entry-/,
    ],
    [
      "package.json main names a file that does not exist (index.js does)",
      { "package.json": JSON.stringify({ name: "a", main: "lib/app.js" }), "index.js": "" },
      /package\.json main: lib\/app\.js does not exist in .*kiln-entry-/,
    ],
    [
      "kiln.yml's cmd runs a script that does not exist",
      {
        "package.json": JSON.stringify({ name: "a", main: "server.js" }),
        "server.js": "",
        "kiln.yml": "cmd: node --enable-source-maps dist/main.js\n",
      },
      /cmd: node --enable-source-maps dist\/main\.js: dist\/main\.js does not exist in .*kiln-entry-/,
    ],
    [
      "a Python script that does not exist",
      { "requirements.txt": "", "kiln.yml": "cmd: [python3, -u, srv.py]\n" },
      /cmd: python3 -u srv\.py: srv\.py does not exist in .*kiln-entry-/,
    ],
    [
      "a jar that does not exist",
      { "kiln.yml": "name: a\nbaker: java\ncmd: [java, -jar, target/app.jar]\n" },
      /cmd: java -jar target\/app\.jar: target\/app\.jar does not exist in .*kiln-entry-/,
    ],
  ];
  for (const [what, files, expected] of missingEntries) {
    it(`a start file that does not exist is refused before anything is fetched: ${what}`, async () => {
      const dir = await tempDir("entry");
      for (const [name, text] of Object.entries(files)) {
        await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
        await writeFile(path.join(dir, name), text);
      }
      const started = Date.now();
      const result = await cli(["bake", dir], env);
      expect(result.code, result.stderr).toBe(2);
      const { message, hint } = errorOf(result);
      expect(message).toMatch(expected);
      expect(hint).toMatch(/cmd|main/);
      // Refused from the files alone: no runtime download or disk work ran.
      expect(result.stderr).not.toContain("Runtime (");
      expect(Date.now() - started).toBeLessThan(20_000);
    }, 300_000);
  }
});
