// Issue 16: a Node app's installed dependencies are their own layer (partition 4, mounted at
// /app/node_modules), cached by what decides them. examples/node-addon (one dependency, a C++
// addon compiled by node-gyp at install) is baked, one line of server.js changes, and the rebake
// must reuse the install (npm not run) and the compressed layer (same digest, same disk offset),
// then boot in QEMU (BIOS, TCG) and answer HTTP with the changed line and the addon working.
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { bake } from "../../src/bake/bake.js";
import type { Progress } from "../../src/progress.js";
import { boot, httpGet, repo, sharedHome, trackRuns } from "./harness.js";

const home = sharedHome();
const running = trackRuns();

function recording(): { progress: Progress; lines: string[] } {
  const lines: string[] = [];
  return { lines, progress: { step: async (_label, work) => work(), info: (message) => void lines.push(message) } };
}

describe.sequential("node dependency layer", () => {
  it("a one-line source change reuses the installed, compressed node_modules layer and the image boots", async () => {
    const app = mkdtempSync(path.join(os.tmpdir(), "kiln-node-deps-"));
    cpSync(path.join(repo, "examples", "node-addon"), app, { recursive: true });
    const first = recording();
    const cold = await bake(app, {}, home, first.progress);
    const depsOf = (m: typeof cold.image.manifest) => ({
      layer: m.layers.find((l) => l.name === "deps"),
      partition: m.layout.partitions.find((p) => p.name === "deps"),
    });
    const before = depsOf(cold.image.manifest);
    expect(before.layer?.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(before.partition).toMatchObject({ number: 4, contentBytes: before.layer?.bytes });
    expect(cold.image.manifest.sbom?.components.some((c) => c.name === "kiln-probe-addon")).toBe(true);

    const server = path.join(app, "server.js");
    writeFileSync(server, readFileSync(server, "utf8").replace("hello from kiln (node addon)", "hello again, one line later"));
    const second = recording();
    const warm = await bake(app, {}, home, second.progress);
    expect(warm.image.digest).not.toBe(cold.image.digest);
    const after = depsOf(warm.image.manifest);
    expect(second.lines.some((l) => l.includes("dependencies") && l.includes("(cached: npm not run)"))).toBe(true);
    expect(after.layer).toEqual({ ...before.layer, cached: true });
    expect(after.partition).toEqual(before.partition);
    console.log(`node-addon: cold bake ${cold.seconds.toFixed(2)} s, warm (one-line change) ${warm.seconds.toFixed(2)} s`);

    const run = await boot(warm.image.ref, home);
    running.push(run);
    const answer = await httpGet(`http://127.0.0.1:${run.port}/`);
    expect(answer.status).toBe(200);
    // The message is the changed line (app layer); uid and compiler come from the addon (deps layer).
    expect(JSON.parse(answer.body)).toMatchObject({ message: "hello again, one line later", uid: 1000 });
    expect(String((JSON.parse(answer.body) as { compiler: string }).compiler)).toMatch(/^g\+\+ /);
  }, 900_000);
});
