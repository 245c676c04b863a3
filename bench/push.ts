/**
 * npm run bench:push — kiln push of examples/hello-node against a local moto server:
 * first push and an app-only rebake, each as blocks/bytes uploaded against the raw disk size
 * (the baseline a whole-disk upload such as S3 + ImportSnapshot would move), API calls, wall
 * time and requests in flight. Needs .venv/bin/moto_server (scripts/install-deps.sh).
 */
import { spawn } from "node:child_process";
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { createAwsClients } from "../src/aws/clients.js";
import { bake } from "../src/bake/bake.js";
import { installRoot, kilnHome } from "../src/home.js";
import type { Progress } from "../src/progress.js";
import { pushImage } from "../src/push/push.js";
import { findFreePort } from "../src/run/ports.js";

const quiet: Progress = { step: async (_l, work) => work(), info: () => undefined };
const repo = installRoot();
process.env.AWS_ACCESS_KEY_ID = "bench";
process.env.AWS_SECRET_ACCESS_KEY = "bench";

const port = await findFreePort();
const moto = spawn(path.join(repo, ".venv", "bin", "moto_server"), ["-H", "127.0.0.1", "-p", String(port)], { stdio: "ignore" });
const endpoint = `http://127.0.0.1:${port}`;
for (let i = 0; i < 150; i++) {
  try {
    await fetch(`${endpoint}/moto-api/`);
    break;
  } catch {
    await new Promise((r) => setTimeout(r, 200));
  }
}

const app = mkdtempSync(path.join(os.tmpdir(), "kiln-bench-push-"));
cpSync(path.join(repo, "examples", "hello-node"), app, { recursive: true });
const home = kilnHome({ KILN_HOME: process.env.KILN_HOME ?? path.join(os.homedir(), ".cache", "kiln") });
const rows = [];
try {
  for (const [label, version] of [
    ["first push", "1.0.0"],
    ["app-only rebake", "1.0.1"],
  ] as const) {
    if (version === "1.0.1")
      writeFileSync(
        path.join(app, "server.js"),
        `${"// bench change\n"}${await import("node:fs/promises").then((f) => f.readFile(path.join(app, "server.js"), "utf8"))}`,
      );
    const { image } = await bake(app, { name: "bench-push", version }, home, quiet);
    const calls = new Map<string, number>();
    const clients = createAwsClients({ region: "eu-west-1", endpoint, onRequest: (op) => calls.set(op, (calls.get(op) ?? 0) + 1) });
    const r = await pushImage({ ref: image.ref, clients, home });
    const raw = image.manifest.sizes.rawDisk;
    rows.push({
      label,
      uploadedBlocks: r.uploadedBlocks,
      uploadedBytes: r.uploadedBytes,
      rawBytes: raw,
      uploadedOverRaw: r.uploadedBytes / raw,
      skipped: r.skippedBlocks,
      apiCalls: Object.fromEntries(calls),
      apiCallsTotal: [...calls.values()].reduce((a, b) => a + b, 0),
      seconds: r.seconds,
      maxInFlight: r.maxInFlight,
      retries: r.retries,
    });
    process.stdout.write(
      `${label}: ${r.uploadedBlocks} blocks / ${(r.uploadedBytes / 1048576).toFixed(1)} MiB uploaded of a ${(raw / 1048576).toFixed(1)} MiB raw disk (${((r.uploadedBytes / raw) * 100).toFixed(1)}%), ${[...calls.values()].reduce((a, b) => a + b, 0)} API calls, ${r.seconds.toFixed(2)}s, ${r.maxInFlight} requests in flight at most\n`,
    );
  }
} finally {
  moto.kill("SIGTERM");
  rmSync(app, { recursive: true, force: true });
}
process.stdout.write(`${JSON.stringify({ results: rows })}\n`);
