// kiln under injected AWS faults (the strict layer answers a seeded fraction of requests with
// throttling, 500, 503 or a dropped connection), with kiln's production retry settings: push,
// promote load-balanced with a canary, promote single-instance, rollback and destroy each either
// finish or fail cleanly (a KilnError; an AWS failure names its operation), converge when run
// again without faults, and leave nothing behind: kiln's tagged resources after each scenario
// equal a fault-free run's. Every call kiln made is granted by `kiln iam-policy`.
import { rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AwsClients } from "../../src/aws/clients.js";
import { AwsError } from "../../src/aws/errors.js";
import { destroyEnv, promote, rollback, type ProviderFactory } from "../../src/deploy/promote.js";
import { KilnError } from "../../src/errors.js";
import { AwsProvider } from "../../src/providers/aws/provider.js";
import { SingleInstanceProvider } from "../../src/providers/aws/single-instance.js";
import { iamPolicy } from "../../src/push/iam-policy.js";
import { pushImage } from "../../src/push/push.js";
import type { AwsEnvironment } from "../../src/config/environments.js";
import { policyAllows } from "../unit/helpers/sdk-operations.js";
import { bakeNativeReleases, quiet, sharedHome } from "./harness.js";
import { emulatorClients, startMoto, useEmulatorCredentials, type Moto, type RecordedCall } from "./moto.js";
import { countTaggedResources, excess, type ResourceCounts } from "./tagged-resources.js";

const home = sharedHome();
const REGION = "eu-west-1";
const APP = "faultdemo";
/** 0 is the fault-free baseline; at 0.5 some calls fail all their attempts, so failure paths run too. */
const RATES = [0, 0.2, 0.5] as const;
/** Every kind, including answers lost after AWS did the work (a retried create must not make two). */
const KINDS = ["throttle", "500", "503", "drop", "lost"] as const;
/** KILN_FAULT_SEED replays another fault sequence (the table prints the seed). */
const SEED = Number(process.env.KILN_FAULT_SEED ?? 1313);
let moto: Moto;
let app: string;
let refs: { v1: string; v2: string };
/** Every call kiln made under faults ("service:Action" as the strict layer saw it), for the policy check. */
const kilnCalls = new Set<string>();

/** Clients as kiln uses them in production (retry mode, attempts), recording each logical call. */
function kilnClients(record: RecordedCall[]): AwsClients {
  return emulatorClients(moto, REGION, record, { retries: "production" });
}
const inspect = () => emulatorClients(moto, REGION);

function providers(record: RecordedCall[]): ProviderFactory {
  return (env) => {
    const clients = kilnClients(record);
    return env.name === "single"
      ? new SingleInstanceProvider(env as AwsEnvironment, clients, home, {
          pollMs: 20,
          health: async () => ({ ok: true, detail: "HTTP 200" }),
        })
      : new AwsProvider(env as AwsEnvironment, clients, home, { pollMs: 50 });
  };
}

function writeConfig(): void {
  const common = `    target: aws\n    region: ${REGION}\n    deregistrationDelay: 0\n    healthcheck: { path: /healthz, timeout: 30 }\n`;
  writeFileSync(
    path.join(app, "kiln.yml"),
    `cmd: ./server --listen 8080\nport: 8080\nhealthcheck: { path: /healthz }\nenvironments:\n` +
      `  lb:\n${common}    instances: 2\n    env: { DB_PASSWORD: 'ssm:/faultdemo/db' }\n` +
      `  single:\n${common}    mode: single-instance\n`,
  );
}

/** What kiln said along the way (undo failures, lock notes), shown when a scenario does not converge. */
let notes: string[] = [];
const progress = { ...quiet, info: (line: string) => void notes.push(line) };
const envOpts = (envName: string, record: RecordedCall[]) => ({ home, config: app, envName, progress, providers: providers(record) });

interface Scenario {
  readonly name: string;
  /** Brings the account to the scenario's starting point, without faults. */
  setup(record: RecordedCall[]): Promise<void>;
  /** The operation under faults; run again without faults to converge. */
  run(record: RecordedCall[]): Promise<unknown>;
  /** What converging means after a failed run (the same operation, unless re-running it means something else). */
  converge?(record: RecordedCall[]): Promise<unknown>;
}

const SCENARIOS: readonly Scenario[] = [
  {
    name: "push",
    setup: async () => undefined,
    run: (record) => pushImage({ ref: refs.v1, clients: kilnClients(record), home }),
  },
  {
    name: "promote load-balanced + canary",
    setup: async (record) => void (await promote({ ...envOpts("lb", record), ref: refs.v1 })),
    run: (record) => promote({ ...envOpts("lb", record), ref: refs.v2, canary: { percent: 10, seconds: 2 } }),
  },
  {
    name: "promote single-instance",
    setup: async (record) => void (await promote({ ...envOpts("single", record), ref: refs.v1 })),
    run: (record) => promote({ ...envOpts("single", record), ref: refs.v2 }),
  },
  {
    name: "rollback",
    setup: async (record) => {
      await promote({ ...envOpts("lb", record), ref: refs.v1 });
      await promote({ ...envOpts("lb", record), ref: refs.v2 });
    },
    run: (record) => rollback({ ...envOpts("lb", record), app: APP }),
    // A second rollback would go back again: converging is promoting what the rollback aimed at.
    converge: (record) => promote({ ...envOpts("lb", record), ref: refs.v1, force: true }),
  },
  {
    name: "destroy",
    setup: async (record) => {
      await promote({ ...envOpts("lb", record), ref: refs.v1 });
      await promote({ ...envOpts("single", record), ref: refs.v1 });
    },
    run: async (record) => {
      await destroyEnv({ ...envOpts("lb", record), app: APP });
      await destroyEnv({ ...envOpts("single", record), app: APP });
    },
  },
];

