/**
 * java: an executable jar (a plain Main-Class jar or a Spring Boot fat jar), given as the file
 * itself or as a directory holding one jar. Runtime: a JRE made with jlink from Debian's
 * OpenJDK 17 (pinned in kiln.lock) holding only the modules jdeps finds in the app's jars,
 * so it is tens of MB instead of Debian's ~180 MB JRE. Start command: java -jar <jar>; a Spring
 * Boot fat jar is baked exploded instead (its libraries as a cached dependency layer, see
 * boot-layers.ts) and started with its launcher: java -cp /app/<jar stem> <Main-Class>.
 */
import { chmod, copyFile, mkdir, readFile, readdir, open } from "node:fs/promises";
import path from "node:path";
import type { AppSource, Baker, Detection, StagedDeps } from "../../src/bake/baker.js";
import type { BakeContext } from "../../src/bake/context.js";
import type { Spec } from "../../src/config/types.js";
import { InputError } from "../../src/errors.js";
import { copyAppTree } from "../../src/bake/app-tree.js";
import { lockEntryOf } from "../../src/packages/apt.js";
import { formatBytes } from "../../src/progress.js";
import { inspectJar, isZip, nameAndVersionOf, readZipEntries, ZipFormatError, type JarInfo } from "./jar.js";
import { appHas, appRelative, missingEntry, programName } from "../../src/bake/entry.js";
import { checkClassVersion, linkJre, modulesFor, prepareJdk, treeBytes, type Jdk } from "./jdk.js";
import { jreModules } from "./jdeps.js";
import { BOOT_LIB, bootLaunch, inflateEntry, writeBootEntries } from "./boot-layers.js";
import { jdkReferences } from "./class-refs.js";
import { sha256 } from "../../src/fsutil.js";
import { bootJarOf, bootLibraries, libraryJars, type BootJar } from "./boot-stage.js";
import { JVM_OPTIONS } from "./jvm.js";

export const priority = 30;

export const JRE_DEST = "/usr/lib/jvm/kiln-jre";
export { JVM_OPTIONS } from "./jvm.js";
const DEFAULT_PORT = 8080;
const SKIP = new Set([".git", "kiln.yml", "kiln.lock", ".kiln"]);

async function looksLikeZip(file: string): Promise<boolean> {
  const fh = await open(file, "r");
  try {
    const head = Buffer.alloc(4);
    await fh.read(head, 0, 4, 0);
    return isZip(head);
  } finally {
    await fh.close();
  }
}

async function readJar(file: string): Promise<JarInfo | { problem: string }> {
  try {
    return inspectJar(await readFile(file));
  } catch (error) {
    if (error instanceof ZipFormatError || error instanceof RangeError)
      return { problem: `${path.basename(file)} is not a readable jar: ${error.message}` };
    throw error;
  }
}

/**
 * The cmd for one jar, or the problem that keeps `java -jar` from starting it. A Spring Boot fat
 * jar starts exploded (unless `taken` names are in the app directory beside it, where its
 * directory would go).
 */
function commandFor(jarName: string, info: JarInfo, taken: readonly string[] = []): { cmd?: string[]; problem?: string } {
  const boot = bootLaunch(jarName, info);
  if (boot && !taken.includes(path.posix.basename(boot.dir))) return { cmd: boot.cmd };
  if (info.mainClass) return { cmd: ["java", ...JVM_OPTIONS, "-jar", jarName] };
  return {
    problem:
      `cmd: ${jarName} has no Main-Class in META-INF/MANIFEST.MF, so java -jar cannot start it; ` +
      "build it as an executable jar (jar --create --main-class com.example.Main …; Maven: maven-jar-plugin <archive><manifest><mainClass>; " +
      `Gradle: jar { manifest { attributes("Main-Class": "com.example.Main") } }) or set cmd: [java, -cp, ${jarName}, com.example.Main] in kiln.yml`,
  };
}

async function topLevelJars(dir: string): Promise<string[]> {
  return (await readdir(dir, { withFileTypes: true }))
    .filter((e) => e.isFile() && e.name.toLowerCase().endsWith(".jar"))
    .map((e) => e.name)
    .sort();
}

