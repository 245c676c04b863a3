/**
 * Debian packages through the host's configured apt sources: resolve a version (pinned by
 * the lock, else apt's candidate), download the .deb into kiln's cache, check its sha256
 * against the archive's index, and unpack it once per sha256.
 *
 * kiln.lock is input like any other: a package is used only after its bytes prove what the
 * lock says (verify: the cached .deb's sha256, and its own control fields for name, version
 * and architecture), on every bake, cache hits included.
 *
 * KILN_APT_CONFIG=DIR gives kiln a private apt configuration instead of the host's /etc/apt
 * and /var/lib/apt: DIR/sources.list, DIR/sources.list.d/, DIR/preferences.d/, DIR/lists/ and
 * DIR/cache/. Tests point it at a loopback repository; a mirror or a staging archive works too.
 */
import { lstat, mkdir, readdir, readFile, rename, stat } from "node:fs/promises";
import path from "node:path";
import { KilnError, InputError, CommandFailedError } from "../errors.js";
import { run } from "../exec.js";
import { exists, makeScratchDir, publishDir, removeDir, sha256File, writeFileAtomic } from "../fsutil.js";
import { identityFromStats } from "../file-identity.js";
import { LOCK_FIX_HINT, lockFieldError, type LockEntry } from "./lock.js";
import { recordVerified, verifiedUnchanged } from "./verified-record.js";
import { parsePolicy, sourceOf } from "./policy.js";
import { makePrivateDir } from "../private-fs.js";

/** Architectures an amd64 image can use. */
const USABLE_ARCHITECTURES = new Set(["amd64", "all"]);

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

export const APT_CONFIG_ENV = "KILN_APT_CONFIG";

/** The `-o` options that make apt-get/apt-cache use a private configuration directory. */
export function aptConfigOptions(dir: string | undefined): string[] {
  if (!dir) return [];
  const at = (rel: string) => path.join(path.resolve(dir), rel);
  return [
    "-o",
    `Dir::Etc::SourceList=${at("sources.list")}`,
    "-o",
    `Dir::Etc::SourceParts=${at("sources.list.d")}`,
    "-o",
    `Dir::Etc::Preferences=${at("preferences")}`,
    "-o",
    `Dir::Etc::PreferencesParts=${at("preferences.d")}`,
    "-o",
    `Dir::State::Lists=${at("lists")}`,
    "-o",
    `Dir::Cache=${at("cache")}`,
  ];
}

/**
 * apt-cache answers per process (show and policy, per package), valid while the package lists
 * are unchanged: each apt-cache run loads the whole index (~0.4 s), and a rebake asks about the
 * same packages in its check and in its bake.
 */
const answers = new Map<string, { stamp: number; text: Promise<string> }>();

/** Splits `apt-cache policy a b c` output into one block per package. */
export function splitPolicyBlocks(text: string): Map<string, string> {
  const blocks = new Map<string, string>();
  let name: string | undefined;
  let lines: string[] = [];
  const flush = () => {
    if (name) blocks.set(name, `${lines.join("\n")}\n`);
  };
  for (const line of text.split("\n")) {
    const header = /^(\S+):$/.exec(line);
    if (header) {
      flush();
      name = header[1];
      lines = [line];
    } else if (name) lines.push(line);
  }
  flush();
  return blocks;
}

export class AptSource {
  /** Private apt configuration directory (KILN_APT_CONFIG), or undefined for the host's. */
  readonly configDir: string | undefined;
  private owners: Promise<HostOwners> | undefined;
  /** Packages whose bytes were verified by this source (one bake), by name, version and sha256. */
  private readonly verified = new Map<string, Promise<string>>();

  constructor(
    private readonly cacheDir: string,
    options: { configDir?: string } = {},
  ) {
    this.configDir = options.configDir ?? (process.env[APT_CONFIG_ENV] || undefined);
  }

  /** apt-cache with kiln's apt configuration. */
  aptCache(args: readonly string[]): Promise<{ stdout: string }> {
    return run(["apt-cache", ...aptConfigOptions(this.configDir), ...args]);
  }

  /** As root apt would try to drop to the _apt user, who cannot write into kiln's cache. */
  private sandbox(): string[] {
    return process.getuid?.() === 0 ? ["-o", "APT::Sandbox::User=root"] : [];
  }

