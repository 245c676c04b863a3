// Issue 16: kiln rebake of an image with a dependency partition. A Node app with one local
// pure-JS dependency (file:./greeter, pinned by package-lock.json, so no registry is needed) is
// baked; a newer busybox-static is published to a loopback Debian repository (as in
// rebake.test.ts); kiln rebake must then carry the deps partition (node_modules, partition 4) and
// the app partition over byte for byte at the same offsets, keep the deps layer's sha256 in the
// manifest and the dependency in the SBOM, update kiln.lock, boot (BIOS) and answer HTTP with a
// string only the dependency makes, and push to the AWS emulator uploading only changed blocks.
// The same for a Python app with one pinned pure-Python wheel (a local .whl made here, so no
// package index is needed either): its site-packages is the deps partition.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAwsClients } from "../../src/aws/clients.js";
import { bake } from "../../src/bake/bake.js";
import { ImageStore, type StoredImage } from "../../src/image/store.js";
import { AptSource } from "../../src/packages/apt.js";
import { readLock } from "../../src/packages/lock.js";
import { pushImage } from "../../src/push/push.js";
import { extractPartition } from "../../src/rebake/app-layer.js";
import { cycloneDx15Validator } from "../fixtures/apt-repo/cyclonedx.js";
import { buildUpdatedDeb, startLoopbackRepo, type LoopbackRepo } from "../fixtures/apt-repo/repo.js";
import { boot, cli, httpGet, quiet, sharedHome } from "./harness.js";
import { startMoto, useEmulatorCredentials } from "./moto.js";

const home = sharedHome();
const APP = "depsrebake";
const PY_APP = "depsrebakepy";
let work: string;
let loopback: LoopbackRepo;
let busyboxNow: string;
const started = performance.now();

/** A Node service whose answer comes from its one dependency, a local package. */
function writeApp(dir: string): void {
  mkdirSync(path.join(dir, "greeter"), { recursive: true });
  const pkg = {
    name: APP,
    version: "2.0.0",
    main: "server.js",
    engines: { node: "20" },
    dependencies: { "kiln-greeter": "file:./greeter" },
  };
  writeFileSync(path.join(dir, "package.json"), `${JSON.stringify(pkg, null, 2)}\n`);
  writeFileSync(
    path.join(dir, "package-lock.json"),
    `${JSON.stringify(
      {
        name: APP,
        version: "2.0.0",
        lockfileVersion: 3,
        requires: true,
        packages: {
          "": { name: APP, version: "2.0.0", dependencies: { "kiln-greeter": "file:./greeter" }, engines: { node: "20" } },
          greeter: { name: "kiln-greeter", version: "1.3.0", license: "MIT" },
          "node_modules/kiln-greeter": { resolved: "greeter", link: true },
        },
      },
      null,
      2,
    )}\n`,
  );
  writeFileSync(
    path.join(dir, "greeter", "package.json"),
    `${JSON.stringify({ name: "kiln-greeter", version: "1.3.0", main: "index.js", license: "MIT" }, null, 2)}\n`,
  );
  writeFileSync(path.join(dir, "greeter", "index.js"), "exports.greet = (who) => `greetings, ${who}, from kiln-greeter`;\n");
  writeFileSync(
    path.join(dir, "server.js"),
    [
      'const http = require("node:http");',
      'const { greet } = require("kiln-greeter");',
      "const server = http.createServer((req, res) => {",
      '  if (req.url === "/healthz") return res.end("ok\\n");',
      '  res.writeHead(200, { "content-type": "application/json" });',
      '  res.end(JSON.stringify({ greeting: greet("rebake"), image: process.env.KILN_IMAGE }));',
      "});",
      'server.listen(Number(process.env.PORT || 8080), "0.0.0.0");',
      'process.on("SIGTERM", () => server.close(() => process.exit(0)));',
      "",
    ].join("\n"),
  );
  writeFileSync(path.join(dir, "kiln.yml"), "healthcheck:\n  path: /healthz\n");
}

