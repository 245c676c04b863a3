// The python baker for real: examples/hello-python (stdlib HTTP server + two requirements from
// the package index: MarkupSafe as a manylinux wheel with a C extension, packaging as pure
// Python) is baked onto Debian's CPython 3.11 with a trimmed, precompiled stdlib, booted in QEMU
// (BIOS, TCG), and must answer HTTP with the boot-time env (-e, --kiln-env), as uid 1000, on a
// read-only root without any shell, with the wheel's compiled extension loaded.
import { describe, expect, it } from "vitest";
import { bakeExample, boot, httpGet, sharedHome, trackRuns } from "./harness.js";

const home = sharedHome();
const running = trackRuns();
const MiB = 1024 * 1024;

describe.sequential("python baker", () => {
  it("bakes hello-python with its wheels and boots it: HTTP, -e, KILN_ENV, uid 1000, read-only /, no shell", async () => {
    const { image } = await bakeExample("hello-python", home);
    const m = image.manifest;
    expect(m.baker).toBe("python");
    expect(m.cmd).toEqual(["/usr/bin/python3", "-u", "app.py"]);
    // The wheels are the dependency layer (partition 4, mounted on /app/.kiln/site-packages), not part of the app layer.
    expect(m.layout.partitions.find((p) => p.name === "deps")).toMatchObject({ number: 4 });
    expect(m.layers.find((l) => l.name === "deps")?.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(m.packages.map((p) => `${p.name}:${p.role}`)).toEqual(
      expect.arrayContaining([
        "python3.11-minimal:runtime",
        "libpython3.11-minimal:runtime",
        "libpython3.11-stdlib:runtime",
        "libssl3:lib",
      ]),
    );
    expect(m.files).toContainEqual(expect.objectContaining({ path: "/usr/lib/python3.11/", kind: "runtime" }));
    expect(m.sizes.runtime).toBeLessThan(40 * MiB);

    const run = await boot(image.ref, home, { env: ["GREETING=from-seed"], kilnEnv: "test" });
    running.push(run);
    const answer = await httpGet(`http://127.0.0.1:${run.port}/`);
    expect(answer.status).toBe(200);
    const body = JSON.parse(answer.body) as Record<string, unknown>;
    expect(body).toMatchObject({
      message: "from-seed",
      env: "test",
      image: "hello-python:0.1.0",
      runtime: "python",
      uid: 1000,
      shells: [],
    });
    expect(String(body.python)).toMatch(/^3\.11\./);
    expect(body.rootWrite).toMatch(/Read-only file system/);
    // The requirements came from wheels: the manylinux one with its C extension.
    expect(body).toMatchObject({ escaped: "&lt;kiln&gt;", speedups: true, packaging: "24.1", newer: true });
    expect(body.sysPath).toContain("/app/.kiln/site-packages");
    console.log(
      `hello-python: runtime ${(m.sizes.runtime / MiB).toFixed(1)} MiB, libs ${(m.sizes.libs / MiB).toFixed(1)} MiB, app ${(m.sizes.app / 1024).toFixed(1)} KiB, kernel ${(m.sizes.kernel / MiB).toFixed(1)} MiB, init ${(m.sizes.init / MiB).toFixed(1)} MiB; allocated ${(m.sizes.allocated / MiB).toFixed(1)} MiB; boot to healthy ${run.bootToHealthySeconds?.toFixed(1)} s`,
    );
  }, 900_000);
});
