// Scheduled rebakes, for real: a Debian-style repository made here (dpkg-deb + dpkg-scanpackages,
// served on loopback, suites bookworm and bookworm-security) next to the host's sources in a
// private apt configuration (KILN_APT_CONFIG). After a newer busybox-static is published,
// kiln outdated reports it (as a security update with its CVE when it comes from the security
// suite); kiln rebake gives a new digest whose manifest shows old → new, the app partition is
// byte-identical, kiln.lock follows, --frozen holds the lock to it, the SBOM validates against
// CycloneDX 1.5's schema, the rebaked image boots (one BIOS boot), and pushing it to the AWS
// emulator uploads only the changed blocks.
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAwsClients } from "../../src/aws/clients.js";
import { bake } from "../../src/bake/bake.js";
import { ImageStore, type StoredImage } from "../../src/image/store.js";
import { AptSource } from "../../src/packages/apt.js";
import { readLock } from "../../src/packages/lock.js";
import { pushImage } from "../../src/push/push.js";
import { outdated } from "../../src/rebake/outdated-images.js";
import { extractPartition } from "../../src/rebake/app-layer.js";
import { rebake } from "../../src/rebake/rebake.js";
import { cycloneDx15Validator } from "../fixtures/apt-repo/cyclonedx.js";
import { buildUpdatedDeb, startLoopbackRepo, type LoopbackRepo } from "../fixtures/apt-repo/repo.js";
import { boot, cli, httpGet, quiet, repo, sharedHome } from "./harness.js";
import { startMoto, useEmulatorCredentials } from "./moto.js";

const home = sharedHome();
const APP = "patchdemo";
const CVE = "CVE-2099-41234";
let work: string;
let app: string;
let loopback: LoopbackRepo;
let original: StoredImage;
let rebaked: StoredImage;
let busyboxNow: string;
let realBusybox: string;
const timings: Record<string, number> = {};

const appDir = () => app;
const check = (extra: Partial<Parameters<typeof outdated>[0]> = {}) =>
  outdated({ home, config: appDir(), progress: quiet, environments: false, ...extra });

async function timed<T>(label: string, work: () => Promise<T>): Promise<T> {
  const started = performance.now();
  try {
    return await work();
  } finally {
    timings[label] = (performance.now() - started) / 1000;
  }
}

beforeAll(async () => {
  execFileSync("make", ["-s", "-C", path.join(repo, "examples", "hello-native")]);
  work = mkdtempSync(path.join(os.tmpdir(), "kiln-rebake-"));
  app = path.join(work, "app");
  cpSync(path.join(repo, "examples", "hello-native"), app, { recursive: true, filter: (src) => !src.endsWith("kiln.lock") });
  writeFileSync(
    path.join(app, "kiln.yml"),
    `name: ${APP}\nversion: "1.4.0"\ncmd: ./server --listen 8080\nport: 8080\nhealthcheck:\n  path: /healthz\n`,
  );
  loopback = await startLoopbackRepo(work);
  process.env.KILN_APT_CONFIG = loopback.aptConfig;
  await new AptSource(home.cache).update();
  const candidate = await new AptSource(home.cache).resolve("busybox-static");
  busyboxNow = candidate.version;
  realBusybox = await new AptSource(home.cache).download(candidate);
  original = (await timed("first bake (warm caches)", () => bake(app, {}, home, quiet))).image;
  await timed("warm bake (nothing changed)", () => bake(app, { version: "1.4.0-warm" }, home, quiet));
  await new ImageStore(home).remove(`${APP}:1.4.0-warm`);
});

afterAll(async () => {
  delete process.env.KILN_APT_CONFIG;
  await loopback?.stop();
  const store = new ImageStore(home);
  for (const i of (await store.list()).filter((i) => i.manifest.name === APP)) await store.remove(i.ref).catch(() => undefined);
  console.log(
    `rebake timings (s): ${JSON.stringify(Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, Number(v.toFixed(2))])))}`,
  );
});

