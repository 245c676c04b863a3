/**
 * The region kiln uses when --region is not given: AWS_REGION, AWS_DEFAULT_REGION, then the
 * active profile's region in the shared config file, read by the SDK's own chain (a temporary
 * AWS_CONFIG_FILE and HOME stand in for ~/.aws/config).
 */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { resolveRegion } from "../../src/aws/clients.js";

const KEYS = ["AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "HOME"] as const;
let saved: Record<string, string | undefined>;
let dir: string;

/** A fresh config file per test: the SDK caches a file's contents by its path. */
function config(text: string): void {
  const file = path.join(dir, `config-${Math.random().toString(16).slice(2)}`);
  writeFileSync(file, text);
  process.env.AWS_CONFIG_FILE = file;
}

describe("resolveRegion", () => {
  beforeEach(() => {
    saved = Object.fromEntries(KEYS.map((k) => [k, process.env[k]]));
    for (const k of KEYS) delete process.env[k];
    dir = mkdtempSync(path.join(os.tmpdir(), "kiln-region-"));
    process.env.HOME = dir;
    process.env.AWS_SHARED_CREDENTIALS_FILE = path.join(dir, "credentials");
  });
  afterEach(() => {
    for (const k of KEYS) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  });

  it("takes the default profile's region from the config file", async () => {
    config("[default]\nregion = ap-south-1\n");
    expect(await resolveRegion(undefined)).toBe("ap-south-1");
  });

  it("takes the region of the profile AWS_PROFILE names", async () => {
    config("[default]\nregion = ap-south-1\n\n[profile dev]\nregion = eu-north-1\n");
    process.env.AWS_PROFILE = "dev";
    expect(await resolveRegion(undefined)).toBe("eu-north-1");
  });

  it("reads ~/.aws/config when AWS_CONFIG_FILE is not set", async () => {
    mkdirSync(path.join(dir, ".aws"));
    writeFileSync(path.join(dir, ".aws", "config"), "[default]\nregion = sa-east-1\n");
    expect(await resolveRegion(undefined)).toBe("sa-east-1");
  });

  it("lets the flag, then AWS_REGION, then AWS_DEFAULT_REGION win over the profile", async () => {
    config("[default]\nregion = ap-south-1\n");
    process.env.AWS_DEFAULT_REGION = "us-east-2";
    expect(await resolveRegion(undefined)).toBe("us-east-2");
    process.env.AWS_REGION = "us-west-2";
    expect(await resolveRegion(undefined)).toBe("us-west-2");
    expect(await resolveRegion("eu-west-3")).toBe("eu-west-3");
  });

  it("is undefined when nothing names a region", async () => {
    config("[default]\noutput = json\n");
    expect(await resolveRegion(undefined)).toBeUndefined();
  });
});
