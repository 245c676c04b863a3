// kiln config set/unset (issue 18, item 1): environments.E.env edited in place, comments and
// layout kept, the result validated before anything is written.
import { describe, expect, it } from "vitest";
import { editEnvironmentEnv, parseAssignments } from "../../src/config/env-edit.js";
import { InputError, SpecError } from "../../src/errors.js";

const yml = `# shop's kiln.yml
name: shop
port: 8080 # the app's port

environments:
  # local, two VMs
  dev:
    target: local
    port: 8000
    env:
      GREETING: hello # shown on /
      DEBUG: "1"
  prod:
    target: aws
    region: eu-west-1
`;

describe("editing environments.E.env", () => {
  it("sets and unsets values, keeping comments, order and the rest of the file", () => {
    const { text, changes } = editEnvironmentEnv(yml, "kiln.yml", "dev", { GREETING: "bonjour", LANG: "fr", N: "1" }, ["DEBUG"]);
    expect(changes).toEqual(["GREETING changed", "LANG added", "N added", "DEBUG removed"]);
    expect(text).toBe(
      yml
        .replace("GREETING: hello # shown on /", "GREETING: bonjour # shown on /")
        .replace('      DEBUG: "1"\n', '      LANG: fr\n      N: "1"\n'),
    );
  });

  it("adds env: to an environment that has none", () => {
    const { text } = editEnvironmentEnv(yml, "kiln.yml", "prod", { A: "x y" }, []);
    expect(text).toContain("  prod:\n    target: aws\n    region: eu-west-1\n    env:\n      A: x y\n");
  });

  it("writes the implicit default dev environment out with its defaults when kiln.yml has no environments", () => {
    const { text } = editEnvironmentEnv("name: shop\n", "kiln.yml", "dev", { A: "1" }, []);
    expect(text).toMatch(/^name: shop\nenvironments:\n {2}dev:\n {4}target: local\n {4}port: 8000\n/);
    expect(text).toContain('    env:\n      A: "1"\n');
  });

  it("refuses what the schema refuses, before writing, with the path", () => {
    expect(() => editEnvironmentEnv(yml, "kiln.yml", "dev", { KILN_X: "1" }, [])).toThrow(SpecError);
    try {
      editEnvironmentEnv(yml, "kiln.yml", "dev", { "bad-name": "1" }, []);
    } catch (e) {
      expect((e as SpecError).problems.join("\n")).toMatch(/environments\.dev\.env\.bad-name/);
    }
    expect(() => editEnvironmentEnv(yml, "kiln.yml", "staging", { A: "1" }, [])).toThrow(/environment 'staging' is not defined/);
  });

  it("an unset of a name that is not set changes nothing and says so", () => {
    expect(editEnvironmentEnv(yml, "kiln.yml", "dev", {}, ["NOPE"]).changes).toEqual([]);
  });
});

describe("KEY=VALUE arguments", () => {
  it("splits at the first =, values may hold = and be empty", () => {
    expect(parseAssignments(["A=1", "URL=postgres://u@h/db?x=y", "EMPTY="])).toEqual({ A: "1", URL: "postgres://u@h/db?x=y", EMPTY: "" });
  });
  it("refuses an argument without =", () => {
    expect(() => parseAssignments(["GREETING"])).toThrow(InputError);
    expect(() => parseAssignments(["GREETING"])).toThrow(/'GREETING' is not KEY=VALUE/);
  });
});
