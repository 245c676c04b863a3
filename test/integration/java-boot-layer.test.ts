// Issue 16: a Spring Boot fat jar's libraries (BOOT-INF/lib) are their own layer (partition 4,
// mounted at /app/<jar stem>/BOOT-INF/lib), cached by their names and bytes. The bench's Spring
// Boot service (bench/fixtures/spring-service) is built with Maven, baked, one line of its
// controller changes, it is built again and the rebake must reuse the library layer (not
// extracted again, same digest, same disk offset); then the image boots in QEMU (BIOS, TCG) and
// Spring Boot's own launcher, started from the exploded jar, answers HTTP with the changed line.
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { bake } from "../../src/bake/bake.js";
import { run } from "../../src/exec.js";
import type { Progress } from "../../src/progress.js";
import { boot, httpGet, repo, sharedHome, trackRuns } from "./harness.js";

const home = sharedHome();
const running = trackRuns();
const SOURCE = "src/main/java/com/example/service/ServiceApplication.java";

function recording(): { progress: Progress; lines: string[] } {
  const lines: string[] = [];
  return { lines, progress: { step: async (_label, work) => work(), info: (message) => void lines.push(message) } };
}

async function buildJar(app: string): Promise<string> {
  const started = performance.now();
  await run(["mvn", "-q", "-B", "package", "-DskipTests"], { cwd: app, inheritEnv: true, timeoutMs: 600_000 });
  console.log(`spring-service: mvn package ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return path.join(app, "target", "spring-service-1.0.0.jar");
}

describe.sequential("Spring Boot library layer", () => {
  it("a one-line source change reuses the extracted, compressed BOOT-INF/lib layer and the exploded jar boots", async () => {
    const app = mkdtempSync(path.join(os.tmpdir(), "kiln-spring-"));
    cpSync(path.join(repo, "bench", "fixtures", "spring-service"), app, { recursive: true });
    const first = recording();
    const cold = await bake(await buildJar(app), {}, home, first.progress);
    const layersOf = (m: typeof cold.image.manifest) => ({
      layer: m.layers.find((l) => l.name === "deps"),
      partition: m.layout.partitions.find((p) => p.name === "deps"),
    });
    const before = layersOf(cold.image.manifest);
    expect(before.layer?.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(before.partition).toMatchObject({ number: 4, contentBytes: before.layer?.bytes });
    // The libraries left the app layer: it holds the app's classes and the launcher, not ~20 MB of jars.
    expect(cold.image.manifest.sizes.app).toBeLessThan(2 * 1024 * 1024);
    // The libraries that carry pom.properties are listed in the SBOM (inside the fat jar they were not).
    expect(cold.image.manifest.sbom?.components.some((c) => c.name === "jackson-databind")).toBe(true);

    const source = path.join(app, SOURCE);
    writeFileSync(source, readFileSync(source, "utf8").replace('return "ok";', 'return "ok, one line later";'));
    const second = recording();
    const warm = await bake(await buildJar(app), {}, home, second.progress);
    expect(warm.image.digest).not.toBe(cold.image.digest);
    expect(second.lines.some((l) => l.includes("libraries") && l.includes("(cached: not extracted again)"))).toBe(true);
    const after = layersOf(warm.image.manifest);
    expect(after.layer).toEqual({ ...before.layer, cached: true });
    expect(after.partition).toEqual(before.partition);
    console.log(`spring-service: cold bake ${cold.seconds.toFixed(2)} s, warm (one-line change) ${warm.seconds.toFixed(2)} s`);

    const vm = await boot(warm.image.ref, home, { healthTimeoutSeconds: 420 });
    running.push(vm);
    const answer = await httpGet(`http://127.0.0.1:${vm.port}/healthz`);
    expect(answer).toMatchObject({ status: 200, body: "ok, one line later" });
  }, 1_500_000);
});
