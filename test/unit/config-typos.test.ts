// Issue 18 items 11 and 12: a mistyped key at any level of kiln.yml is refused with the key it
// probably meant, every problem at once; a YAML syntax error names a line that exists, with its text.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Baker } from "../../src/bake/baker.js";
import { loadBakers } from "../../src/bake/bakers.js";
import { loadEnvironment } from "../../src/config/environments.js";
import { loadSpec } from "../../src/config/load.js";
import { SpecError } from "../../src/errors.js";

let root: string;
let bakers: Baker[];
let n = 0;

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "kiln-typos-test-"));
  bakers = await loadBakers();
});
afterAll(() => rm(root, { recursive: true, force: true }));

/** A Node app (server.js exists) whose kiln.yml is exactly `text`. */
async function app(text: string): Promise<string> {
  const dir = path.join(root, `app${++n}`);
  await mkdir(dir);
  await writeFile(path.join(dir, "package.json"), JSON.stringify({ name: "shop", main: "server.js" }));
  await writeFile(path.join(dir, "server.js"), "");
  await writeFile(path.join(dir, "kiln.yml"), text);
  return dir;
}

async function problems(text: string): Promise<readonly string[]> {
  const error = await loadSpec(await app(text), {}, bakers).then(
    () => undefined,
    (e: unknown) => e,
  );
  if (error === undefined) return [];
  expect(error).toBeInstanceOf(SpecError);
  return (error as SpecError).problems;
}

describe("unknown keys at every level of kiln.yml", () => {
  it("are refused with the setting they probably meant, all at once", async () => {
    const found = await problems(
      [
        "name: shop",
        "helthcheck: { path: /health }",
        "resources: { memroy: 256 }",
        "environments:",
        "  dev:",
        "    instnaces: 1",
        "    healthcheck: { intervall: 2 }",
        "  prod:",
        "    target: aws",
        "    region: eu-west-1",
        "    https: { certificateArn: 'arn:aws:acm:eu-west-1:123456789012:certificate/abc', sslPolicyy: x }",
        "pipeline:",
        "  stages: [{ env: dev, sok: 30 }]",
        "  shedule: { cron: '0 3 * * 1' }",
      ].join("\n"),
    );
    expect(found).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^helthcheck: unknown setting; did you mean healthcheck\?/),
        expect.stringMatching(/^resources\.memroy: unknown setting; did you mean memory\?/),
        expect.stringMatching(/^environments\.dev\.instnaces: unknown setting; did you mean instances\?/),
        expect.stringMatching(/^environments\.dev\.healthcheck\.intervall: unknown setting; did you mean interval\?/),
        expect.stringMatching(/^environments\.prod\.https\.sslPolicyy: unknown setting; did you mean sslPolicy\?/),
        expect.stringMatching(/^pipeline\.stages\[0\]\.sok: unknown setting; did you mean soak\?/),
        expect.stringMatching(/^pipeline\.shedule: unknown setting; did you mean schedule\?/),
      ]),
    );
    expect(found).toHaveLength(7);
  });

  it("list the known settings when nothing is close", async () => {
    expect(await problems("name: shop\nenvironments:\n  dev:\n    zzzzzz: 1\n")).toEqual([
      expect.stringMatching(/^environments\.dev\.zzzzzz: unknown setting \(known: target, port, instances, /),
    ]);
  });

  it("are refused by promote's reading of the environments too", async () => {
    const dir = await app("name: shop\nenvironments:\n  dev:\n    instnaces: 1\n");
    await expect(loadEnvironment(dir, "shop", "/", "dev")).rejects.toThrow(
      /environments\.dev\.instnaces: unknown setting; did you mean instances\?/,
    );
  });

  it("every mapping of the schema with fixed keys refuses unknown ones", async () => {
    const { readFile } = await import("node:fs/promises");
    const schema = JSON.parse(await readFile(path.join(import.meta.dirname, "../../kiln.schema.json"), "utf8")) as object;
    const open: string[] = [];
    const visit = (node: unknown, at: string): void => {
      if (typeof node !== "object" || node === null) return;
      const obj = node as Record<string, unknown>;
      if (obj.properties !== undefined && obj.additionalProperties === undefined && !/\/(if|then)$/.test(at)) open.push(at);
      for (const [k, v] of Object.entries(obj)) visit(v, `${at}/${k}`);
    };
    visit(schema, "");
    expect(open).toEqual([]);
  });
});

describe("YAML syntax errors", () => {
  const cases: [string, string, RegExp][] = [
    [
      "an unclosed list, file ending with a newline",
      "name: shop\nport: [8080\n",
      /^not valid YAML at line 2, column 12 \(the end of the file\): .*end with a \].*: port: \[8080$/,
    ],
    [
      "an unclosed list, file ending without a newline",
      "name: shop\nport: [8080",
      /^not valid YAML at line 2, column 12 \(the end of the file\): .*end with a \].*: port: \[8080$/,
    ],
    [
      "an unclosed quote at the end",
      'name: shop\nenv:\n  A: "x\n',
      /^not valid YAML at line 3, column 8 \(the end of the file\): Missing closing "quote: {3}A: "x$/,
    ],
    ["an unclosed mapping in the middle", "name: shop\nenv: {A: 1\nport: 8080\n", /^not valid YAML at line \d, column \d+: .*: \S.*$/],
    [
      "a key indented by one space too few",
      "name: shop\nenv:\n  A: 1\n B: 2",
      /^not valid YAML at line 4, column \d: .*same column.*: {2}B: 2$/,
    ],
    ["a duplicate key", "name: shop\nname: cart\n", /^not valid YAML at line 2, column 1: Map keys must be unique: name: cart$/],
    ["a tab as indentation", "name: shop\nenv:\n\tA: 1\n", /^not valid YAML at line 3, column 1: .*[Tt]ab.*: \\tA: 1$/],
  ];
  for (const [what, text, expected] of cases) {
    it(`name a line that exists and its text: ${what}`, async () => {
      const found = await problems(text);
      expect(found.length).toBeGreaterThan(0);
      const lines = text.split("\n").length;
      for (const p of found) {
        expect(p).toMatch(/^not valid YAML at line \d+, column \d+( \(the end of the file\))?: /);
        expect(Number(/^not valid YAML at line (\d+)/.exec(p)![1])).toBeLessThanOrEqual(text.endsWith("\n") ? lines - 1 : lines);
        expect(p).not.toMatch(/:$/);
      }
      expect(found[0]).toMatch(expected);
    });
  }

  it("are reported the same way when promote reads the environments", async () => {
    const dir = await app("name: shop\nenvironments:\n  dev: {port: 8001\n");
    await expect(loadEnvironment(dir, "shop", "/", "dev")).rejects.toBeInstanceOf(SpecError);
  });
});