/** A Python service whose answer comes from its one requirement, a pinned local wheel. */
function writePythonApp(dir: string): void {
  const tree = path.join(dir, "..", "wheel-tree");
  mkdirSync(path.join(tree, "kiln_greeter"), { recursive: true });
  mkdirSync(path.join(tree, "kiln_greeter-1.3.0.dist-info"), { recursive: true });
  writeFileSync(path.join(tree, "kiln_greeter", "__init__.py"), 'def greet(who):\n    return f"greetings, {who}, from kiln-greeter"\n');
  const info = path.join(tree, "kiln_greeter-1.3.0.dist-info");
  writeFileSync(path.join(info, "METADATA"), "Metadata-Version: 2.1\nName: kiln-greeter\nVersion: 1.3.0\nLicense: MIT\n");
  writeFileSync(path.join(info, "WHEEL"), "Wheel-Version: 1.0\nGenerator: kiln-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n");
  writeFileSync(
    path.join(info, "RECORD"),
    "kiln_greeter/__init__.py,,\nkiln_greeter-1.3.0.dist-info/METADATA,,\nkiln_greeter-1.3.0.dist-info/WHEEL,,\nkiln_greeter-1.3.0.dist-info/RECORD,,\n",
  );
  mkdirSync(path.join(dir, "wheels"), { recursive: true });
  const wheel = path.join(dir, "wheels", "kiln_greeter-1.3.0-py3-none-any.whl");
  execFileSync("python3", ["-m", "zipfile", "-c", wheel, "kiln_greeter", "kiln_greeter-1.3.0.dist-info"], { cwd: tree });
  writeFileSync(path.join(dir, "requirements.txt"), "--no-index\n./wheels/kiln_greeter-1.3.0-py3-none-any.whl\n");
  writeFileSync(
    path.join(dir, "app.py"),
    [
      "import json, os, signal, sys",
      "from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer",
      "from kiln_greeter import greet",
      "class Handler(BaseHTTPRequestHandler):",
      "    def do_GET(self):",
      '        body = b"ok\\n" if self.path == "/healthz" else json.dumps({"greeting": greet("rebake"), "image": os.environ.get("KILN_IMAGE")}).encode()',
      "        self.send_response(200)",
      "        self.end_headers()",
      "        self.wfile.write(body)",
      'server = ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Handler)',
      "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))",
      "server.serve_forever()",
      "",
    ].join("\n"),
  );
  writeFileSync(path.join(dir, "kiln.yml"), `name: ${PY_APP}\nversion: "2.0.0"\nhealthcheck:\n  path: /healthz\n`);
}

interface Case {
  readonly runtime: string;
  readonly name: string;
  readonly write: (dir: string) => void;
  /** The dependency as the SBOM names it. */
  readonly component: RegExp;
  app: string;
  original?: StoredImage;
  rebaked?: StoredImage;
}

const cases: Case[] = [
  { runtime: "node", name: APP, write: writeApp, component: /^kiln-greeter$/, app: "" },
  { runtime: "python", name: PY_APP, write: writePythonApp, component: /^kiln[-_]greeter$/i, app: "" },
];

beforeAll(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), "kiln-rebake-deps-"));
  loopback = await startLoopbackRepo(work);
  process.env.KILN_APT_CONFIG = loopback.aptConfig;
  await new AptSource(home.cache).update();
  const candidate = await new AptSource(home.cache).resolve("busybox-static");
  busyboxNow = candidate.version;
  const realBusybox = await new AptSource(home.cache).download(candidate);
  for (const c of cases) {
    c.app = path.join(work, c.runtime, "app");
    mkdirSync(c.app, { recursive: true });
    c.write(c.app);
    const t0 = performance.now();
    c.original = (await bake(c.app, {}, home, quiet)).image;
    console.log(`rebake-deps: ${c.runtime} bake ${((performance.now() - t0) / 1000).toFixed(2)} s`);
  }
  const deb = await buildUpdatedDeb({
    from: realBusybox,
    workDir: work,
    version: `${busyboxNow}+kilndeps1`,
    distribution: "bookworm",
    changes: "* Point release rebuild (kiln deps rebake test).",
    appendTo: "bin/busybox",
  });
  await loopback.publish(deb, "bookworm");
  // kiln rebake reads the package indexes that kiln outdated refreshes (as a scheduled run does).
  await new AptSource(home.cache).update();
}, 900_000);

afterAll(async () => {
  delete process.env.KILN_APT_CONFIG;
  await loopback?.stop();
  const store = new ImageStore(home);
  for (const i of (await store.list()).filter((i) => i.manifest.name === APP || i.manifest.name === PY_APP))
    await store.remove(i.ref).catch(() => undefined);
  console.log(`rebake-deps: whole file ${((performance.now() - started) / 1000).toFixed(1)} s`);
});

const layerOf = (i: StoredImage, n: string) => i.manifest.layers.find((l) => l.name === n);
const partitionOf = (i: StoredImage, n: string) => i.manifest.layout.partitions.find((p) => p.name === n);

