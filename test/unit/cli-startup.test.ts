/**
 * Issue 16: the CLI loads only what the chosen command needs. Importing the AWS SDK clients alone
 * costs over a second, so commands that never talk to AWS (--version, --help, bake, run, images, ps)
 * must not load @aws-sdk/* at all. Each case runs the built CLI (bin/kiln.js, dist/: `npm test`
 * compiles first) under a module hook that records every resolved URL, then looks at the list;
 * nothing here measures time (bench/ does).
 */
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const repo = path.resolve(import.meta.dirname, "../..");
const hook = path.join(repo, "test", "fixtures", "startup", "record-loads.mjs");

let scratch: string;

beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), "kiln-cli-startup-"));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

interface Loaded {
  code: number | null;
  stdout: string;
  stderr: string;
  urls: string[];
}

let runs = 0;

/** Runs `kiln ARGS` with an empty KILN_HOME and no AWS configuration; returns its output and the modules it resolved. */
function kiln(...args: string[]): Promise<Loaded> {
  const log = path.join(scratch, `loads-${++runs}.txt`);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    KILN_HOME: path.join(scratch, `home-${runs}`),
    KILN_TEST_LOAD_LOG: log,
    AWS_CONFIG_FILE: path.join(scratch, "no-aws-config"),
    AWS_SHARED_CREDENTIALS_FILE: path.join(scratch, "no-aws-credentials"),
  };
  for (const name of ["AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"]) delete env[name];
  return new Promise((resolve, reject) => {
    // "--" as in bin/kiln.js's #! line.
    const child = spawn(process.execPath, ["--import", hook, "--", path.join(repo, "bin", "kiln.js"), ...args], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      readFile(log, "utf8").then((text) => resolve({ code, stdout, stderr, urls: text.split("\n").filter(Boolean) }), reject);
    });
  });
}

/** The @aws-sdk packages among the resolved URLs (client-ec2, …). */
const awsModules = (urls: string[]) => [
  ...new Set(urls.filter((u) => u.includes("/@aws-sdk/")).map((u) => u.replace(/.*\/@aws-sdk\/([^/]+)\/.*/, "$1"))),
];

describe("kiln loads the AWS SDK only for commands that talk to AWS", () => {
  it.each([
    [["--version"], "0.1.0"],
    [["--help"], "Usage: kiln"],
    [["bake", "--help"], "Usage: kiln bake"],
    [["run", "--help"], "Usage: kiln run"],
    [["images"], "no images yet"],
    [["ps"], "HYPERVISOR"],
  ])("kiln %j loads no @aws-sdk module", async (args, expected) => {
    const r = await kiln(...args);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(expected);
    // The hook saw the CLI's own modules: an empty list would pass for the wrong reason.
    expect(r.urls.some((u) => u.endsWith("/dist/src/cli/main.js"))).toBe(true);
    expect(awsModules(r.urls)).toEqual([]);
  });

  it("kiln logs of a local VM loads no @aws-sdk module", async () => {
    const r = await kiln("logs", "no-such-vm");
    expect(r.stderr).toContain("no VM, running or stopped, matches 'no-such-vm'");
    expect(r.code).toBe(6);
    expect(awsModules(r.urls)).toEqual([]);
  });

  it("still describes the AWS commands without loading the SDK", async () => {
    const r = await kiln("amis", "--help");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("Usage: kiln amis");
    expect(awsModules(r.urls)).toEqual([]);
  });

  it("loads it when a command needs AWS (and then says what is missing)", async () => {
    const r = await kiln("amis");
    expect(r.stderr).toContain("no AWS region given");
    expect(r.code).toBe(2);
    expect(awsModules(r.urls)).toContain("client-ec2");
  });
});
