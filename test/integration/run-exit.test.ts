// `kiln run` in the foreground returns as soon as its VM has stopped (issue 14): it used to print
// "VM stopped (clean)" and then sit ~20 s on the power-button grace timer nobody cleared. Real CLI,
// real QEMU boots of hello-native: once stopped with Ctrl-C (SIGINT), once stopped from outside
// (`kiln stop` from another process, so the VM goes away without kiln run asking).
// The 5 s bound is a correctness check for a hang, far above the few milliseconds a prompt exit takes.
import { execFileSync } from "node:child_process";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { parseRunLine } from "../../src/run/run-lines.js";
import { findFreePort } from "../../src/run/ports.js";
import { cli, repo, sharedHome } from "./harness.js";

const home = sharedHome();
const env = { KILN_HOME: home.root };
const PROMPT_EXIT_MS = 5000;

let ref: string;
beforeAll(async () => {
  execFileSync("make", ["-s", "-C", path.join(repo, "examples", "hello-native")]);
  const baked = await cli(["bake", "examples/hello-native", "--json", "--version", "0.0.0-run-exit"], env);
  expect(baked.code, baked.stderr).toBe(0);
  ({ ref } = JSON.parse(baked.stdout) as { ref: string });
});

/**
 * Runs `kiln run` and calls `whenHealthy` once it says so; returns when the process has exited,
 * with the milliseconds from the "VM stopped" line to the exit.
 */
async function runUntilExit(whenHealthy: (id: string, child: { kill: (signal: NodeJS.Signals) => boolean }) => void) {
  const port = await findFreePort();
  let healthyAt: number | undefined;
  let stoppedAt: number | undefined;
  let stopped: ReturnType<typeof parseRunLine>;
  const run = await cli(["run", ref, "--quiet", "-p", `${port}:8080`], env, (stderr, child) => {
    for (const line of stderr.split("\n")) {
      const parsed = parseRunLine(line);
      if (parsed?.kind === "healthy" && healthyAt === undefined) {
        healthyAt = performance.now();
        const id = /console: kiln logs ([0-9a-f]+)/.exec(stderr)?.[1] ?? "";
        whenHealthy(id, child);
      }
      if (parsed?.kind === "stopped" && stoppedAt === undefined) {
        stoppedAt = performance.now();
        stopped = parsed;
      }
    }
  });
  const exitedAt = performance.now();
  expect(run.code, run.stderr).toBe(0);
  expect(healthyAt, run.stderr).toBeDefined();
  expect(stoppedAt, run.stderr).toBeDefined();
  return { run, stopped, exitDelayMs: exitedAt - stoppedAt!, afterHealthyMs: exitedAt - healthyAt! };
}

describe.sequential("kiln run exits once the VM has stopped", () => {
  it("after Ctrl-C (SIGINT)", async () => {
    const { run, stopped, exitDelayMs, afterHealthyMs } = await runUntilExit((_id, child) => child.kill("SIGINT"));
    console.log(
      `Ctrl-C: exited ${(exitDelayMs / 1000).toFixed(3)} s after "VM stopped", ${(afterHealthyMs / 1000).toFixed(3)} s after Ctrl-C`,
    );
    expect(stopped).toEqual({ kind: "stopped", how: "clean" });
    expect(exitDelayMs, run.stderr).toBeLessThan(PROMPT_EXIT_MS);
  });

  it("after the VM was stopped from outside (kiln stop)", async () => {
    let stopping: Promise<{ code: number | null; stderr: string }> | undefined;
    const { run, stopped, exitDelayMs } = await runUntilExit((id) => {
      stopping = cli(["stop", id, "--timeout", "60"], env);
    });
    console.log(`kiln stop: kiln run exited ${(exitDelayMs / 1000).toFixed(3)} s after "VM stopped"`);
    expect((await stopping!).code, (await stopping!).stderr).toBe(0);
    expect(stopped?.kind).toBe("stopped");
    expect(exitDelayMs, run.stderr).toBeLessThan(PROMPT_EXIT_MS);
  });
});
