// The CLI as users run it: bake --json, images, inspect, rm, and `kiln run` in the foreground
// stopped with Ctrl-C (SIGINT): the guest gets the ACPI power button, the app gets SIGTERM,
// QEMU exits, and kiln exits 0.
import { execFileSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { cli, httpGet, processAlive, repo, sharedHome } from "./harness.js";
import { findFreePort } from "../../src/run/ports.js";

const home = sharedHome();
const env = { KILN_HOME: home.root };

describe.sequential("cli", () => {
  it("bake --json prints one object with ref and digest; images, inspect and rm agree", async () => {
    execFileSync("make", ["-s", "-C", path.join(repo, "examples", "hello-native")]);
    const baked = await cli(["bake", "examples/hello-native", "--json", "--version", "9.9.9-cli"], env);
    expect(baked.code, baked.stderr).toBe(0);
    const result = JSON.parse(baked.stdout) as { ref: string; digest: string; layers: unknown[] };
    expect(result.ref).toBe("hello-native:9.9.9-cli");
    expect(result.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(baked.stderr).toMatch(/Disk\s+\d+\.\d+s/);

    const images = JSON.parse((await cli(["images", "--json"], env)).stdout) as { ref: string; digest: string }[];
    expect(images).toContainEqual(expect.objectContaining({ ref: result.ref, digest: result.digest }));

    const inspected = await cli(["inspect", result.ref], env);
    expect(inspected.code).toBe(0);
    expect(inspected.stdout).toMatch(/busybox-static/);
    expect(inspected.stdout).toMatch(/linux-image-\d/);
    expect(inspected.stdout).toMatch(/app\s+offset/);

    const removed = await cli(["rm", result.ref, "--json"], env);
    expect(removed.code).toBe(0);
    const gone = await cli(["inspect", result.ref], env);
    expect(gone.code).toBe(6);
    expect(gone.stderr).toMatch(/not in the local store/);
  });

  it("a rebake of the same name:version with other content warns that the ref moved; images --all and prune see the old image", async () => {
    execFileSync("make", ["-s", "-C", path.join(repo, "examples", "hello-native")]);
    const bakeWith = async (cmd: string) => {
      const baked = await cli(["bake", "examples/hello-native", "--json", "--version", "9.9.9-moved", "--cmd", cmd], env);
      expect(baked.code, baked.stderr).toBe(0);
      return { ...(JSON.parse(baked.stdout) as { digest: string; movedFrom?: string }), stderr: baked.stderr };
    };
    const first = await bakeWith("./server --listen 8080");
    const second = await bakeWith("./server --listen 8080 --moved");
    expect(second.digest).not.toBe(first.digest);
    expect(second.movedFrom).toBe(first.digest);
    expect(second.stderr).toContain(`hello-native:9.9.9-moved moved from ${first.digest.slice(0, 19)} to ${second.digest.slice(0, 19)}`);

    const all = JSON.parse((await cli(["images", "--all", "--json"], env)).stdout) as { ref: string | null; digest: string }[];
    expect(all).toContainEqual(expect.objectContaining({ ref: null, digest: first.digest }));
    const dry = await cli(["prune", "--dry-run", "--json"], env);
    expect(dry.code, dry.stderr).toBe(0);
    const planned = JSON.parse(dry.stdout) as { removed: { digest: string; bytes: number }[] };
    expect(planned.removed).toContainEqual(expect.objectContaining({ digest: first.digest }));
    expect(planned.removed.find((r) => r.digest === first.digest)!.bytes).toBeGreaterThan(1024 * 1024);
    const pruned = await cli(["prune"], env);
    expect(pruned.stdout).toContain(`removed ${first.digest.slice(0, 19)}`);
    expect((await cli(["inspect", first.digest], env)).code).toBe(6);
    expect((await cli(["inspect", second.digest.slice(7, 15)], env)).code).toBe(0);
  });

  it("run streams the console, reports health, and Ctrl-C shuts the VM down cleanly", async () => {
    const baked = await cli(["bake", "examples/hello-native", "--json"], env);
    const { ref } = JSON.parse(baked.stdout) as { ref: string };
    const port = await findFreePort();
    let answer: Promise<{ status: number; body: string }> | undefined;
    const run = await cli(["run", ref, "-p", `${port}:8080`, "-e", "GREETING=cli"], env, (stderr, child) => {
      if (!answer && /is healthy at/.test(stderr)) {
        answer = httpGet(`http://127.0.0.1:${port}/`).finally(() => child.kill("SIGINT"));
      }
    });
    expect(run.code, run.stderr).toBe(0);
    expect(answer).toBeDefined();
    expect(JSON.parse((await answer!).body)).toMatchObject({ message: "cli", uid: 1000 });
    expect(run.stderr).toMatch(/kiln-init: starting app/);
    expect(run.stderr).toMatch(/shutdown requested[\s\S]*hello-native: SIGTERM, stopped[\s\S]*powering off/);
    expect(run.stderr).toMatch(/VM stopped \(clean\)/);
    const pid = Number(/"pid":\s*(\d+)/.exec(run.stdout)?.[1] ?? NaN);
    if (!Number.isNaN(pid)) expect(processAlive(pid)).toBe(false);
  });
});