interface Row {
  scenario: string;
  rate: number;
  runs: number;
  calls: number;
  faults: number;
  retries: number;
  outcome: string;
  orphans: number;
  seconds: number;
}
const rows: Row[] = [];
const baselines = new Map<string, ResourceCounts>();

/** "ok", or how it failed; a failure that is not a KilnError (a raw crash) fails the test. */
function outcomeOf(error: unknown): string {
  if (error === undefined) return "ok";
  expect(error, `a raw crash: ${String((error as Error)?.stack ?? error)}`).toBeInstanceOf(KilnError);
  const aws = error instanceof AwsError ? error : (error as { cause?: unknown }).cause;
  if (aws instanceof AwsError) {
    expect(aws.operation).toMatch(/^[A-Z]\w+$/);
    return `failed: ${aws.operation} ${aws.code}`;
  }
  return `failed: ${(error as Error).message.split("\n")[0]!.slice(0, 60)}`;
}

async function resetAccount(): Promise<void> {
  moto.strict!.setFaults(undefined);
  await moto.reset();
  // A push interrupted in an earlier scenario leaves a progress record for a snapshot the reset removed.
  rmSync(path.join(home.root, "push", REGION), { recursive: true, force: true });
}

beforeAll(async () => {
  useEmulatorCredentials();
  moto = await startMoto();
  const baked = await bakeNativeReleases(APP, ["1.0.0", "2.0.0"], home, (dir) => {
    app = dir;
    writeConfig();
  });
  const [v1, v2] = baked.images as [{ ref: string; digest: string }, { ref: string; digest: string }];
  refs = { v1: v1.ref, v2: v2.ref };
});

afterAll(async () => {
  const pad = (s: string | number, n: number) => String(s).padEnd(n);
  const lines = [
    `${pad("scenario", 32)}${pad("rate", 6)}${pad("runs", 6)}${pad("calls", 7)}${pad("faults", 8)}${pad("retries", 9)}${pad("orphans", 9)}${pad("s", 7)}outcome`,
    ...rows.map(
      (r) =>
        `${pad(r.scenario, 32)}${pad(r.rate, 6)}${pad(r.runs, 6)}${pad(r.calls, 7)}${pad(r.faults, 8)}${pad(r.retries, 9)}${pad(r.orphans, 9)}${pad(r.seconds.toFixed(1), 7)}${r.outcome}`,
    ),
  ];
  console.log(`fault injection (seed ${SEED}):\n${lines.join("\n")}`);
  await moto?.stop();
});

describe.sequential("kiln under injected AWS faults", () => {
  for (const scenario of SCENARIOS) {
    for (const rate of RATES) {
      it(`${scenario.name} at fault rate ${rate}`, async () => {
        await resetAccount();
        notes = [];
        await scenario.setup([]);
        const layer = moto.strict!;
        const record: RecordedCall[] = [];
        const before = layer.calls.length;
        const started = performance.now();
        layer.setFaults({ rate, seed: SEED + Math.round(rate * 1000), kinds: KINDS });
        let error: unknown;
        await scenario.run(record).catch((e: unknown) => (error = e));
        layer.setFaults(undefined);
        const seconds = (performance.now() - started) / 1000;
        const seen = layer.calls.slice(before);
        // KILN_FAULT_TRACE=1 prints every call of the scenario with its fault: how an orphan was made.
        if (process.env.KILN_FAULT_TRACE) console.log(seen.map((c) => `${c.service}:${c.action} ${c.status} ${c.fault ?? ""}`).join("\n"));
        // Only kiln talks to the layer while the scenario runs; CloudWatch signs as "monitoring".
        for (const call of seen) kilnCalls.add(`${call.service === "monitoring" ? "cloudwatch" : call.service}:${call.action}`);
        const outcome = outcomeOf(error);
        let runs = 1;
        if (error !== undefined) {
          runs++;
          await (scenario.converge ?? scenario.run)([]).catch((e: unknown) => {
            throw new Error(
              `${scenario.name} at rate ${rate} (${outcome}) did not converge: ${(e as Error).message}\nkiln said: ${notes.join("\n")}`,
              { cause: e },
            );
          });
        }
        const counts = await countTaggedResources(inspect(), APP);
        if (rate === 0) baselines.set(scenario.name, counts);
        const orphans = excess(counts, baselines.get(scenario.name)!);
        rows.push({
          scenario: scenario.name,
          rate,
          runs,
          calls: seen.length,
          faults: seen.filter((c) => c.fault).length,
          retries: seen.length - record.length,
          outcome,
          orphans: Object.values(orphans).reduce((a, b) => a + b, 0),
          seconds,
        });
        expect(orphans, `left behind by ${scenario.name} at rate ${rate}`).toEqual({});
        expect(counts, "converged to the fault-free end state").toEqual(baselines.get(scenario.name));
      });
    }
  }

  it("every call kiln made under faults is granted by kiln iam-policy", () => {
    expect(kilnCalls.size).toBeGreaterThan(20);
    const policy = iamPolicy();
    expect([...kilnCalls].filter((action) => !policyAllows(policy, action))).toEqual([]);
  });
});
