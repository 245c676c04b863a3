// Issue 18 item 12: a mistyped command gets the suggestion, not the whole help.
import { afterEach, describe, expect, it, vi } from "vitest";
import { main } from "../../src/cli/main.js";

afterEach(() => vi.restoreAllMocks());

async function run(...args: string[]): Promise<{ code: number; stderr: string; stdout: string }> {
  let stderr = "";
  let stdout = "";
  vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  const code = await main(["node", "kiln", ...args]);
  return { code, stderr, stdout };
}

describe("kiln with a mistyped command", () => {
  it("names the command it probably meant and how to list them, without printing the whole help", async () => {
    const { code, stderr, stdout } = await run("promot", "shop:1.0", "--env", "dev");
    expect(code).toBe(2);
    expect(stderr).toContain("unknown command 'promot'");
    expect(stderr).toContain("Did you mean promote?");
    expect(stderr).toContain("kiln --help");
    expect(stderr + stdout).not.toContain("Commands:");
    expect(stderr.split("\n").length).toBeLessThan(6);
  });

  it("still prints a command's usage when its arguments are wrong", async () => {
    const { code, stderr } = await run("promote", "--env", "dev");
    expect(code).toBe(2);
    expect(stderr).toContain("missing required argument 'ref'");
    expect(stderr).toContain("Usage: kiln promote");
  });
});

describe("--app's help", () => {
  it("says where the default really comes from: the --config directory's kiln.yml name:, package.json, the directory", async () => {
    const { buildProgram } = await import("../../src/cli/main.js");
    const promote = buildProgram().commands.find((c) => c.name() === "promote")!;
    const app = promote.options.find((o) => o.long === "--app")!;
    expect(app.description).toMatch(/name: in the --config directory's kiln\.yml/);
    expect(app.description).toMatch(/package\.json/);
  });
});

describe("environment commands on a kiln.yml with a typo", () => {
  it("show the typo, not 'cannot tell which app' (issue 18 item 11)", async () => {
    const { mkdtemp, writeFile, rm } = await import("node:fs/promises");
    const os = await import("node:os");
    const path = await import("node:path");
    const dir = await mkdtemp(path.join(os.tmpdir(), "kiln-cli-typo-"));
    try {
      await writeFile(path.join(dir, "package.json"), JSON.stringify({ name: "shop", main: "server.js" }));
      await writeFile(path.join(dir, "server.js"), "");
      await writeFile(path.join(dir, "kiln.yml"), "environments:\n  dev:\n    instnaces: 1\n");
      const { code, stderr } = await run("status", "--env", "dev", "--config", dir);
      expect(code).toBe(2);
      expect(stderr).toContain("environments.dev.instnaces: unknown setting; did you mean instances?");
      expect(stderr).not.toContain("cannot tell which app");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