describe.sequential.each(cases)("kiln rebake of a $runtime image with a dependency partition", (c) => {
  it("the original has a deps partition holding the dependency, listed in its SBOM", () => {
    const original = c.original!;
    expect(partitionOf(original, "deps")).toMatchObject({ number: 4, contentBytes: layerOf(original, "deps")?.bytes });
    expect(layerOf(original, "deps")?.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(original.manifest.sbom?.components.filter((x) => c.component.test(x.name)).map((x) => x.version)).toEqual(["1.3.0"]);
  });

  it("kiln rebake keeps the deps and app partitions byte for byte at the same offsets; SBOM and kiln.lock follow", async () => {
    const original = c.original!;
    const t0 = performance.now();
    const out = await cli(["rebake", original.ref, "--config", c.app, "--json"], {
      KILN_HOME: home.root,
      KILN_APT_CONFIG: loopback.aptConfig,
    });
    const seconds = (performance.now() - t0) / 1000;
    expect(out.code, out.stderr).toBe(0);
    const result = JSON.parse(out.stdout) as { rebaked: boolean; image: { ref: string }; appLayerIdentical: boolean; seconds: number };
    console.log(
      `rebake-deps: ${c.runtime} kiln rebake CLI ${seconds.toFixed(2)} s (its own report ${result.seconds.toFixed(2)} s)\n${out.stderr}`,
    );
    expect(result.rebaked).toBe(true);
    expect(result.appLayerIdentical).toBe(true);
    const rebaked = await new ImageStore(home).resolve(result.image.ref);
    c.rebaked = rebaked;
    expect(rebaked.ref).toBe(`${c.name}:2.0.0-r2`);
    expect(rebaked.digest).not.toBe(original.digest);
    expect(layerOf(rebaked, "init")?.sha256).not.toBe(layerOf(original, "init")?.sha256);

    for (const name of ["deps", "app"] as const) {
      const file = (which: string) => path.join(work, `${c.runtime}-${name}-${which}.erofs`);
      const a = await extractPartition(original, name, file("a"));
      const b = await extractPartition(rebaked, name, file("b"));
      expect(b, name).toEqual(a);
      expect(readFileSync(file("b")).equals(readFileSync(file("a"))), name).toBe(true);
      expect(partitionOf(rebaked, name), name).toEqual(partitionOf(original, name));
      expect(layerOf(rebaked, name)?.sha256, name).toBe(a.sha256);
    }
    expect(layerOf(rebaked, "deps")).toMatchObject({ sha256: layerOf(original, "deps")?.sha256, bytes: layerOf(original, "deps")?.bytes });

    expect(rebaked.manifest.sbom?.components.filter((x) => c.component.test(x.name)).map((x) => x.version)).toEqual(["1.3.0"]);
    expect(cycloneDx15Validator()(rebaked.manifest.sbom).valid).toBe(true);
    const sbomFile = JSON.parse(readFileSync(path.join(rebaked.dir, "sbom.json"), "utf8"));
    expect(sbomFile).toEqual(JSON.parse(JSON.stringify(rebaked.manifest.sbom)));

    const lock = await readLock(c.app);
    expect(lock?.packages.find((p) => p.name === "busybox-static")?.version).toBe(`${busyboxNow}+kilndeps1`);
    expect(rebaked.manifest.lock).toEqual(lock);
  });

  it("the rebaked image boots (BIOS) and answers with the string its dependency makes", async () => {
    const run = await boot(c.rebaked!.ref, home);
    try {
      const answer = await httpGet(`http://127.0.0.1:${run.port}/`);
      expect(answer.status).toBe(200);
      // The app layer is the original's, so the app still names the build it came from.
      expect(JSON.parse(answer.body)).toEqual({ greeting: "greetings, rebake, from kiln-greeter", image: c.original!.ref });
    } finally {
      expect(await run.vm.shutdown(30_000)).toBe("clean");
    }
  });

  it.runIf(c.runtime === "node")("pushing the rebaked image after the original uploads only the changed blocks", async () => {
    useEmulatorCredentials();
    const moto = await startMoto();
    try {
      const clients = createAwsClients({ region: "eu-west-1", endpoint: moto.endpoint, maxAttempts: 1 });
      const full = await pushImage({ ref: c.original!.ref, clients, home });
      const incremental = await pushImage({ ref: c.rebaked!.ref, clients, home });
      expect(incremental.parentSnapshot).toBe(full.snapshot);
      expect(incremental.uploadedBytes).toBeLessThan(full.uploadedBytes);
      console.log(
        `rebake-deps push: full ${full.uploadedBlocks} blocks, incremental ${incremental.uploadedBlocks} blocks (${incremental.skippedBlocks.unchanged} unchanged skipped)`,
      );
    } finally {
      await moto.stop();
    }
  });
});
