/**
 * The JDK from Debian (openjdk-17-jdk-headless + openjdk-17-jre-headless, pinned in kiln.lock),
 * unpacked once into a runnable JDK home in kiln's cache; jdeps finds the modules an app's
 * jars use and jlink builds a JRE of only those. Both tools run on the build host (the
 * packages are x86-64 like it). Every result is cached by the identity of its inputs.
 */
import { cp, mkdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { hostPathBeneath } from "../../src/confine.js";
import { resolveDebian, type BakeContext } from "../../src/bake/context.js";
import { CommandFailedError, InputError } from "../../src/errors.js";
import { exists, listTree, makeScratchDir, publishDir, removeDir, sha256, sha256File } from "../../src/fsutil.js";
import type { DebianPackage } from "../../src/packages/apt.js";
import { inspectJar, readZipEntries, readZipEntry } from "./jar.js";
import { FALLBACK_MODULES, jreModules, parseModuleDeps } from "./jdeps.js";

export const JDK_PACKAGES = ["openjdk-17-jdk-headless", "openjdk-17-jre-headless"] as const;
export const JAVA_RELEASE = 17;
const JVM_HOME = "usr/lib/jvm/java-17-openjdk-amd64";
const JVM_ETC = "etc/java-17-openjdk";
export const JLINK_OPTIONS: readonly string[] = ["--strip-debug", "--no-header-files", "--no-man-pages", "--compress=2"];

export interface Jdk {
  /** JAVA_HOME of the unpacked JDK on the build host. */
  readonly home: string;
  /** The unpacked tree holding `home` (and the /etc files its links point to): what a sandbox binds. */
  readonly root: string;
  readonly key: string;
  readonly packages: readonly DebianPackage[];
}

/** Unpacks both packages into one JDK home (the jmods and tools are split between them). */
export async function prepareJdk(ctx: BakeContext): Promise<Jdk> {
  const packages: DebianPackage[] = [];
  for (const name of JDK_PACKAGES) packages.push(await resolveDebian(ctx, name));
  const key = sha256(packages.map((p) => p.sha256).join("\n")).slice(0, 16);
  const dir = path.join(ctx.home.cache, "java", `jdk-${key}`);
  if (!(await exists(dir))) {
    const trees: string[] = [];
    for (const pkg of packages) trees.push(await ctx.apt.unpack(pkg));
    await mkdir(path.dirname(dir), { recursive: true });
    const scratch = await makeScratchDir(path.dirname(dir), "jdk");
    try {
      for (const tree of trees) {
        for (const sub of [JVM_HOME, JVM_ETC]) {
          if (await exists(path.join(tree, sub)))
            await cp(path.join(tree, sub), path.join(scratch, sub), { recursive: true, verbatimSymlinks: true, force: true });
        }
      }
      await rerootSymlinks(scratch);
      await publishDir(scratch, dir);
    } catch (error) {
      await removeDir(scratch);
      throw error;
    }
  }
  return { home: path.join(dir, JVM_HOME), root: dir, key, packages };
}

/**
 * Debian links the JDK's config files to /etc/java-17-openjdk; in the unpacked tree those
 * links must point into the tree, not at the build host's /etc. Links to files the packages
 * do not ship (cacerts from ca-certificates-java) are dropped: jlink takes its files from the jmods.
 */
async function rerootSymlinks(root: string): Promise<void> {
  for (const entry of await listTree(root)) {
    if (entry.type !== "symlink" || !entry.target?.startsWith("/")) continue;
    const link = path.join(root, entry.rel);
    // Resolved as in the image (".." stops at the tree's root), so a link never leads out of the tree.
    const target = await hostPathBeneath(root, entry.target, { inRoot: true });
    await rm(link);
    if (target !== undefined && (await exists(target))) await symlink(path.relative(path.dirname(link), target), link);
  }
}

/**
 * The app's jars as jdeps inputs; a Spring Boot jar's classes and nested jars are extracted
 * (only its classes when its libraries are analysed on their own, as a cached layer).
 */
async function jdepsInputs(jars: readonly string[], work: string, classesOnly: boolean): Promise<string[]> {
  const inputs: string[] = [];
  for (const [i, jar] of jars.entries()) {
    const bytes = await readFile(jar);
    if (inspectJar(bytes).layout !== "spring-boot") {
      inputs.push(jar);
      continue;
    }
    const classes = path.join(work, `${i}`, "classes");
    const libs = path.join(work, `${i}`, "lib");
    await mkdir(classes, { recursive: true });
    await mkdir(libs, { recursive: true });
    for (const entry of readZipEntries(bytes)) {
      if (entry.name.endsWith("/")) continue;
      if (entry.name.startsWith("BOOT-INF/classes/") && entry.name.endsWith(".class")) {
        const target = path.join(classes, entry.name.slice("BOOT-INF/classes/".length));
        if (!target.startsWith(classes + path.sep)) continue;
        await mkdir(path.dirname(target), { recursive: true });
        await writeFile(target, readZipEntry(bytes, entry));
      } else if (!classesOnly && /^BOOT-INF\/lib\/[^/]+\.jar$/.test(entry.name)) {
        await writeFile(path.join(libs, path.basename(entry.name)), readZipEntry(bytes, entry));
        inputs.push(path.join(libs, path.basename(entry.name)));
      }
    }
    inputs.push(classes);
  }
  return inputs;
}

/**
 * The JDK modules the jars use (jdeps --print-module-deps), cached by the jars' content. If
 * jdeps cannot analyse them, the whole Java SE is used and the bake says so.
 */
export async function modulesFor(
  jars: readonly string[],
  jdk: Jdk,
  ctx: BakeContext,
  options: { classesOnly?: boolean; inputsKey?: string } = {},
): Promise<string[]> {
  const classesOnly = options.classesOnly ?? false;
  // inputsKey: what decides jdeps' answer, when the caller knows it better than the jars' bytes.
  const inputs = options.inputsKey !== undefined ? [`refs:${options.inputsKey}`] : await Promise.all(jars.map((j) => sha256File(j)));
  const key = sha256([jdk.key, ...inputs, ...(classesOnly ? ["classes-only"] : [])].join("\n")).slice(0, 32);
  const cached = path.join(ctx.home.cache, "java", `modules-${key}.txt`);
  const known = (await readFile(cached, "utf8").catch(() => "")).trim();
  if (known) return known.split(",");
  const work = await makeScratchDir(ctx.scratch, "jdeps");
  let modules: string[];
  try {
    const jdepsArgs = await jdepsInputs(jars, work, classesOnly);
    const argv = [
      path.join(jdk.home, "bin", "jdeps"),
      "--print-module-deps",
      "--ignore-missing-deps",
      "--multi-release",
      String(JAVA_RELEASE),
      "-q",
      ...jdepsArgs,
    ];
    // jdeps parses the app's class files: in the sandbox, the jars and the JDK read-only, no network.
    const stage = { readOnly: [jdk.root, work, ...jars], writable: [] };
    const found = parseModuleDeps((await ctx.sandbox.run(argv, stage, { timeoutMs: 600_000 })).stdout);
    if (!found) throw new CommandFailedError(argv.join(" "), "printed no module list", "");
    modules = jreModules(found);
  } catch (error) {
    if (!(error instanceof CommandFailedError)) throw error;
    ctx.progress.info(
      `  jdeps could not analyse the jars, so the JRE gets all of Java SE (${FALLBACK_MODULES.join(",")}):\n${error.message
        .split("\n")
        .map((l) => `    ${l}`)
        .join("\n")}`,
    );
    modules = jreModules(FALLBACK_MODULES);
  } finally {
    await removeDir(work);
  }
  await mkdir(path.dirname(cached), { recursive: true });
  await writeFile(cached, `${modules.join(",")}\n`);
  return modules;
}

/** A JRE of exactly these modules, built once per (JDK, modules). */
export async function linkJre(
  modules: readonly string[],
  jdk: Jdk,
  ctx: BakeContext,
): Promise<{ dir: string; key: string; cached: boolean }> {
  const key = sha256([jdk.key, modules.join(","), ...JLINK_OPTIONS].join("\n")).slice(0, 16);
  const dir = path.join(ctx.home.cache, "java", `jre-${key}`);
  if (await exists(dir)) return { dir, key, cached: true };
  await mkdir(path.dirname(dir), { recursive: true });
  const scratch = await makeScratchDir(path.dirname(dir), "jlink");
  try {
    const out = path.join(scratch, "jre");
    const argv = [
      path.join(jdk.home, "bin", "jlink"),
      "--module-path",
      path.join(jdk.home, "jmods"),
      "--add-modules",
      modules.join(","),
      ...JLINK_OPTIONS,
      "--output",
      out,
    ];
    await ctx.sandbox.run(
      argv,
      { readOnly: [jdk.root], writable: [scratch] },
      {
        timeoutMs: 600_000,
        hint: "jlink from the Debian JDK failed; run the same command to see why (the modules come from jdeps on the app's jars)",
      },
    );
    await publishDir(out, dir);
  } finally {
    await removeDir(scratch);
  }
  return { dir, key, cached: false };
}

/** Bytes of a directory tree (files only), for the size report. */
export async function treeBytes(dir: string): Promise<number> {
  return (await listTree(dir)).reduce((a, e) => a + e.size, 0);
}

export function checkClassVersion(jar: string, classMajor: number | undefined): void {
  if (classMajor === undefined || classMajor <= 44 + JAVA_RELEASE) return;
  throw new InputError(
    `${path.basename(jar)} has classes for Java ${classMajor - 44} (class file version ${classMajor}), but the java baker's runtime is Java ${JAVA_RELEASE} (Debian openjdk-${JAVA_RELEASE})`,
    {
      hint: `compile for Java ${JAVA_RELEASE}: javac --release ${JAVA_RELEASE} (Maven: <maven.compiler.release>${JAVA_RELEASE}</maven.compiler.release>; Gradle: java { toolchain { languageVersion = JavaLanguageVersion.of(${JAVA_RELEASE}) } })`,
    },
  );
}
