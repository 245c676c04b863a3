/**
 * The image's SBOM as CycloneDX 1.5 JSON: the image itself (metadata.component), every base
 * package from the lock (Debian packages as pkg:deb purls, Node.js as pkg:npm) and the app's
 * own dependencies (npm, PyPI, Maven). Embedded in the manifest and written as sbom.json next
 * to it. Deterministic except for metadata.timestamp (the bake time).
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { installRoot } from "../home.js";
import { scanAppDependencies, type AppDependency } from "./app-deps.js";
import type { KeyedResults } from "../bake/keyed-results.js";
import type { LockEntry } from "./lock.js";

export interface CycloneDxComponent {
  readonly type: "application" | "framework" | "library" | "operating-system" | "firmware";
  readonly "bom-ref": string;
  readonly group?: string;
  readonly name: string;
  readonly version: string;
  readonly purl?: string;
  readonly hashes?: readonly { readonly alg: "SHA-256"; readonly content: string }[];
  readonly properties?: readonly { readonly name: string; readonly value: string }[];
}

export interface CycloneDxBom {
  readonly bomFormat: "CycloneDX";
  readonly specVersion: "1.5";
  readonly serialNumber: string;
  readonly version: 1;
  readonly metadata: {
    readonly timestamp: string;
    readonly tools: { readonly components: readonly CycloneDxComponent[] };
    readonly component: CycloneDxComponent;
  };
  readonly components: readonly CycloneDxComponent[];
  readonly dependencies: readonly { readonly ref: string; readonly dependsOn: readonly string[] }[];
}

export interface SbomInputs {
  readonly name: string;
  readonly version: string;
  readonly digest: string;
  readonly bakedAt: string;
  readonly packages: readonly LockEntry[];
  readonly appDependencies: readonly AppDependency[];
  readonly kilnVersion: string;
  /** Debian release the packages come from, for the purl's distro qualifier (e.g. debian-12). */
  readonly distro?: string;
  /**
   * App files whose dependency versions were resolved at bake time (no lock file, loose
   * requirements): the components list what was resolved, and this says it was not pinned.
   */
  readonly unpinned?: readonly string[];
}

/** purl segments and versions are percent-encoded (':' and '+' in Debian versions included). */
function enc(value: string): string {
  return encodeURIComponent(value);
}

export function debPurl(name: string, version: string, distro?: string): string {
  return `pkg:deb/debian/${enc(name)}@${enc(version)}?arch=amd64${distro ? `&distro=${enc(distro)}` : ""}`;
}

export function appPurl(dep: AppDependency): string {
  if (dep.ecosystem === "npm") return `pkg:npm/${dep.group ? `${enc(dep.group)}/` : ""}${enc(dep.name)}@${enc(dep.version)}`;
  if (dep.ecosystem === "pypi") return `pkg:pypi/${enc(dep.name.toLowerCase().replace(/[-_.]+/g, "-"))}@${enc(dep.version)}`;
  return `pkg:maven/${enc(dep.group ?? "")}/${enc(dep.name)}@${enc(dep.version)}`;
}