describe.sequential("outdated → rebake against a local Debian repository", () => {
  it("a fresh bake is current; the manifest embeds the lock and an SBOM that validates against CycloneDX 1.5", async () => {
    const report = await check();
    expect(report.images.map((i) => [i.ref, i.updates.length])).toEqual([[`${APP}:1.4.0`, 0]]);
    expect(report.rebakeNeeded).toBe(false);
    const m = original.manifest;
    expect(m.lock?.packages).toEqual(m.packages);
    expect(m.lock).toEqual(await readLock(app));
    const sbom = JSON.parse(readFileSync(path.join(original.dir, "sbom.json"), "utf8"));
    expect(sbom).toEqual(JSON.parse(JSON.stringify(m.sbom)));
    const validity = cycloneDx15Validator()(sbom);
    expect(validity.errors).toEqual([]);
    expect(sbom.components.map((c: { name: string }) => c.name).sort()).toEqual(m.packages.map((p) => p.name).sort());
  });

  it("a newer busybox-static in bookworm is reported (not security); the CLI's exit code says 'rebake'", async () => {
    const deb = await buildUpdatedDeb({
      from: realBusybox,
      workDir: work,
      version: `${busyboxNow}+kilntest1`,
      distribution: "bookworm",
      changes: "* Point release rebuild (kiln test).",
      appendTo: "bin/busybox",
    });
    await loopback.publish(deb, "bookworm");
    const report = await timed("kiln outdated (refresh + check)", () => check());
    const updates = report.images[0]!.updates;
    expect(updates.map((u) => [u.name, u.from.version, u.to.version, u.to.source, u.security])).toEqual([
      ["busybox-static", busyboxNow, `${busyboxNow}+kilntest1`, "debian:bookworm/main", false],
    ]);
    expect(report.rebakeNeeded).toBe(true);
    expect(report.securityUpdates).toBe(0);
    const env = { KILN_HOME: home.root, KILN_APT_CONFIG: loopback.aptConfig };
    const needed = await cli(["outdated", "--config", app, "--no-envs", "--json"], env);
    expect(needed.code, needed.stderr).toBe(0);
    expect(JSON.parse(needed.stdout).updates).toBe(1);
    const securityOnly = await cli(["outdated", "--config", app, "--no-envs", "--no-refresh", "--security-only"], env);
    expect(securityOnly.code, securityOnly.stderr).toBe(10);
    expect(securityOnly.stdout).toContain("busybox-static");
  });

  it("a newer one in bookworm-security is a security update with the CVE its changelog names", async () => {
    const deb = await buildUpdatedDeb({
      from: realBusybox,
      workDir: work,
      version: `${busyboxNow}+kilntest2`,
      distribution: "bookworm-security",
      changes: `* Security update.\n  - ${CVE}: heap overflow in the test applet`,
      appendTo: "bin/busybox",
    });
    await loopback.publish(deb, "bookworm-security");
    const report = await check();
    const [update] = report.images[0]!.updates;
    expect(update).toMatchObject({
      name: "busybox-static",
      to: { version: `${busyboxNow}+kilntest2`, source: "debian:bookworm-security/main" },
      security: true,
      cves: [CVE],
    });
    expect(report.securityUpdates).toBe(1);
    const cliReport = await cli(["outdated", "--config", app, "--no-envs", "--no-refresh"], {
      KILN_HOME: home.root,
      KILN_APT_CONFIG: loopback.aptConfig,
    });
    expect(cliReport.code).toBe(0);
    expect(cliReport.stdout).toMatch(new RegExp(`busybox-static .* → .*kilntest2 .*SECURITY.*${CVE}`));
  });

  it("kiln rebake: same app bytes, busybox old → new, new label and digest, kiln.lock updated", async () => {
    // The CLI in a fresh process: what a scheduled run pays (no apt answers remembered).
    const out = await timed("kiln rebake CLI (base update, app unchanged)", () =>
      cli(["rebake", original.ref, "--config", app, "--json"], { KILN_HOME: home.root, KILN_APT_CONFIG: loopback.aptConfig }),
    );
    expect(out.code, out.stderr).toBe(0);
    const result = JSON.parse(out.stdout) as {
      rebaked: boolean;
      image: { ref: string };
      changes: unknown[];
      appLayerIdentical: boolean;
      seconds: number;
    };
    timings["kiln rebake (its own report)"] = result.seconds;
    expect(result.rebaked).toBe(true);
    rebaked = await new ImageStore(home).resolve(result.image.ref);
    expect(rebaked.ref).toBe(`${APP}:1.4.0-r2`);
    expect(rebaked.digest).not.toBe(original.digest);
    expect(result.changes).toEqual([
      { name: "busybox-static", role: "init", from: busyboxNow, to: `${busyboxNow}+kilntest2`, source: "debian:bookworm-security/main" },
    ]);
    expect(rebaked.manifest.rebake).toMatchObject({ from: { ref: original.ref, digest: original.digest }, changes: result.changes });
    // The app partition: byte for byte the same content, cut from both raw disks.
    const a = await extractPartition(original, "app", path.join(work, "a.erofs"));
    const b = await extractPartition(rebaked, "app", path.join(work, "b.erofs"));
    expect(b).toEqual(a);
    expect(readFileSync(path.join(work, "b.erofs")).equals(readFileSync(path.join(work, "a.erofs")))).toBe(true);
    expect(result.appLayerIdentical).toBe(true);
    // The init layer (busybox) changed; the system layer did not.
    const layer = (i: StoredImage, n: string) => i.manifest.layers.find((l) => l.name === n)!.sha256;
    expect(layer(rebaked, "init")).not.toBe(layer(original, "init"));
    expect(layer(rebaked, "system")).toBe(layer(original, "system"));
    const lock = await readLock(app);
    expect(lock?.packages.find((p) => p.name === "busybox-static")).toMatchObject({
      version: `${busyboxNow}+kilntest2`,
      source: "debian:bookworm-security/main",
    });
    expect(rebaked.manifest.lock).toEqual(lock);
    expect(cycloneDx15Validator()(rebaked.manifest.sbom).valid).toBe(true);
    // Nothing newer now: outdated on the rebaked image says so, and a second rebake does nothing.
    expect((await check({ refresh: false, all: false })).images[0]).toMatchObject({ ref: rebaked.ref, updates: [] });
    expect((await rebake({ home, ref: rebaked.ref, config: app, progress: quiet })).rebaked).toBe(false);
  });

  it("bake --frozen holds the build to kiln.lock", async () => {
    const frozen = await bake(app, { version: "1.4.0-frozen" }, home, quiet, { frozen: true });
    expect(frozen.image.manifest.packages).toEqual(rebaked.manifest.packages);
    expect(frozen.lockChanged).toBe(false);
    const lockFile = path.join(app, "kiln.lock");
    const text = readFileSync(lockFile, "utf8");
    const lock = JSON.parse(text) as { packages: { name: string }[] };
    const partial = JSON.stringify({ ...lock, packages: lock.packages.filter((p) => p.name !== "systemd-boot-efi") }, null, 2);
    writeFileSync(lockFile, partial);
    try {
      await expect(bake(app, { version: "1.4.0-frozen2" }, home, quiet, { frozen: true })).rejects.toThrow(
        /--frozen: kiln\.lock has no entry for systemd-boot-efi/,
      );
      const viaCli = await cli(["bake", app, "--version", "1.4.0-frozen2", "--frozen"], {
        KILN_HOME: home.root,
        KILN_APT_CONFIG: loopback.aptConfig,
      });
      expect(viaCli.code).toBe(2);
      expect(viaCli.stderr).toContain("systemd-boot-efi");
      expect(readFileSync(lockFile, "utf8")).toBe(partial); // a frozen bake never rewrites the lock
    } finally {
      writeFileSync(lockFile, text);
    }
  });

  it("the rebaked image boots and answers (BIOS)", async () => {
    const run = await boot(rebaked.ref, home);
    try {
      const answer = await httpGet(`http://127.0.0.1:${run.port}/`);
      expect(answer.status).toBe(200);
      // The app layer is the original's, so the app still names the build it came from.
      expect(JSON.parse(answer.body)).toMatchObject({ runtime: "native", image: original.ref });
    } finally {
      expect(await run.vm.shutdown(30_000)).toBe("clean");
    }
  });

  it("pushing the rebaked image to the AWS emulator uploads only the changed blocks", async () => {
    useEmulatorCredentials();
    const moto = await startMoto();
    try {
      const clients = createAwsClients({ region: "eu-west-1", endpoint: moto.endpoint, maxAttempts: 1 });
      const full = await pushImage({ ref: original.ref, clients, home });
      const incremental = await pushImage({ ref: rebaked.ref, clients, home });
      expect(incremental.parentSnapshot).toBe(full.snapshot);
      expect(incremental.uploadedBytes).toBeLessThan(full.uploadedBytes);
      console.log(
        `push: full ${original.ref} ${full.uploadedBlocks} blocks / ${(full.uploadedBytes / 1048576).toFixed(2)} MiB (${full.seconds.toFixed(2)}s); rebaked ${rebaked.ref} ${incremental.uploadedBlocks} blocks / ${(incremental.uploadedBytes / 1048576).toFixed(2)} MiB (${incremental.seconds.toFixed(2)}s), ${incremental.skippedBlocks.unchanged} unchanged blocks skipped; raw disk ${(rebaked.manifest.sizes.rawDisk / 1048576).toFixed(0)} MiB`,
      );
    } finally {
      await moto.stop();
    }
  });
});
