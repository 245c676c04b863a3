/** A real moto server (the AWS emulator) per test file, on a free loopback port. */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { createAwsClients, type AwsClients } from "../../src/aws/clients.js";
import { findFreePort } from "../../src/run/ports.js";
import { type FaultOptions, type StrictLayer, type StrictRule, startStrictLayer } from "../strict-aws/layer.js";
import { STRICT_RULES } from "../strict-aws/rules/index.js";
import { repo } from "./harness.js";

export interface Moto {
  /** Where SDK clients go: the strictness layer in front of moto (moto itself with strict: false). */
  readonly endpoint: string;
  /** moto's own address, behind the layer. */
  readonly upstream: string;
  /** The strictness layer (rules, fault injection, call log); undefined with strict: false. */
  readonly strict: StrictLayer | undefined;
  reset(): Promise<void>;
  stop(): Promise<void>;
}

export interface MotoOptions {
  /** false: talk to moto directly; otherwise the layer's rules (default: every rule) and faults. */
  readonly strict?: false | { rules?: readonly StrictRule[]; faults?: FaultOptions };
}

/** moto behind the strictness layer, which enforces the AWS rules moto skips (test/strict-aws). */
export async function startMoto(options: MotoOptions = {}): Promise<Moto> {
  const binary = process.env.MOTO_SERVER ?? path.join(repo, ".venv", "bin", "moto_server");
  if (!existsSync(binary))
    throw new Error(`moto_server not found at ${binary}: run scripts/install-deps.sh (it installs moto[server] into .venv)`);
  const port = await findFreePort();
  const child: ChildProcess = spawn(binary, ["-H", "127.0.0.1", "-p", String(port)], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const upstream = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const response = await fetch(`${upstream}/moto-api/`);
      if (response.status < 500) break;
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`moto_server did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  const strict =
    options.strict === false
      ? undefined
      : await startStrictLayer(upstream, {
          rules: options.strict?.rules ?? STRICT_RULES,
          ...(options.strict?.faults ? { faults: options.strict.faults } : {}),
        });
  return {
    endpoint: strict?.endpoint ?? upstream,
    upstream,
    strict,
    async reset() {
      await fetch(`${upstream}/moto-api/reset`, { method: "POST" });
      strict?.reset();
    },
    async stop() {
      await strict?.stop();
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    },
  };
}

/** Fake static credentials for the emulator, set for the SDK's default chain. */
export function useEmulatorCredentials(): void {
  process.env.AWS_ACCESS_KEY_ID = "testing";
  process.env.AWS_SECRET_ACCESS_KEY = "testing";
  process.env.AWS_SESSION_TOKEN = "testing";
  delete process.env.AWS_PROFILE;
}

/** A request kiln sent, as the SDK middleware saw it. */
export interface RecordedCall {
  readonly op: string;
  readonly input: Record<string, unknown>;
}

export interface EmulatorClientOptions {
  /**
   * "production": kiln's own retry mode and attempt count (src/aws/clients.ts), for runs under
   * injected faults; otherwise one attempt per request, so an unexpected error shows at once.
   */
  readonly retries?: "production" | "none";
}

/**
 * Real SDK clients against the emulator; `record` collects every request kiln makes (once per
 * call, before the SDK's retries: the strict layer's log minus these is the retries).
 */
export function emulatorClients(moto: Moto, region: string, record?: RecordedCall[], options: EmulatorClientOptions = {}): AwsClients {
  return createAwsClients({
    region,
    endpoint: moto.endpoint,
    ...(options.retries === "production" ? {} : { maxAttempts: 1 }),
    ...(record ? { onRequest: (op, input) => record.push({ op, input }) } : {}),
  });
}