/** Every jar the app carries (the one it runs and any it puts on its class path), for jdeps. */
async function appJars(dir: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(rel: string): Promise<void> {
    for (const entry of (await readdir(path.join(dir, rel), { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const childRel = rel ? `${rel}/${entry.name}` : entry.name;
      if (SKIP.has(childRel.split("/")[0]!)) continue;
      if (entry.isDirectory()) await walk(childRel);
      else if (entry.isFile() && entry.name.toLowerCase().endsWith(".jar")) out.push(path.join(dir, childRel));
    }
  }
  await walk("");
  return out;
}

export const baker: Baker = {
  name: "java",

  async detect(source: AppSource): Promise<Detection | undefined> {
    if (source.file) {
      if (!source.file.toLowerCase().endsWith(".jar") && !(await looksLikeZip(source.file))) return undefined;
      const jarName = path.basename(source.file);
      const info = await readJar(source.file);
      const { name, version } = nameAndVersionOf(jarName);
      const base = { name: sanitize(name), ...(version ? { version } : {}), port: DEFAULT_PORT };
      if ("problem" in info) return { ...base, problems: [info.problem] };
      const { cmd, problem } = commandFor(jarName, info);
      return {
        ...base,
        ...(info.manifest["Implementation-Version"] ? { version: info.manifest["Implementation-Version"] } : {}),
        ...(cmd ? { cmd } : {}),
        ...(problem ? { problems: [problem] } : {}),
      };
    }
    const jars = await topLevelJars(source.dir);
    if (jars.length === 0) return undefined;
    const base = { name: sanitize(path.basename(source.dir)), port: DEFAULT_PORT };
    if (jars.length > 1) {
      return {
        ...base,
        problems: [
          `cmd: ${source.dir} holds ${jars.length} jars (${jars.join(", ")}); point kiln at the one to run (kiln bake ${path.basename(source.dir)}/${jars[0]}) or set cmd: [java, -jar, ${jars[0]}] in kiln.yml`,
        ],
      };
    }
    const info = await readJar(path.join(source.dir, jars[0]!));
    if ("problem" in info) return { ...base, problems: [info.problem] };
    const version = info.manifest["Implementation-Version"] ?? nameAndVersionOf(jars[0]!).version;
    const { cmd, problem } = commandFor(jars[0]!, info, await readdir(source.dir));
    return { ...base, ...(version ? { version } : {}), ...(cmd ? { cmd } : {}), ...(problem ? { problems: [problem] } : {}) };
  },

  async entryProblems(spec) {
    const cmd = spec.cmd ?? [];
    const at = cmd.indexOf("-jar");
    if (programName(cmd) !== "java" || at < 0 || cmd[at + 1] === undefined) return [];
    const rel = appRelative(cmd[at + 1]!);
    if (rel === undefined) return [];
    if (!(await appHas(spec, rel))) return [missingEntry(spec, rel)];
    const file = spec.appFile ?? path.join(spec.appDir, rel);
    const info = await readJar(file);
    if ("problem" in info || !info.mainClass) return []; // reported with the jar's own problems when the runtime is prepared
    const classFile = `${info.mainClass.replaceAll(".", "/")}.class`;
    if (readZipEntries(await readFile(file)).some((e) => e.name === classFile)) return [];
    return [`cmd: ${cmd.join(" ")}: ${rel}'s manifest names Main-Class ${info.mainClass}, but the jar has no ${classFile}`];
  },

  async prepareRuntime(spec, ctx) {
    const jars = spec.appFile ? [spec.appFile] : await appJars(spec.appDir);
    if (jars.length === 0)
      throw new InputError(`${spec.appDir} holds no .jar for the java baker`, {
        hint: "build the jar first (mvn package, gradle bootJar, jar --create …) and bake it: kiln bake target/app.jar",
      });
    for (const jar of jars) {
      const info = await readJar(jar);
      if ("problem" in info) throw new InputError(info.problem, { hint: "rebuild the jar; kiln reads its manifest and classes" });
      checkClassVersion(jar, info.classMajor);
    }
    const jdk = await prepareJdk(ctx);
    const boot = await bootJarOf(spec, ctx);
    const modules = boot ? await bootModules(boot, jars, jdk, ctx) : await modulesFor(jars, jdk, ctx);
    const jre = await linkJre(modules, jdk, ctx);
    if (!jre.cached) {
      const full = await treeBytes(
        path.join(await ctx.apt.unpack(jdk.packages.find((p) => p.name.includes("jre"))!), "usr/lib/jvm/java-17-openjdk-amd64"),
      );
      ctx.progress.info(
        `  jlink: ${modules.join(",")} -> ${formatBytes(await treeBytes(jre.dir))} JRE (Debian's full JRE: ${formatBytes(full)})`,
      );
    }
    const packages = jdk.packages.map((p) => lockEntryOf(p, "runtime"));
    ctx.used.push(...packages);
    return {
      key: `java:${jdk.key}:${jre.key}`,
      files: [],
      trees: [{ dest: JRE_DEST, source: jre.dir, libraryPath: [`${JRE_DEST}/lib/server`] }],
      packages,
      path: [`${JRE_DEST}/bin`],
    };
  },

  async stageApp(spec, ctx, dest) {
    const boot = await bootJarOf(spec, ctx);
    if (boot) return stageBootJar(spec, boot, ctx, dest);
    if (spec.appFile) {
      const target = path.join(dest, path.basename(spec.appFile));
      await copyFile(spec.appFile, target);
      await chmod(target, 0o644);
      return;
    }
    await copyAppTree(spec.appDir, dest, (rel) => SKIP.has(rel.split("/")[0]!));
  },
};

/**
 * The JDK modules of an exploded Spring Boot app: its libraries' (cached by their bytes, like
 * their layer) and its own classes' (and any other jar in the app directory), together.
 */
async function bootModules(boot: BootJar, allJars: readonly string[], jdk: Jdk, ctx: BakeContext): Promise<string[]> {
  const libs = libraryJars(boot, await bootLibraries(boot, ctx));
  const others = allJars.filter((j) => j !== boot.jar);
  const refs = appClassReferences(boot);
  const own = await modulesFor([boot.jar], jdk, ctx, { classesOnly: true, ...(refs ? { inputsKey: refs } : {}) });
  const rest = libs.length + others.length > 0 ? await modulesFor([...libs, ...others], jdk, ctx) : [];
  return jreModules([...own, ...rest]);
}

/**
 * The JDK classes the app's own classes refer to, as one key (jdeps' answer for them depends on
 * nothing else); undefined when a class file cannot be read, so jdeps is keyed by the jar's bytes.
 */
function appClassReferences(boot: BootJar): string | undefined {
  const refs = new Set<string>();
  for (const entry of boot.split.app) {
    if (!entry.name.startsWith("BOOT-INF/classes/") || !entry.name.endsWith(".class")) continue;
    const found = jdkReferences(inflateEntry(path.basename(boot.jar), boot.zip, entry));
    if (!found) return undefined;
    for (const r of found) refs.add(r);
  }
  return sha256([...refs].sort().join("\n"));
}

/**
 * The fat jar exploded at /app/<stem> without its libraries, which are the dependency layer
 * mounted at /app/<stem>/BOOT-INF/lib. Other files of an app directory stay where they were.
 */
async function stageBootJar(spec: Spec, boot: BootJar, ctx: BakeContext, dest: string): Promise<StagedDeps | undefined> {
  const jarName = path.basename(boot.jar);
  if (!spec.appFile) await copyAppTree(spec.appDir, dest, (rel) => SKIP.has(rel.split("/")[0]!) || rel === jarName);
  const exploded = path.join(dest, boot.dir.slice("/app/".length));
  await writeBootEntries(jarName, boot.zip, boot.split.app, exploded);
  ctx.progress.info(`  ${jarName} exploded: ${boot.split.app.length} entries in the app layer, ${boot.split.libs.length} libraries`);
  if (boot.split.libs.length === 0) return undefined;
  const libs = await bootLibraries(boot, ctx);
  // The mount point stays empty in the app layer; its mode is fixed (the layer is hashed).
  await mkdir(path.join(exploded, BOOT_LIB), { recursive: true });
  await chmod(path.join(exploded, BOOT_LIB), 0o755);
  await chmod(path.join(exploded, "BOOT-INF"), 0o755);
  ctx.progress.info(`  libraries ${libs.key.slice(0, 12)}${libs.cached ? " (cached: not extracted again)" : " (extracted)"}`);
  return { imageDir: `${boot.dir}/${BOOT_LIB.replace(/\/$/, "")}`, hostDir: libs.dir, key: libs.key, cached: libs.cached };
}

function sanitize(name: string): string {
  return (
    name
      .toLowerCase()
      .replace(/[^a-z0-9._-]+/g, "-")
      .replace(/^[^a-z0-9]+/, "") || "app"
  );
}
