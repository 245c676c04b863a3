// Property tests of the kiln.yml reader (issue 12): whatever YAML-ish document an app carries,
// loadSpec, parseEnvironments and parsePipeline either return a value or throw a SpecError /
// InputError (never a TypeError or a crash), and what they accept holds no control character
// in any string, so nothing they pass on can add a line to a file a writer produces.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Baker } from "../../src/bake/baker.js";
import { loadBakers } from "../../src/bake/bakers.js";
import { parseEnvironments } from "../../src/config/environments.js";
import { loadSpec } from "../../src/config/load.js";
import { InputError } from "../../src/errors.js";
import { parsePipeline } from "../../src/pipeline/config.js";
import { fuzzRuns } from "./helpers/fuzz-runs.js";

const CONTROL = /[\u0000-\u001f\u007f]/;
const RUNS = fuzzRuns();

/** Strings that are valid for some setting, alone or with a character that ends a line or a word appended. */
const VALID = [
  "/healthz",
  "/",
  "node server.js",
  "./server --listen 8080",
  "0 3 * * 1",
  "Mon *-*-* 03:00",
  "10%",
  "5m",
  "dev",
  "test",
  "prod",
  "eu-west-1",
  "t3.micro",
  "subnet-0abc",
  "vpc-1",
  "libpq5",
  "linux-image-cloud-amd64",
  "1.0.0",
  "shop",
  "20",
  "on",
  "off",
  "aws",
  "local",
  "{version}-r{n}",
  "poweroff",
  "restart",
  "KILN_ENV",
  "GREETING",
  "arn:aws:acm:eu-west-1:123456789012:certificate/abc",
];
const TAILS = [
  "",
  "",
  "",
  "",
  "",
  "",
  "\n",
  "\r\n",
  "\t",
  "\0",
  "\u007f",
  "\u001b",
  " ",
  "#",
  "'",
  '"',
  "%",
  "\\",
  "\nfrontend evil",
  "\u2028",
];
const hostileString = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.constantFrom(...VALID), fc.constantFrom(...TAILS)).map(([v, t]) => v + t) },
  { weight: 1, arbitrary: fc.string({ maxLength: 20 }) },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 20 }) },
);
const scalar = fc.oneof(
  hostileString,
  fc.integer({ min: 1, max: 10 }),
  fc.integer({ min: -5, max: 70000 }),
  fc.double({ noNaN: true }),
  fc.boolean(),
  fc.constant(null),
);
const envName = fc.oneof(fc.constantFrom("GREETING", "KILN_ENV", "PORT", "1BAD", "A-B", "_ok", "x\ny"), fc.string({ maxLength: 8 }));
const value = fc.oneof(
  { weight: 5, arbitrary: scalar },
  fc.array(scalar, { maxLength: 3 }),
  fc.dictionary(envName, scalar, { maxKeys: 3 }),
);

function optionalRecord(shape: Record<string, fc.Arbitrary<unknown>>): fc.Arbitrary<Record<string, unknown>> {
  return fc.record(shape, { requiredKeys: [] });
}