/** An RFC 4122 version-5-style UUID derived from the digest: the same image, the same serial number. */
function uuidFrom(text: string): string {
  const h = createHash("sha256").update(`kiln-sbom\0${text}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const hex = h.subarray(0, 16).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

function baseComponent(p: LockEntry, distro: string | undefined): CycloneDxComponent {
  const purl = p.source === "npm" ? `pkg:npm/${enc(p.name)}@${enc(p.version)}` : debPurl(p.name, p.version, distro);
  return {
    type:
      p.role === "kernel" || p.role === "kernel-source"
        ? "operating-system"
        : p.role === "runtime"
          ? "framework"
          : p.role === "boot"
            ? "firmware"
            : "library",
    "bom-ref": purl,
    name: p.name,
    version: p.version,
    purl,
    ...(/^[0-9a-f]{64}$/.test(p.sha256) ? { hashes: [{ alg: "SHA-256" as const, content: p.sha256 }] } : {}),
    properties: [
      { name: "kiln:role", value: p.role },
      { name: "kiln:source", value: p.source },
    ],
  };
}

export function buildSbom(inputs: SbomInputs): CycloneDxBom {
  const imageRef = `kiln-image:${inputs.name}@${inputs.digest}`;
  const components = new Map<string, CycloneDxComponent>();
  for (const p of inputs.packages) {
    const c = baseComponent(p, inputs.distro);
    components.set(c["bom-ref"], c);
  }
  for (const dep of inputs.appDependencies) {
    const purl = appPurl(dep);
    if (components.has(purl)) continue;
    components.set(purl, {
      type: "library",
      "bom-ref": purl,
      ...(dep.group ? { group: dep.group } : {}),
      name: dep.name,
      version: dep.version,
      purl,
      properties: [
        { name: "kiln:layer", value: "app" },
        { name: "kiln:path", value: dep.path },
      ],
    });
  }
  const list = [...components.values()].sort((a, b) => (a["bom-ref"] < b["bom-ref"] ? -1 : a["bom-ref"] > b["bom-ref"] ? 1 : 0));
  return {
    bomFormat: "CycloneDX",
    specVersion: "1.5",
    serialNumber: `urn:uuid:${uuidFrom(inputs.digest)}`,
    version: 1,
    metadata: {
      timestamp: inputs.bakedAt,
      tools: { components: [{ type: "application", "bom-ref": "tool:kiln", name: "kiln", version: inputs.kilnVersion }] },
      component: {
        type: "application",
        "bom-ref": imageRef,
        name: inputs.name,
        version: inputs.version,
        properties: [
          { name: "kiln:digest", value: inputs.digest },
          ...(inputs.unpinned ?? []).map((file) => ({ name: "kiln:unpinned-dependencies", value: file })),
        ],
      },
    },
    components: list,
    dependencies: [{ ref: imageRef, dependsOn: list.map((c) => c["bom-ref"]) }],
  };
}

const DEBIAN_RELEASES: Readonly<Record<string, string>> = { buster: "10", bullseye: "11", bookworm: "12", trixie: "13", forky: "14" };

/** "debian-12" from lock sources like "debian:bookworm-security/main", when they name a known release. */
export function distroOf(packages: readonly LockEntry[]): string | undefined {
  for (const p of packages) {
    const codename = /^debian:([a-z]+)/.exec(p.source)?.[1];
    const number = codename ? DEBIAN_RELEASES[codename] : undefined;
    if (number) return `debian-${number}`;
  }
  return undefined;
}

/** A directory whose dependencies go into the SBOM; an immutable one (a cached dependency layer) is scanned once per key. */
export interface DependencyScan {
  readonly dir: string;
  readonly immutable?: { readonly key: string; readonly results: KeyedResults };
}

const ECOSYSTEMS: readonly string[] = ["npm", "pypi", "maven"];

/** A remembered scan is used only when every entry has the shape scanAppDependencies gives. */
function validDependencies(value: unknown): AppDependency[] | undefined {
  if (!Array.isArray(value)) return undefined;
  const text = (x: unknown): x is string => typeof x === "string" && x.length > 0 && x.length <= 4096 && !x.includes("\0");
  const out: AppDependency[] = [];
  for (const v of value as unknown[]) {
    const d = (v ?? {}) as Record<string, unknown>;
    if (!ECOSYSTEMS.includes(d.ecosystem as string) || !text(d.name) || !text(d.version) || typeof d.path !== "string") return undefined;
    if (d.group !== undefined && !text(d.group)) return undefined;
    out.push({
      ecosystem: d.ecosystem as AppDependency["ecosystem"],
      group: d.group as string | undefined,
      name: d.name,
      version: d.version,
      path: d.path,
    });
  }
  return out;
}

async function scanDependencies(scan: DependencyScan): Promise<AppDependency[]> {
  const { immutable } = scan;
  if (!immutable) return scanAppDependencies(scan.dir);
  return immutable.results.remember("sbom-deps", immutable.key, validDependencies, () => scanAppDependencies(scan.dir));
}

/** The SBOM of a baked image: its base packages plus the dependencies found in the staged app. */
export async function imageSbom(
  image: Omit<SbomInputs, "appDependencies" | "kilnVersion" | "distro" | "unpinned">,
  scans: readonly DependencyScan[],
  unpinned: readonly string[] = [],
): Promise<CycloneDxBom> {
  const kilnVersion =
    (JSON.parse(await readFile(path.join(installRoot(), "package.json"), "utf8")) as { version?: string }).version ?? "0.0.0";
  const distro = distroOf(image.packages);
  // The app layer and the dependency layer are scanned alike (node_modules/… in either).
  const appDependencies = (await Promise.all(scans.map(scanDependencies))).flat();
  return buildSbom({ ...image, appDependencies, kilnVersion, unpinned, ...(distro ? { distro } : {}) });
}
