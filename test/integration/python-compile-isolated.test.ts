// Hole 3 of issue 12: the python baker byte-compiles the app with the image's interpreter on the
// build host. It must never import the app's own modules while doing so: an app whose re.py,
// compileall.py or py_compile.py shadows the standard library would otherwise run as the bake's
// user (root on build machines). Each shadowing module here writes a marker file outside the app
// when imported; after a real bake no marker may exist.
import { mkdtempSync, existsSync, writeFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { bake } from "../../src/bake/bake.js";
import { quiet, sharedHome } from "./harness.js";

const home = sharedHome();
const outside = mkdtempSync(path.join(os.tmpdir(), "kiln-hole3-outside-"));
const app = mkdtempSync(path.join(os.tmpdir(), "kiln-hole3-app-"));
afterAll(() => {
  rmSync(outside, { recursive: true, force: true });
  rmSync(app, { recursive: true, force: true });
});

const SHADOWED = ["re", "compileall", "py_compile", "sitecustomize", "usercustomize", "encodings"];

describe("python baker: byte-compiling never runs the app's code on the host", () => {
  it("an app whose modules shadow the standard library bakes without any of them running", async () => {
    writeFileSync(path.join(app, "app.py"), "import http.server\nprint('hello')\n");
    writeFileSync(path.join(app, "kiln.yml"), "version: 0.1.0\n");
    for (const name of SHADOWED) {
      const marker = path.join(outside, `${name}-ran`);
      writeFileSync(path.join(app, `${name}.py`), `open(${JSON.stringify(marker)}, "w").write("app code ran at bake time")\n`);
    }
    const outcome = await bake(app, { name: "hole3" }, home, quiet).catch((error: unknown) => error as Error);
    // The markers first: a shadowed module that ran may also have broken the bake.
    const ran = SHADOWED.filter((name) => existsSync(path.join(outside, `${name}-ran`)));
    expect(ran).toEqual([]);
    if (outcome instanceof Error) throw outcome;
    expect(outcome.image.manifest.baker).toBe("python");
  }, 900_000);
});