  /**
   * Refreshes the package indexes (apt-get update). The host's indexes need root; with a
   * private configuration kiln owns the lists directory and can always refresh it.
   */
  async update(): Promise<{ refreshed: boolean; reason?: string }> {
    if (!this.configDir && process.getuid?.() !== 0) {
      return {
        refreshed: false,
        reason:
          "the host's apt indexes can only be refreshed by root (sudo apt-get update), or set KILN_APT_CONFIG to a private apt configuration",
      };
    }
    if (this.configDir)
      for (const dir of ["lists/partial", "cache/archives/partial", "sources.list.d", "preferences.d"])
        await mkdir(path.join(this.configDir, dir), { recursive: true });
    await run(["apt-get", "update", "-q", ...aptConfigOptions(this.configDir), ...this.sandbox()], {
      hint: "apt could not refresh its package indexes; check the apt sources (and the network to them)",
    });
    for (const key of [...answers.keys()]) if (key.startsWith(`${this.configDir ?? "host"}\0`)) answers.delete(key);
    return { refreshed: true };
  }

  private async listsStamp(): Promise<number> {
    const dir = this.configDir ? path.join(this.configDir, "lists") : "/var/lib/apt/lists";
    return (await stat(dir).catch(() => undefined))?.mtimeMs ?? 0;
  }

  private key(kind: string, name: string): string {
    return `${this.configDir ?? "host"}\0${kind}\0${name}`;
  }

  /** One apt-cache answer, from the per-process memo when the lists have not changed since. */
  private async query(kind: "show" | "policy", name: string): Promise<string> {
    const stamp = await this.listsStamp();
    const known = answers.get(this.key(kind, name));
    if (known && known.stamp === stamp) return known.text;
    const text = this.aptCache([kind, name]).then((r) => r.stdout);
    answers.set(this.key(kind, name), { stamp, text });
    text.catch(() => answers.delete(this.key(kind, name)));
    return text;
  }

  /** Asks apt about many packages in two runs instead of two per package. */
  async prefetch(names: readonly string[]): Promise<void> {
    const wanted = [...new Set(names)].filter((n) => /^[a-z0-9][a-z0-9+.-]+$/.test(n));
    if (wanted.length === 0) return;
    const stamp = await this.listsStamp();
    const policies = splitPolicyBlocks((await this.aptCache(["policy", ...wanted])).stdout);
    for (const [name, text] of policies) answers.set(this.key("policy", name), { stamp, text: Promise.resolve(text) });
    // apt-cache show fails as a whole when one name is unknown: then each is asked on its own later.
    const shown = await this.aptCache(["show", ...wanted]).then(
      (r) => r.stdout,
      () => undefined,
    );
    if (shown === undefined) return;
    const byName = new Map<string, string[]>();
    for (const block of shown.split(/\n\s*\n/)) {
      const pkg = /^Package: (\S+)$/m.exec(block)?.[1];
      if (pkg) byName.set(pkg, [...(byName.get(pkg) ?? []), block]);
    }
    for (const name of wanted)
      answers.set(this.key("show", name), { stamp, text: Promise.resolve(`${(byName.get(name) ?? []).join("\n\n")}\n`) });
  }

  /** `apt-cache policy NAME` output (candidate and the version table with suites). */
  async policy(name: string): Promise<string> {
    return this.query("policy", name);
  }

  /** Resolves a package to one exact version: the pinned one if given, else apt's candidate. */
  async resolve(name: string, pinned?: string): Promise<DebianPackage> {
    const missing = (cause?: unknown) =>
      new InputError(
        pinned
          ? `Debian package ${name} ${pinned} (pinned in kiln.lock) is not in the configured apt sources`
          : `Debian package ${name} is not in the configured apt sources`,
        {
          hint: pinned
            ? "run apt-get update; if the version was superseded, delete its entry from kiln.lock (or run kiln rebake) to take the current one"
            : "check the name (apt-cache search), or run apt-get update",
          ...(cause ? { cause } : {}),
        },
      );
    let out: string;
    try {
      out = await this.query("show", name);
    } catch (error) {
      if (error instanceof CommandFailedError) throw missing(error);
      throw error;
    }
    const stanzas = parseStanzas(out).filter((s) => s.Package === name);
    if (stanzas.length === 0) throw missing();
    // The suite each version comes from is in the policy's version table (as in apt-cache madison).
    const policy = parsePolicy(await this.policy(name));
    const chosen = pinned ? stanzas.find((s) => s.Version === pinned) : (stanzas.find((s) => s.Version === policy.candidate) ?? stanzas[0]);
    if (pinned && !chosen) throw missing();
    if (!chosen?.Version || !chosen.SHA256) throw new KilnError(`apt-cache show ${name} gave no version with a SHA256`);
    return {
      name,
      version: chosen.Version,
      sha256: chosen.SHA256,
      depends: chosen.Depends ?? "",
      source: sourceOf(policy.versions.find((v) => v.version === chosen.Version)),
    };
  }

