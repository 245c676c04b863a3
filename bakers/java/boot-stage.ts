/**
 * When and how the java baker bakes a Spring Boot fat jar exploded: only when the cmd is the
 * exploded one kiln detects (a cmd the user set, e.g. java -jar, keeps the jar whole), with the
 * libraries extracted once per key into KILN_HOME as <key>/lib, the dependency layer.
 */
import { mkdir, readdir, readFile } from "node:fs/promises";
import path from "node:path";
import type { Spec } from "../../src/config/types.js";
import type { BakeContext } from "../../src/bake/context.js";
import { exists, makeScratchDir, publishDir, removeDir } from "../../src/fsutil.js";
import { BOOT_LIB, bootLaunch, planBootSplit, writeBootEntries, type BootSplit } from "./boot-layers.js";
import { inspectJar, type JarInfo, ZipFormatError } from "./jar.js";

export interface BootJar {
  readonly jar: string;
  readonly zip: Buffer;
  /** The exploded app's directory in the image, /app/<jar stem>. */
  readonly dir: string;
  readonly split: BootSplit;
}

export interface BootLibraries {
  /** <cache>/java-deps/<key>/lib: named like its mount point, BOOT-INF/lib. */
  readonly dir: string;
  readonly key: string;
  readonly cached: boolean;
}

/** The jar a java app runs: the file given, or the one jar at the top of the app directory. */
async function appJar(spec: Spec): Promise<string | undefined> {
  if (spec.appFile) return spec.appFile;
  const jars = (await readdir(spec.appDir, { withFileTypes: true })).filter((e) => e.isFile() && e.name.toLowerCase().endsWith(".jar"));
  return jars.length === 1 ? path.join(spec.appDir, jars[0]!.name) : undefined;
}

function sameCmd(a: readonly string[] | undefined, b: readonly string[]): boolean {
  return a !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);
}

// prepareRuntime and stageApp both ask: the jar is read, checked and its libraries hashed once per bake.
const planned = new WeakMap<BakeContext, Promise<BootJar | undefined>>();

/** The fat jar to bake exploded, or undefined when the app keeps today's whole-jar layout. */
export function bootJarOf(spec: Spec, ctx: BakeContext): Promise<BootJar | undefined> {
  const known = planned.get(ctx);
  if (known) return known;
  const result = planBootJar(spec);
  planned.set(ctx, result);
  return result;
}

async function planBootJar(spec: Spec): Promise<BootJar | undefined> {
  // Only kiln's exploded cmd (java … -cp /app/<stem> <launcher>) explodes; anything else is not read here.
  if (!spec.cmd?.includes("-cp")) return undefined;
  const jar = await appJar(spec);
  if (!jar) return undefined;
  const zip = await readFile(jar);
  let info: JarInfo;
  try {
    info = inspectJar(zip);
  } catch (error) {
    // An unreadable jar is reported by the runtime step (readJar), with its own hint.
    if (error instanceof ZipFormatError || error instanceof RangeError) return undefined;
    throw error;
  }
  const launch = bootLaunch(path.basename(jar), info);
  if (!launch || !sameCmd(spec.cmd, launch.cmd)) return undefined;
  return { jar, zip, dir: launch.dir, split: planBootSplit(path.basename(jar), zip) };
}

// prepareRuntime (jdeps) and stageApp both need the libraries: extracted once per bake.
const extracted = new WeakMap<BakeContext, Map<string, Promise<BootLibraries>>>();

/** The libraries as a directory of jars, extracted into the cache unless their key is there already. */
export function bootLibraries(boot: BootJar, ctx: BakeContext): Promise<BootLibraries> {
  const perBake = extracted.get(ctx) ?? new Map<string, Promise<BootLibraries>>();
  extracted.set(ctx, perBake);
  const known = perBake.get(boot.split.key);
  if (known) return known;
  const result = extractLibraries(boot, ctx);
  perBake.set(boot.split.key, result);
  return result;
}

async function extractLibraries(boot: BootJar, ctx: BakeContext): Promise<BootLibraries> {
  const { key, libs } = boot.split;
  const entry = path.join(ctx.home.cache, "java-deps", key);
  const dir = path.join(entry, "lib");
  if (await exists(entry)) return { dir, key, cached: true };
  const scratch = await makeScratchDir(ctx.scratch, "boot-lib");
  try {
    await writeBootEntries(
      path.basename(boot.jar),
      boot.zip,
      libs.map((l) => l.entry),
      path.join(scratch, "lib"),
      BOOT_LIB,
    );
    await mkdir(path.dirname(entry), { recursive: true });
    await publishDir(scratch, entry);
  } catch (error) {
    await removeDir(scratch);
    throw error;
  }
  return { dir, key, cached: false };
}

/** The library jars' paths on the host, for jdeps. */
export function libraryJars(boot: BootJar, libs: BootLibraries): string[] {
  return boot.split.libs.map((l) => path.join(libs.dir, l.name));
}
