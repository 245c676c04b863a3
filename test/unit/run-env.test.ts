// kiln run's environment flags as Docker has them (issue 18, item 12): -e NAME passes the host's
// value (an error when the host has none), --env-file FILE reads KEY=VALUE lines with # comments,
// and everything goes through the same checks as -e NAME=value.
import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { bootEnv, parseEnvFile, parseEnvFlags } from "../../src/run/seed.js";

function problems(work: () => unknown): string[] {
  try {
    work();
  } catch (error) {
    expect(error).toBeInstanceOf(InputError);
    return (error as InputError).message.split("\n");
  }
  throw new Error("expected an InputError");
}

describe("-e NAME", () => {
  it("takes the host's value, as docker run -e NAME does", () => {
    expect(parseEnvFlags(["TOKEN", "MODE=x"], { TOKEN: "from-host" })).toEqual({ TOKEN: "from-host", MODE: "x" });
    expect(parseEnvFlags(["EMPTY"], { EMPTY: "" })).toEqual({ EMPTY: "" });
  });

  it("is an error when the host has no such variable, and the host's value is checked like any other", () => {
    expect(problems(() => parseEnvFlags(["MISSING", "BAD", "1X"], { BAD: "a\nb" }))).toEqual([
      "-e MISSING: MISSING is not set in this shell (-e NAME passes the host's value); set it, or pass -e MISSING=value",
      "-e BAD: contains a newline",
      "-e 1X: not a valid environment variable name",
    ]);
  });
});

describe("--env-file", () => {
  it("reads KEY=VALUE lines, skips comments and blank lines, keeps '=' and quotes in values, takes KEY alone from the host", () => {
    const text = '# settings\nGREETING=hello world\n\n  URL=postgres://u:p@h/db?x=1\nQUOTED="as is"\nFROM_HOST\r\nCRLF=yes\r\n';
    expect(parseEnvFile(text, "app.env", { FROM_HOST: "h" })).toEqual({
      GREETING: "hello world",
      URL: "postgres://u:p@h/db?x=1",
      QUOTED: '"as is"',
      FROM_HOST: "h",
      CRLF: "yes",
    });
  });

  it("names the file and line of every bad entry at once", () => {
    expect(problems(() => parseEnvFile("OK=1\n=x\nBAD-NAME=1\nKILN_X=1\nUNSET\nTAB=a\tb\n", "app.env", {}))).toEqual([
      "app.env:2: expected NAME=value with NAME made of letters, digits and _",
      "app.env:3 BAD-NAME: not a valid environment variable name",
      "app.env:4 KILN_X: KILN_* variables are set by kiln",
      "app.env:5 UNSET: UNSET is not set in this shell (a line without '=' passes the host's value); set it, or write UNSET=value",
      "app.env:6 TAB: contains a tab",
    ]);
  });

  it("-e wins over --env-file, as in Docker; KILN_ENV comes from --kiln-env", () => {
    expect(bootEnv("dev", ["A=flag"], [{ name: "f.env", text: "A=file\nB=file\n" }], {})).toEqual({
      KILN_ENV: "dev",
      A: "flag",
      B: "file",
    });
  });
});