  /** Where the .deb of a package is cached: named by its sha256, not by the version a lock claims. */
  private debFile(pkg: DebianPackage): string {
    return path.join(this.cacheDir, "debs", `${pkg.name}_${pkg.sha256}.deb`);
  }

  /**
   * The archive index's word on a lock entry, before anything is downloaded: the version must
   * exist with the lock's sha256. A mismatch names the field that is wrong.
   */
  private async checkIndex(pkg: DebianPackage): Promise<void> {
    const missing = (cause?: unknown) =>
      new InputError(`Debian package ${pkg.name} ${pkg.version} (pinned in kiln.lock) is not in the configured apt sources`, {
        hint: "run apt-get update; if the version was superseded, delete its entry from kiln.lock (or run kiln rebake) to take the current one",
        ...(cause ? { cause } : {}),
      });
    const text = await this.query("show", pkg.name).catch((error: unknown) => {
      throw error instanceof CommandFailedError ? missing(error) : error;
    });
    const stanzas = parseStanzas(text).filter((st) => st.Package === pkg.name);
    const byVersion = stanzas.find((st) => st.Version === pkg.version);
    const bySha = stanzas.find((st) => st.SHA256 === pkg.sha256);
    if (byVersion?.SHA256 === pkg.sha256) return;
    if (bySha?.Version)
      throw lockFieldError(
        pkg.name,
        "version",
        pkg.version,
        bySha.Version,
        `the archive index (for the package with its sha256 ${pkg.sha256})`,
      );
    if (byVersion?.SHA256)
      throw lockFieldError(pkg.name, "sha256", pkg.sha256, byVersion.SHA256, `the archive index (for version ${pkg.version})`);
    throw missing();
  }

  /** Downloads the .deb (once) after checking the lock entry against the archive index, and checks the bytes. */
  async download(pkg: DebianPackage): Promise<string> {
    const file = this.debFile(pkg);
    if (await exists(file)) return file;
    await this.checkIndex(pkg);
    const dir = path.dirname(file);
    await makePrivateDir(dir);
    const scratch = await makeScratchDir(dir, "download");
    try {
      await run(["apt-get", "download", "-q", ...aptConfigOptions(this.configDir), ...this.sandbox(), `${pkg.name}=${pkg.version}`], {
        cwd: scratch,
      });
      const [fetched] = (await readdir(scratch)).filter((f) => f.endsWith(".deb"));
      if (!fetched) throw new KilnError(`apt-get download ${pkg.name}=${pkg.version} produced no .deb`);
      const actual = await sha256File(path.join(scratch, fetched));
      if (actual !== pkg.sha256) {
        throw new KilnError(`downloaded ${pkg.name} ${pkg.version} has sha256 ${actual}, but the archive index says ${pkg.sha256}`, {
          hint: "run apt-get update and try again; if it persists, the mirror is serving a different file",
        });
      }
      await rename(path.join(scratch, fetched), file);
      return file;
    } finally {
      await removeDir(scratch);
    }
  }

  /**
   * Proves a package is what the lock (or apt) says from its bytes: the cached .deb (fetched
   * and checked against the archive index if absent) must still hash to the sha256, and its
   * control fields must name the package and version. Once per package per source.
   */
  verify(pkg: DebianPackage): Promise<string> {
    const key = `${pkg.name}\0${pkg.version}\0${pkg.sha256}`;
    let known = this.verified.get(key);
    if (!known) {
      known = this.verifyNow(pkg);
      this.verified.set(key, known);
      known.catch(() => this.verified.delete(key));
    }
    return known;
  }

  private async verifyNow(pkg: DebianPackage): Promise<string> {
    if (!/^[0-9a-f]{64}$/.test(pkg.sha256))
      throw lockFieldError(pkg.name, "sha256", pkg.sha256 || "(empty)", "a sha256 is 64 hex digits", "the lock format");
    const file = await this.download(pkg);
    // A .deb untouched since it was last proven to be this package is not hashed or opened again.
    const facts = { package: pkg.name, version: pkg.version, sha256: pkg.sha256 };
    if (await verifiedUnchanged(`${file}.verified`, file, facts)) return file;
    const actual = await sha256File(file);
    if (actual !== pkg.sha256) {
      throw new KilnError(`cached package file ${file} changed on disk: its sha256 is now ${actual}, it was fetched as ${pkg.sha256}`, {
        hint: "delete that file (kiln fetches and checks it again); find out what changed files in kiln's cache",
      });
    }
    const control = parseStanzas((await run(["dpkg-deb", "-f", file, "Package", "Version", "Architecture"])).stdout)[0] ?? {};
    const authority = `the .deb itself (sha256 ${pkg.sha256})`;
    if (control.Package !== pkg.name) throw lockFieldError(pkg.name, "name", pkg.name, control.Package ?? "(none)", authority);
    if (control.Version !== pkg.version) throw lockFieldError(pkg.name, "version", pkg.version, control.Version ?? "(none)", authority);
    if (!USABLE_ARCHITECTURES.has(control.Architecture ?? "")) {
      throw new InputError(
        `Debian package ${pkg.name} ${pkg.version} is built for ${control.Architecture ?? "no architecture"}, not amd64`,
        { hint: LOCK_FIX_HINT },
      );
    }
    await recordVerified(`${file}.verified`, file, facts);
    return file;
  }

