// kiln run's Docker-style flags through the real CLI (issue 18, item 12): -d, -e NAME (the host's
// value) and --env-file are accepted, and their values are checked before anything is looked up
// or booted, every problem at once.
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { cli, freshHome } from "./harness.js";

describe("kiln run -d -e NAME --env-file", () => {
  it("checks -e NAME against the host and --env-file's lines, naming file and line, before looking for the image", async () => {
    const home = freshHome();
    const dir = mkdtempSync(path.join(os.tmpdir(), "kiln-env-file-"));
    const file = path.join(dir, "app.env");
    writeFileSync(file, "# app settings\nGREETING=hello\nBAD-NAME=1\n");
    const env: Record<string, string> = { KILN_HOME: home.root, FROM_HOST: "yes" };
    const result = await cli(["run", "nothing:1.0.0", "-d", "-e", "FROM_HOST", "-e", "KILN_TEST_UNSET_VARIABLE", "--env-file", file], env);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`${file}:3 BAD-NAME: not a valid environment variable name`);
    expect(result.stderr).toContain("-e KILN_TEST_UNSET_VARIABLE: KILN_TEST_UNSET_VARIABLE is not set in this shell");
    expect(result.stderr).not.toContain("FROM_HOST");
    // With good values the run gets as far as the image.
    const good = await cli(["run", "nothing:1.0.0", "-d", "-e", "FROM_HOST", "--env-file", file.replace("app.env", "ok.env")], env);
    expect(good.stderr).toContain("no such file");
    writeFileSync(path.join(dir, "ok.env"), "GREETING=hello\n");
    const found = await cli(["run", "nothing:1.0.0", "-d", "-e", "FROM_HOST", "--env-file", path.join(dir, "ok.env")], env);
    expect(found.stderr).toMatch(/nothing:1\.0\.0 is not in the local store/);
  });
});
