// Issue 18, item 2: a local environment whose port changed in kiln.yml. The running HAProxy is
// observed (the ports its process really listens on, the config it runs), the difference is
// reported as drift, and ensure-infrastructure moves it. A real HAProxy, no VMs: seconds.
import { afterAll, describe, expect, it } from "vitest";
import type { LocalEnvironment } from "../../src/config/environments.js";
import { planBlueGreen } from "../../src/deploy/plan.js";
import { LocalProvider } from "../../src/providers/local/provider.js";
import { findFreePort } from "../../src/run/ports.js";
import { freshHome } from "./harness.js";

const home = freshHome("kiln-drift-");
const base: Omit<LocalEnvironment, "port"> = {
  name: "dev",
  app: "driftdemo",
  target: "local",
  instances: 1,
  deregistrationDelaySeconds: 1,
  env: {},
  after: [],
  health: { path: "/healthz", intervalSeconds: 1, checkTimeoutSeconds: 4, healthyThreshold: 2, unhealthyThreshold: 2, timeoutSeconds: 30 },
};
let last: LocalProvider | undefined;
afterAll(async () => {
  await last?.deleteInfrastructure();
});

async function answers(port: number): Promise<number | string> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/`)).status;
  } catch (error) {
    return ((error as { cause?: { code?: string } }).cause?.code ?? "error") as string;
  }
}

describe("local environment: the load balancer's port follows kiln.yml", () => {
  it("a changed port is drift: planned as a fix of the shared resources, then HAProxy listens on the new port only", async () => {
    const [oldPort, newPort] = [await findFreePort(), await findFreePort()];
    const before = new LocalProvider({ ...base, port: oldPort }, home);
    expect((await before.observe()).infrastructure).toBe(false);
    await before.ensureInfrastructure();
    expect(await answers(oldPort)).toBe(503); // HAProxy, no servers yet
    expect((await before.observe()).drift ?? []).toEqual([]);

    const moved = { ...base, port: newPort };
    last = new LocalProvider(moved, home);
    const live = await last.observe();
    expect(live.drift).toEqual([`HAProxy listens on 127.0.0.1:${oldPort}, the environment says ${newPort}`]);
    const plan = planBlueGreen(moved, { ref: "driftdemo:1", digest: `sha256:${"1".repeat(64)}` }, "1", live, new Date(0));
    expect(plan.steps[0]).toMatchObject({ kind: "ensure-infrastructure", fixes: live.drift });

    await last.ensureInfrastructure();
    expect(await answers(newPort)).toBe(503);
    expect(await answers(oldPort)).toBe("ECONNREFUSED");
    expect((await last.observe()).drift ?? []).toEqual([]);

    // The health check HAProxy runs is the environment's too.
    const ready = { ...moved, health: { ...moved.health, path: "/ready" } };
    last = new LocalProvider(ready, home);
    expect((await last.observe()).drift).toEqual([
      "HAProxy runs 'option httpchk GET /healthz', the environment asks for 'option httpchk GET /ready'",
    ]);
    await last.ensureInfrastructure();
    expect((await last.observe()).drift ?? []).toEqual([]);
    expect(await answers(newPort)).toBe(503);
  });
});