const health = optionalRecord({ path: hostileString, timeout: scalar, interval: scalar, healthyThreshold: scalar });
const environment = optionalRecord({
  target: fc.constantFrom("local", "aws", "gcp"),
  port: scalar,
  instances: scalar,
  env: fc.dictionary(envName, scalar, { maxKeys: 3 }),
  healthcheck: health,
  region: hostileString,
  subnets: fc.array(hostileString, { maxLength: 3 }),
  mode: fc.constantFrom("single-instance", "load-balanced", "x"),
  min: scalar,
  max: scalar,
  after: fc.array(hostileString, { maxLength: 2 }),
  keepReleases: scalar,
  https: optionalRecord({ certificateArn: hostileString }),
});
/** A valid section with one setting replaced: most cases then differ from accepted only in that one value. */
const VALID_ENVS = {
  dev: { target: "local", port: 8000, instances: 1, env: { GREETING: "hi" }, healthcheck: { path: "/healthz", interval: 1 } },
  prod: {
    target: "aws",
    region: "eu-west-1",
    subnets: ["subnet-1", "subnet-2"],
    min: 1,
    max: 3,
    instances: 2,
    after: ["dev"],
    https: { certificateArn: VALID.at(-1) },
  },
};
const ENV_PATHS = [
  "dev.port",
  "dev.env.GREETING",
  "dev.healthcheck.path",
  "dev.healthcheck.interval",
  "prod.region",
  "prod.subnets",
  "prod.min",
  "prod.mode",
  "prod.after",
  "prod.https.certificateArn",
  "prod.keepReleases",
  "prod.env",
  "dev.target",
];
function withValue(base: object, dotted: string, replacement: unknown): Record<string, unknown> {
  const copy = structuredClone(base) as Record<string, unknown>;
  const keys = dotted.split(".");
  let at = copy;
  for (const k of keys.slice(0, -1)) at = at[k] as Record<string, unknown>;
  at[keys.at(-1)!] = replacement;
  return copy;
}
const environments = fc.oneof(
  { weight: 3, arbitrary: fc.tuple(fc.constantFrom(...ENV_PATHS), value).map(([at, v]) => withValue(VALID_ENVS, at, v)) },
  fc.dictionary(fc.constantFrom("dev", "test", "prod", "Bad", "x\ny"), environment, { maxKeys: 3 }),
  value,
);
const stage = fc.oneof(
  hostileString,
  optionalRecord({ env: hostileString, soak: scalar, approval: scalar, checkInterval: scalar, canary: scalar, canaryFor: scalar }),
);
const pipeline = fc.oneof(
  optionalRecord({
    stages: fc.array(stage, { maxLength: 3 }),
    rebakeVersion: hostileString,
    schedule: optionalRecord({ onCalendar: hostileString, cron: hostileString, securityOnly: scalar }),
  }),
  value,
);
/** A kiln.yml: known keys with hostile or valid values, sometimes an unknown key or something else entirely. */
const kilnYml = fc.oneof(
  {
    weight: 6,
    arbitrary: optionalRecord({
      name: hostileString,
      version: scalar,
      cmd: fc.oneof(hostileString, fc.array(hostileString, { maxLength: 3 }), value),
      port: scalar,
      env: fc.dictionary(envName, scalar, { maxKeys: 3 }),
      healthcheck: fc.oneof(health, value),
      kernel: optionalRecord({ package: hostileString }),
      resources: optionalRecord({ memory: scalar, cpus: scalar }),
      packages: fc.array(hostileString, { maxLength: 3 }),
      stopTimeout: scalar,
      restarts: optionalRecord({ maxQuickExits: scalar, window: scalar, onCrashLoop: hostileString }),
      node: optionalRecord({ version: hostileString }),
      seccomp: scalar,
      environments,
      pipeline,
      colour: scalar,
    }),
  },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
);

/** Every string in a value, keys included, with the path where it sits. */
function* strings(value: unknown, at = ""): Generator<[string, string]> {
  if (typeof value === "string") yield [at, value];
  else if (Array.isArray(value)) for (const [i, v] of value.entries()) yield* strings(v, `${at}[${i}]`);
  else if (value instanceof Map) for (const [k, v] of value) yield* strings(v, `${at}.${String(k)}`);
  else if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      yield [`${at} (key)`, k];
      yield* strings(v, `${at}.${k}`);
    }
  }
}

function expectClean(value: unknown): void {
  for (const [at, text] of strings(value)) expect(CONTROL.test(text), `${at}: ${JSON.stringify(text)}`).toBe(false);
}

/** Runs `read`; an InputError (SpecError included) is an answer, anything else thrown fails the property. */
function outcome<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch (error) {
    if (error instanceof InputError) return undefined;
    throw error;
  }
}

let root: string;
let bakers: Baker[];
beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "kiln-fuzz-spec-"));
  bakers = await loadBakers();
});
afterAll(() => rm(root, { recursive: true, force: true }));

describe("property: the kiln.yml reader on arbitrary documents", () => {
  it("parseEnvironments and parsePipeline throw only input errors; what they accept is free of control characters", () => {
    let accepted = 0;
    fc.assert(
      fc.property(environments, pipeline, (envs, pipe) => {
        const parsed = outcome(() => parseEnvironments(envs, "shop", "/", "kiln.yml"));
        if (parsed) expectClean([...parsed.values()]);
        const stages = outcome(() => parsePipeline(pipe, parsed ? [...parsed.keys()] : ["dev"], "kiln.yml"));
        if (stages) expectClean(stages);
        if (parsed && parsed.size > 0 && envs) accepted++;
      }),
      { numRuns: RUNS },
    );
    // The generator must reach the accepting paths too, or the second half proves nothing.
    expect(accepted).toBeGreaterThan(0);
  });

  it("loadSpec throws only input errors; an accepted spec holds no control character anywhere", async () => {
    const dir = path.join(root, "app");
    await mkdir(dir, { recursive: true });
    await writeFile(
      path.join(dir, "package.json"),
      JSON.stringify({ name: "shop", version: "1.0.0", scripts: { start: "node server.js" } }),
    );
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(kilnYml, async (doc) => {
        await writeFile(path.join(dir, "kiln.yml"), stringify(doc));
        const spec = await loadSpec(dir, {}, bakers).catch((error: unknown) => {
          if (error instanceof InputError) return undefined;
          throw error;
        });
        if (spec) {
          accepted++;
          expectClean(spec);
        }
      }),
      { numRuns: RUNS },
    );
    expect(accepted).toBeGreaterThan(0);
  });
});
