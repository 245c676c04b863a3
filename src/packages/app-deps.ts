/**
 * The app's own third-party dependencies, found in the staged app directory (what goes into
 * the image, not what a manifest says): npm packages (node_modules/**\/package.json), Python
 * distributions (*.dist-info/METADATA) and Maven artifacts (META-INF/maven/…/pom.properties
 * inside jars). For the SBOM.
 */
import { lstat, readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { inflateRawSync } from "node:zlib";

export interface AppDependency {
  readonly ecosystem: "npm" | "pypi" | "maven";
  /** npm scope ("@types"), Maven groupId; undefined for PyPI. */
  readonly group: string | undefined;
  readonly name: string;
  readonly version: string;
  /** Where in the app it was found, relative to the app directory. */
  readonly path: string;
}

export async function scanAppDependencies(appDir: string): Promise<AppDependency[]> {
  const found = new Map<string, AppDependency>();
  const add = (dep: AppDependency) => {
    const key = `${dep.ecosystem}\0${dep.group ?? ""}\0${dep.name}\0${dep.version}`;
    if (!found.has(key)) found.set(key, dep);
  };
  async function walk(rel: string, depth: number): Promise<void> {
    if (depth > 40) return;
    const names = (await readdir(path.join(appDir, rel)).catch(() => [] as string[])).sort();
    for (const name of names) {
      const childRel = rel ? `${rel}/${name}` : name;
      const full = path.join(appDir, childRel);
      const info = await lstat(full).catch(() => undefined);
      if (!info) continue;
      if (info.isDirectory()) {
        if (name.endsWith(".dist-info")) {
          const dep = await pythonDist(full, childRel);
          if (dep) add(dep);
        }
        await walk(childRel, depth + 1);
      } else if (info.isFile()) {
        if (name === "package.json" && isNpmPackageDir(rel)) {
          const dep = await npmPackage(full, rel);
          if (dep) add(dep);
        } else if (name.toLowerCase().endsWith(".jar")) {
          for (const dep of await mavenArtifacts(full, childRel)) add(dep);
        } else if (name === "pom.properties" && /(^|\/)META-INF\/maven\/[^/]+\/[^/]+$/.test(rel)) {
          // An exploded jar (a Spring Boot app baked exploded): its coordinates as a loose file.
          const dep = mavenCoordinates(await readFile(full, "utf8").catch(() => ""), childRel);
          if (dep) add(dep);
        }
      }
    }
  }
  await walk("", 0);
  const key = (d: AppDependency) => `${d.ecosystem}:${d.group ? `${d.group}/` : ""}${d.name}@${d.version}`;
  return [...found.values()].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

/** node_modules/<name> or node_modules/@scope/<name>, at any depth. */
function isNpmPackageDir(rel: string): boolean {
  const parts = rel.split("/");
  const last = parts.length;
  return (
    (parts[last - 2] === "node_modules" && !parts[last - 1]!.startsWith("@")) ||
    (parts[last - 3] === "node_modules" && parts[last - 2]!.startsWith("@"))
  );
}

async function npmPackage(file: string, rel: string): Promise<AppDependency | undefined> {
  try {
    const pkg = JSON.parse(await readFile(file, "utf8")) as { name?: unknown; version?: unknown };
    if (typeof pkg.name !== "string" || typeof pkg.version !== "string") return undefined;
    const scoped = /^(@[^/]+)\/(.+)$/.exec(pkg.name);
    return { ecosystem: "npm", group: scoped?.[1], name: scoped?.[2] ?? pkg.name, version: pkg.version, path: rel };
  } catch {
    return undefined;
  }
}

async function pythonDist(dir: string, rel: string): Promise<AppDependency | undefined> {
  const text = await readFile(path.join(dir, "METADATA"), "utf8").catch(() => undefined);
  if (!text) return undefined;
  const head = text.split(/\n\n/)[0] ?? "";
  const name = /^Name:\s*(.+)$/m.exec(head)?.[1]?.trim();
  const version = /^Version:\s*(.+)$/m.exec(head)?.[1]?.trim();
  return name && version ? { ecosystem: "pypi", group: undefined, name, version, path: rel } : undefined;
}

/** Maven coordinates from the pom.properties files Maven (and Gradle's maven-publish) put into jars. */
async function mavenArtifacts(file: string, rel: string): Promise<AppDependency[]> {
  const zip = await readFile(file).catch(() => undefined);
  if (!zip) return [];
  const out: AppDependency[] = [];
  for (const entry of zipEntries(zip)) {
    if (!/^META-INF\/maven\/[^/]+\/[^/]+\/pom\.properties$/.test(entry.name)) continue;
    const dep = mavenCoordinates(readZipEntry(zip, entry)?.toString("utf8") ?? "", rel);
    if (dep) out.push(dep);
  }
  return out;
}

/** groupId, artifactId and version from a pom.properties text. */
function mavenCoordinates(text: string, rel: string): AppDependency | undefined {
  const prop = (key: string) => new RegExp(`^${key}=(.*)$`, "m").exec(text)?.[1]?.trim();
  const group = prop("groupId");
  const name = prop("artifactId");
  const version = prop("version");
  return group && name && version ? { ecosystem: "maven", group, name, version, path: rel } : undefined;
}

interface ZipEntry {
  readonly name: string;
  readonly method: number;
  readonly compressedSize: number;
  readonly headerOffset: number;
}

/** Central directory of a zip (no zip64: such jars are skipped). */
function zipEntries(zip: Buffer): ZipEntry[] {
  let eocd = -1;
  for (let i = zip.length - 22; i >= Math.max(0, zip.length - 22 - 0xffff); i--) {
    if (zip.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) return [];
  const count = zip.readUInt16LE(eocd + 10);
  let at = zip.readUInt32LE(eocd + 16);
  const entries: ZipEntry[] = [];
  for (let n = 0; n < count && at + 46 <= zip.length && zip.readUInt32LE(at) === 0x02014b50; n++) {
    const nameLength = zip.readUInt16LE(at + 28);
    entries.push({
      name: zip.toString("utf8", at + 46, at + 46 + nameLength),
      method: zip.readUInt16LE(at + 10),
      compressedSize: zip.readUInt32LE(at + 20),
      headerOffset: zip.readUInt32LE(at + 42),
    });
    at += 46 + nameLength + zip.readUInt16LE(at + 30) + zip.readUInt16LE(at + 32);
  }
  return entries;
}

function readZipEntry(zip: Buffer, entry: ZipEntry): Buffer | undefined {
  const at = entry.headerOffset;
  if (at + 30 > zip.length || zip.readUInt32LE(at) !== 0x04034b50) return undefined;
  const start = at + 30 + zip.readUInt16LE(at + 26) + zip.readUInt16LE(at + 28);
  const data = zip.subarray(start, start + entry.compressedSize);
  try {
    return entry.method === 0 ? data : entry.method === 8 ? inflateRawSync(data) : undefined;
  } catch {
    return undefined;
  }
}
