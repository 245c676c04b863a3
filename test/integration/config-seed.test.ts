// Boot-time configuration without EC2: the seed drive's KEY=VALUE lines reach the app exactly
// (no shell ever evaluates them), malformed lines are skipped, and the VM's id arrives as
// KILN_INSTANCE_ID from the seed's meta-data. Without a seed drive and without a metadata
// service the init gives up on IMDS quickly and uses the baked configuration, and a secret
// reference it cannot resolve stops the boot (power-off) with a message naming it.
import { cpSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { bake } from "../../src/bake/bake.js";
import { ImageStore } from "../../src/image/store.js";
import { LocalVm } from "../../src/providers/qemu.js";
import { waitHealthy } from "../../src/run/health.js";
import { findFreePort } from "../../src/run/ports.js";
import { httpGet, quiet, repo, sharedHome } from "./harness.js";

const home = sharedHome();
const started: LocalVm[] = [];
afterEach(async () => {
  for (const vm of started.splice(0)) {
    await vm.shutdown(20_000);
    await vm.cleanup();
  }
});

async function bakeEnvApp(kilnYml?: string) {
  let dir = path.join(repo, "test", "fixtures", "imds", "env-app");
  if (kilnYml) {
    dir = mkdtempSync(path.join(os.tmpdir(), "kiln-env-app-"));
    cpSync(path.join(repo, "test", "fixtures", "imds", "env-app"), dir, { recursive: true });
    writeFileSync(path.join(dir, "kiln.yml"), kilnYml);
  }
  const { image } = await bake(dir, {}, home, quiet);
  return new ImageStore(home).resolve(image.ref);
}

describe.sequential("configuration from the seed drive, and without any boot-time source", () => {
  it("passes seed values through verbatim over the baked env, skips malformed lines, and names the instance", async () => {
    const image = await bakeEnvApp();
    const port = await findFreePort();
    const tricky = `a=b  "c" 'd' $(poweroff) \`reboot\` $HOME \\n; exit 1`;
    const vm = await LocalVm.start({
      image,
      home,
      firmware: "bios",
      forwards: [{ hostAddress: "127.0.0.1", hostPort: port, guestPort: 8080 }],
      env: { GREETING: tricky, BAKED: "overridden-at-boot", KILN_ENV: "test" },
    });
    started.push(vm);
    const health = await waitHealthy(`http://127.0.0.1:${port}/healthz`, 180_000, vm.exited, vm.startedAtMs);
    expect(health.healthy, await vm.consoleTail(40)).toBe(true);
    const { env } = JSON.parse((await httpGet(`http://127.0.0.1:${port}/`)).body) as { env: Record<string, string> };
    expect(env).toEqual({
      GREETING: tricky,
      BAKED: "overridden-at-boot",
      KILN_ENV: "test",
      KILN_IMAGE: "env-app:0.1.0",
      KILN_INSTANCE_ID: vm.record.id,
    });
    const console = await vm.consoleTail(200);
    // Malformed lines cannot come from kiln's writer any more (it refuses them); config-imds
    // checks that the init skips them in hand-written EC2 user-data.
    expect(console).not.toContain("$(poweroff)");
  });

  it("without seed drive or metadata service: asks IMDS briefly, then refuses to start an app whose secrets it cannot resolve", async () => {
    const image = await bakeEnvApp(
      "name: env-app-secret\nport: 8080\nhealthcheck: { path: /healthz }\nenv:\n  DB_PASSWORD: ssm:/env-app/prod/db-password\n",
    );
    const vm = await LocalVm.start({ image, home, firmware: "bios", forwards: [], env: {}, seedDrive: false });
    started.push(vm);
    const ended = await Promise.race([vm.exited, new Promise<string>((r) => setTimeout(() => r("timeout"), 120_000))]);
    const console = (await vm.consoleTail(60)).replace(/\r/g, "");
    expect(ended, console).toBe("QEMU exited (status 0)");
    const asked = /no seed drive and no instance metadata \(asked for (\d+\.\d\d)s\): using the baked configuration/.exec(console);
    expect(asked, console).not.toBeNull();
    expect(Number(asked![1])).toBeLessThan(1.5);
    expect(console).toMatch(/kiln-init: secrets need EC2 instance metadata \(an instance role\)/);
    expect(console).toMatch(/kiln-init: FATAL: could not resolve the app's secrets/);
    expect(console).not.toMatch(/starting app/);
  });
});