  /** Unpacks a verified .deb's file tree once; the directory is keyed by the package's sha256. */
  async unpack(pkg: DebianPackage): Promise<string> {
    const deb = await this.verify(pkg);
    const dest = path.join(this.cacheDir, "unpacked", `${pkg.name}-${pkg.sha256.slice(0, 16)}`);
    if (await exists(dest)) return dest;
    await makePrivateDir(path.join(this.cacheDir, "unpacked"));
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

  /**
   * The Debian package that owns a file on this host, if any (`dpkg -S`). Answers are kept
   * (cache/host-owners.json) for as long as the host's dpkg database is unchanged: each
   * `dpkg -S` reads that whole database, and a bake asks for every library of the app.
   */
  async ownerOf(file: string): Promise<string | undefined> {
    this.owners ??= HostOwners.load(path.join(this.cacheDir, "host-owners.json"));
    const owners = await this.owners;
    const known = owners.get(file);
    if (known !== undefined) return known || undefined;
    const owner = await this.askDpkg(file);
    await owners.set(file, owner ?? "");
    return owner;
  }

  private async askDpkg(file: string): Promise<string | undefined> {
    const candidates = [file];
    // Debian 12 is usr-merged on disk, but packages still list /lib paths (and vice versa).
    if (file.startsWith("/usr/lib/")) candidates.push(file.slice(4));
    else if (file.startsWith("/lib/")) candidates.push(`/usr${file}`);
    for (const candidate of candidates) {
      try {
        const out = (await run(["dpkg", "-S", candidate])).stdout;
        const owner = out
          .split("\n")
          .find((l) => l.includes(": "))
          ?.split(":")[0]
          ?.split(",")[0]
          ?.trim();
        if (owner) return owner;
      } catch {
        // not owned under this spelling; try the next one
      }
    }
    return undefined;
  }
}

/** dpkg's database on this host: installing or removing any package changes one of these. */
const DPKG_DATABASE = ["/var/lib/dpkg/status", "/var/lib/dpkg/info"];
const PACKAGE_NAME = /^[a-z0-9][a-z0-9+.-]*$/;

/** `dpkg -S` answers (file → owning package, "" for none), valid while dpkg's database is unchanged. */
class HostOwners {
  private constructor(
    private readonly file: string,
    private readonly database: string,
    private readonly owners: Map<string, string>,
  ) {}

  static async load(file: string): Promise<HostOwners> {
    const database = (await Promise.all(DPKG_DATABASE.map((f) => lstat(f, { bigint: true }).then(identityFromStats, () => "-")))).join(" ");
    const owners = new Map<string, string>();
    try {
      const kept = JSON.parse(await readFile(file, "utf8")) as { database?: unknown; owners?: unknown };
      if (kept.database === database && typeof kept.owners === "object" && kept.owners !== null) {
        for (const [path_, owner] of Object.entries(kept.owners as Record<string, unknown>)) {
          if (typeof owner === "string" && (owner === "" || PACKAGE_NAME.test(owner))) owners.set(path_, owner);
        }
      }
    } catch {
      // none kept yet, or unreadable: ask dpkg
    }
    return new HostOwners(file, database, owners);
  }

  get(file: string): string | undefined {
    return this.owners.get(file);
  }

  async set(file: string, owner: string): Promise<void> {
    this.owners.set(file, owner);
    await writeFileAtomic(this.file, JSON.stringify({ database: this.database, owners: Object.fromEntries(this.owners) }));
  }
}

/** A package's full identity, for cache keys: name, version and sha256 (verified before use). */
export function packageIdentity(pkg: DebianPackage): string {
  return `${pkg.name}=${pkg.version}@${pkg.sha256}`;
}

export function lockEntryOf(pkg: DebianPackage, role: LockEntry["role"]): LockEntry {
  return { name: pkg.name, version: pkg.version, source: pkg.source, sha256: pkg.sha256, role };
}
