/**
 * Debian packages through the host's configured apt sources: resolve a version (pinned by
 * the lock, else apt's candidate), download the .deb into kiln's cache, check its sha256
 * against the archive's index, and unpack it once per sha256.
 */
import { mkdir, readdir, rename } from "node:fs/promises";
import path from "node:path";
import { KilnError, InputError, CommandFailedError } from "../errors.js";
import { run } from "../exec.js";
import { exists, makeScratchDir, publishDir, removeDir, sha256File } from "../fsutil.js";
import type { LockEntry } from "./lock.js";

export interface DebianPackage {
  readonly name: string;
  readonly version: string;
  readonly sha256: string;
  readonly depends: string;
  /** "debian:<suite>/<component>", without the archive's host. */
  readonly source: string;
}

/** Parses `apt-cache show` output (RFC 822 style stanzas). */
export function parseStanzas(text: string): Record<string, string>[] {
  const stanzas: Record<string, string>[] = [];
  for (const block of text.split(/\n\s*\n/)) {
    const fields: Record<string, string> = {};
    let last = "";
    for (const line of block.split("\n")) {
      if (/^\s/.test(line) && last) fields[last] += `\n${line.trim()}`;
      else {
        const m = /^([A-Za-z0-9-]+):\s?(.*)$/.exec(line);
        if (m) {
          last = m[1]!;
          fields[last] = m[2]!;
        }
      }
    }
    if (fields.Package) stanzas.push(fields);
  }
  return stanzas;
}

/** From `apt-cache madison` rows, the suite/component that carries `version`. */
export function parseMadisonSource(text: string, version: string): string {
  for (const line of text.split("\n")) {
    const cols = line.split("|").map((c) => c.trim());
    if (cols[1] === version && cols[2]) {
      const parts = cols[2].split(/\s+/);
      // "<uri> <suite>/<component> <arch> Packages": keep only the suite/component.
      const suite = parts.find((p) => /^[a-z-]+\/[a-z-]+$/.test(p));
      if (suite) return `debian:${suite}`;
    }
  }
  return "debian";
}

export class AptSource {
  constructor(private readonly cacheDir: string) {}

  /** Resolves a package to one exact version: the pinned one if given, else apt's candidate. */
  async resolve(name: string, pinned?: string): Promise<DebianPackage> {
    let out: string;
    try {
      out = (await run(["apt-cache", "show", pinned ? `${name}=${pinned}` : name])).stdout;
    } catch (error) {
      if (error instanceof CommandFailedError) {
        throw new InputError(pinned ? `Debian package ${name} ${pinned} (pinned in kiln.lock) is not in the configured apt sources` : `Debian package ${name} is not in the configured apt sources`, {
          hint: pinned ? "run apt-get update; if the version was superseded, delete its entry from kiln.lock (or run kiln rebake) to take the current one" : "check the name (apt-cache search), or run apt-get update",
          cause: error,
        });
      }
      throw error;
    }
    const stanzas = parseStanzas(out).filter((s) => s.Package === name);
    const chosen = pinned ? stanzas.find((s) => s.Version === pinned) : await this.candidate(name, stanzas);
    if (!chosen?.Version || !chosen.SHA256) throw new KilnError(`apt-cache show ${name} gave no version with a SHA256`);
    const madison = (await run(["apt-cache", "madison", name])).stdout;
    return { name, version: chosen.Version, sha256: chosen.SHA256, depends: chosen.Depends ?? "", source: parseMadisonSource(madison, chosen.Version) };
  }

  private async candidate(name: string, stanzas: Record<string, string>[]): Promise<Record<string, string> | undefined> {
    const policy = (await run(["apt-cache", "policy", name])).stdout;
    const candidate = /Candidate:\s*(\S+)/.exec(policy)?.[1];
    return stanzas.find((s) => s.Version === candidate) ?? stanzas[0];
  }

  /** Downloads the .deb (once) and checks it against the sha256 from the archive index. */
  async download(pkg: DebianPackage): Promise<string> {
    const dir = path.join(this.cacheDir, "debs");
    const file = path.join(dir, `${pkg.name}_${pkg.version.replace(/:/g, "%3a")}_${pkg.sha256.slice(0, 12)}.deb`);
    if (await exists(file)) return file;
    await mkdir(dir, { recursive: true });
    const scratch = await makeScratchDir(dir, "download");
    try {
      // As root apt would try to drop to the _apt user, who cannot write into kiln's cache.
      const sandbox = process.getuid?.() === 0 ? ["-o", "APT::Sandbox::User=root"] : [];
      await run(["apt-get", "download", "-q", ...sandbox, `${pkg.name}=${pkg.version}`], { cwd: scratch });
      const [fetched] = (await readdir(scratch)).filter((f) => f.endsWith(".deb"));
      if (!fetched) throw new KilnError(`apt-get download ${pkg.name}=${pkg.version} produced no .deb`);
      const actual = await sha256File(path.join(scratch, fetched));
      if (actual !== pkg.sha256) {
        throw new KilnError(`downloaded ${pkg.name} ${pkg.version} has sha256 ${actual}, but the archive index says ${pkg.sha256}`, { hint: "run apt-get update and try again; if it persists, the mirror is serving a different file" });
      }
      await rename(path.join(scratch, fetched), file);
      return file;
    } finally {
      await removeDir(scratch);
    }
  }

  /** Unpacks a .deb's file tree once; the directory is keyed by the package's sha256. */
  async unpack(pkg: DebianPackage): Promise<string> {
    const dest = path.join(this.cacheDir, "unpacked", `${pkg.name}-${pkg.sha256.slice(0, 16)}`);
    if (await exists(dest)) return dest;
    const deb = await this.download(pkg);
    const scratch = await makeScratchDir(path.join(this.cacheDir, "unpacked"), "unpack");
    try {
      await run(["dpkg-deb", "-x", deb, scratch]);
      await publishDir(scratch, dest);
    } catch (error) {
      await removeDir(scratch);
      throw error;
    }
    return dest;
  }

  /** The Debian package that owns a file on this host, if any (`dpkg -S`). */
  async ownerOf(file: string): Promise<string | undefined> {
    const candidates = [file];
    // Debian 12 is usr-merged on disk, but packages still list /lib paths (and vice versa).
    if (file.startsWith("/usr/lib/")) candidates.push(file.slice(4));
    else if (file.startsWith("/lib/")) candidates.push(`/usr${file}`);
    for (const candidate of candidates) {
      try {
        const out = (await run(["dpkg", "-S", candidate])).stdout;
        const owner = out.split("\n").find((l) => l.includes(": "))?.split(":")[0]?.split(",")[0]?.trim();
        if (owner) return owner;
      } catch {
        // not owned under this spelling; try the next one
      }
    }
    return undefined;
  }
}

export function lockEntryOf(pkg: DebianPackage, role: LockEntry["role"]): LockEntry {
  return { name: pkg.name, version: pkg.version, source: pkg.source, sha256: pkg.sha256, role };
}
