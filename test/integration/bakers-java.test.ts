// The java baker for real: examples/hello-java is built into an executable jar (make: javac +
// jar), baked from the jar file onto a JRE that jlink made from Debian's OpenJDK 17 with only the
// modules jdeps found, booted in QEMU (BIOS, TCG), and must answer HTTP with the boot-time env
// (-e, --kiln-env), as uid 1000, on a read-only root without any shell.
import { execFileSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { bake } from "../../src/bake/bake.js";
import { boot, httpGet, quiet, repo, sharedHome, trackRuns } from "./harness.js";

const home = sharedHome();
const running = trackRuns();
const MiB = 1024 * 1024;

describe.sequential("java baker", () => {
  it("bakes hello-java.jar on a jlink'd JRE and boots it: HTTP, -e, KILN_ENV, uid 1000, read-only /, no shell", async () => {
    const example = path.join(repo, "examples", "hello-java");
    execFileSync("make", ["-s", "-C", example]);
    const { image } = await bake(path.join(example, "hello-java.jar"), {}, home, quiet);
    const m = image.manifest;
    expect(m.baker).toBe("java");
    expect(m.cmd).toEqual([
      "/usr/lib/jvm/kiln-jre/bin/java",
      "-XX:MaxRAMPercentage=75",
      "-XX:+ExitOnOutOfMemoryError",
      "-jar",
      "hello-java.jar",
    ]);
    expect(m.packages.map((p) => `${p.name}:${p.role}`)).toEqual(
      expect.arrayContaining(["openjdk-17-jdk-headless:runtime", "openjdk-17-jre-headless:runtime", "libstdc++6:lib"]),
    );
    // jlink'd: tens of MB, not Debian's ~180 MB JRE.
    expect(m.sizes.runtime).toBeGreaterThan(10 * MiB);
    expect(m.sizes.runtime).toBeLessThan(60 * MiB);
    expect(m.files).toContainEqual(expect.objectContaining({ path: "/usr/lib/jvm/kiln-jre/", kind: "runtime" }));

    const run = await boot(image.ref, home, { env: ["GREETING=from-seed"], kilnEnv: "test", healthTimeoutSeconds: 300 });
    running.push(run);
    const answer = await httpGet(`http://127.0.0.1:${run.port}/`);
    expect(answer.status).toBe(200);
    const body = JSON.parse(answer.body) as Record<string, unknown>;
    expect(body).toMatchObject({ message: "from-seed", env: "test", image: "hello-java:0.1.0", runtime: "java", uid: 1000, shells: [] });
    expect(String(body.java)).toMatch(/^17\./);
    expect(body.rootWrite).toMatch(/Read-only file system/);
    // Exactly what jdeps found (plus the EC provider for TLS): nothing else is in the JRE.
    expect(body.modules).toEqual(["java.base", "jdk.crypto.ec", "jdk.httpserver"]);
    console.log(
      `hello-java: runtime ${(m.sizes.runtime / MiB).toFixed(1)} MiB, libs ${(m.sizes.libs / MiB).toFixed(1)} MiB, app ${(m.sizes.app / 1024).toFixed(1)} KiB, kernel ${(m.sizes.kernel / MiB).toFixed(1)} MiB, init ${(m.sizes.init / MiB).toFixed(1)} MiB; allocated ${(m.sizes.allocated / MiB).toFixed(1)} MiB; boot to healthy ${run.bootToHealthySeconds?.toFixed(1)} s`,
    );
  }, 900_000);
});
