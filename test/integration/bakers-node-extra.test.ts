// The node baker beyond plain CommonJS, for real: examples/node-addon (a dependency that
// compiles C++ with node-gyp at install, against the image's Node headers) and examples/node-esm
// (an ES-module app compiled from TypeScript by its build step). Each is baked, booted in QEMU
// (BIOS, TCG) and must answer HTTP with the boot-time env (-e, --kiln-env), as uid 1000, on a
// read-only root without any shell.
import { execFileSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { bakeExample, boot, httpGet, repo, sharedHome, trackRuns } from "./harness.js";

const home = sharedHome();
const running = trackRuns();
const MiB = 1024 * 1024;

function report(name: string, m: { sizes: Record<string, number> }, seconds: number | undefined): void {
  const s = m.sizes as Record<"runtime" | "libs" | "app" | "kernel" | "init" | "allocated", number>;
  console.log(
    `${name}: runtime ${(s.runtime / MiB).toFixed(1)} MiB, libs ${(s.libs / MiB).toFixed(1)} MiB, app ${(s.app / 1024).toFixed(1)} KiB, kernel ${(s.kernel / MiB).toFixed(1)} MiB, init ${(s.init / MiB).toFixed(1)} MiB; allocated ${(s.allocated / MiB).toFixed(1)} MiB; boot to healthy ${seconds?.toFixed(1)} s`,
  );
}

describe.sequential("node baker: native addons and ESM/TypeScript", () => {
  it("node-addon: the C++ addon compiles at bake time and runs in the image", async () => {
    const { image } = await bakeExample("node-addon", home);
    const m = image.manifest;
    expect(m.cmd).toEqual(["/usr/bin/node", "server.js"]);
    const run = await boot(image.ref, home, { env: ["GREETING=from-seed"], kilnEnv: "test" });
    running.push(run);
    const answer = await httpGet(`http://127.0.0.1:${run.port}/`);
    expect(answer.status).toBe(200);
    const body = JSON.parse(answer.body) as Record<string, unknown>;
    // uid, shells and rootWrite are measured by the C++ addon itself.
    expect(body).toMatchObject({
      message: "from-seed",
      env: "test",
      image: "node-addon:0.1.0",
      uid: 1000,
      shells: [],
      rootWrite: "Read-only file system",
    });
    expect(String(body.compiler)).toMatch(/^g\+\+ /);
    expect(String(body.node)).toMatch(/^v20\./);
    report("node-addon", m, run.bootToHealthySeconds);
  }, 900_000);

  it('node-esm: a TypeScript app compiled to ES modules runs as "type": "module"', async () => {
    const example = path.join(repo, "examples", "node-esm");
    // The example's build step (npm run build), with the repository's TypeScript.
    execFileSync(process.execPath, [path.join(repo, "node_modules", "typescript", "bin", "tsc"), "-p", example]);
    const { image } = await bakeExample("node-esm", home);
    const m = image.manifest;
    expect(m.cmd).toEqual(["/usr/bin/node", "dist/server.js"]);
    const run = await boot(image.ref, home, { env: ["GREETING=from-seed"], kilnEnv: "test" });
    running.push(run);
    const answer = await httpGet(`http://127.0.0.1:${run.port}/`);
    expect(answer.status).toBe(200);
    const body = JSON.parse(answer.body) as Record<string, unknown>;
    expect(body).toMatchObject({
      message: "from-seed",
      env: "test",
      image: "node-esm:0.1.0",
      uid: 1000,
      shells: [],
      rootWrite: "EROFS",
      module: "file:///app/dist/server.js",
      packageType: "module",
    });
    report("node-esm", m, run.bootToHealthySeconds);
  }, 900_000);
});
