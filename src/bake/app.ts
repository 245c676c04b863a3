/**
 * App layer: the app's files (with production dependencies) under /app, plus kiln/ with the
 * command, the baked environment and the launch settings the init reads. It is the only layer
 * that changes when the app does.
 */
import { access, constants, mkdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { InputError, KilnError } from "../errors.js";
import { parseElf, isElf } from "../elf/elf.js";
import { makeErofs } from "../image/erofs.js";
import { exists, hashTree, listTree, cachedSha256 } from "../fsutil.js";
import type { Spec } from "../config/types.js";
import type { Baker, Runtime, StagedDeps } from "./baker.js";
import type { BakeContext } from "./context.js";
import { APP_GID, APP_UID } from "./system.js";
import { renderCmdFile, renderEnvFile, renderLaunchConf } from "./app-config.js";

export interface StagedApp {
  /** Directory that becomes the app partition: app/ and kiln/. */
  readonly root: string;
  readonly appDir: string;
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  /** The dependency layer, when the baker installs dependencies into their own partition. */
  readonly deps?: StagedDeps;
}

export interface DepsLayer {
  readonly path: string;
  readonly sha256: string;
  readonly bytes: number;
  readonly cached: boolean;
}

export interface AppLayer {
  readonly path: string;
  readonly sha256: string;
  readonly bytes: number;
  readonly cached: boolean;
  readonly appBytes: number;
  readonly fileCount: number;
  readonly deps?: DepsLayer;
}

/** Whether the runtime puts a program at this image path: one of its files, or a file in one of its trees. */
async function inRuntime(runtime: Runtime, imagePath: string): Promise<boolean> {
  if (runtime.files.some((f) => f.dest === imagePath)) return true;
  for (const tree of runtime.trees ?? []) {
    if (!imagePath.startsWith(`${tree.dest}/`)) continue;
    const info = await stat(path.join(tree.source, imagePath.slice(tree.dest.length + 1))).catch(() => undefined);
    if (info?.isFile()) return true;
  }
  return false;
}

/** Resolves the program the way the image will: relative to /app, or on the runtime's PATH. */
async function resolveProgram(spec: Spec, argv0: string, appDir: string, runtime: Runtime): Promise<string> {
  if (argv0.startsWith("/")) {
    if (argv0.startsWith("/app/")) await checkAppProgram(spec, path.join(appDir, argv0.slice(5)), argv0);
    else if (!(await inRuntime(runtime, path.posix.normalize(argv0))))
      throw new InputError(`cmd: program ${argv0} is not in the image`, {
        hint: `use a path inside the app (./server) or a program the ${spec.baker} runtime provides (its PATH: ${runtime.path.join(":") || "none"})`,
      });
    return argv0;
  }
  if (argv0.includes("/")) {
    const imagePath = path.posix.join("/app", argv0);
    await checkAppProgram(spec, path.join(appDir, argv0), imagePath);
    return imagePath;
  }
  for (const dir of runtime.path) if (await inRuntime(runtime, `${dir}/${argv0}`)) return `${dir}/${argv0}`;
  if (await exists(path.join(appDir, argv0))) {
    const imagePath = `/app/${argv0}`;
    await checkAppProgram(spec, path.join(appDir, argv0), imagePath);
    return imagePath;
  }
  throw new InputError(`cmd: program '${argv0}' is neither in the app directory nor provided by the ${spec.baker} runtime`, {
    hint: `use a path relative to the app directory, e.g. ./${argv0}`,
  });
}

async function checkAppProgram(spec: Spec, hostPath: string, imagePath: string): Promise<void> {
  let info;
  try {
    info = await stat(hostPath);
  } catch {
    throw new InputError(`cmd: ${imagePath.replace(/^\/app\//, "./")} does not exist in ${spec.appDir}`, {
      hint: "check cmd in kiln.yml or --cmd; paths are relative to the app directory",
    });
  }
  if (!info.isFile()) throw new InputError(`cmd: ${imagePath} is not a file`);
  try {
    await access(hostPath, constants.X_OK);
  } catch {
    throw new InputError(`cmd: ${imagePath.replace(/^\/app\//, "./")} is not executable`, { hint: `chmod +x ${hostPath}` });
  }
  const bytes = await readFile(hostPath);
  if (isElf(bytes)) {
    const elf = parseElf(bytes, imagePath);
    if (elf.machineName !== "x86-64" || elf.bits !== 64) {
      throw new InputError(`${path.basename(hostPath)} is a ${elf.bits}-bit ${elf.machineName} executable, but kiln images run on x86-64`, {
        hint: "build it for linux/amd64 (e.g. GOARCH=amd64, --target x86_64-unknown-linux-gnu, or gcc without -m32)",
      });
    }
  } else if (bytes.subarray(0, 2).toString() === "#!") {
    throw new InputError(
      `cmd: ${imagePath} is a script (${bytes.subarray(0, bytes.indexOf(10)).toString()}), but kiln images have no shell or script interpreters`,
      { hint: "run a compiled program, or use the baker for the script's language" },
    );
  }
}

export async function stageApp(spec: Spec, baker: Baker, runtime: Runtime, ctx: BakeContext): Promise<StagedApp> {
  const root = path.join(ctx.scratch, "app-layer");
  const appDir = path.join(root, "app");
  await mkdir(appDir, { recursive: true });
  const deps = (await baker.stageApp(spec, ctx, appDir, runtime)) ?? undefined;
  const cmd = spec.cmd!;
  const argv = [await resolveProgram(spec, cmd[0]!, appDir, runtime), ...cmd.slice(1)];
  const env: Record<string, string> = {
    PATH: [...runtime.path, "/app"].join(":"),
    HOME: "/tmp",
    TMPDIR: "/tmp",
    LANG: "C.UTF-8",
    ...(spec.port !== undefined ? { PORT: String(spec.port) } : {}),
    ...spec.env,
    KILN_IMAGE: `${spec.name}:${spec.version}`,
  };
  const launch = {
    KILN_APP_NAME: spec.name,
    KILN_UID: String(APP_UID),
    KILN_GID: String(APP_GID),
    KILN_PORT: String(spec.port ?? ""),
    KILN_HEALTH_PATH: spec.healthcheck.path,
    KILN_STOP_TIMEOUT: String(spec.stopTimeoutSeconds),
    KILN_MAX_CRASHES: String(spec.restarts.maxQuickExits),
    KILN_CRASH_WINDOW: String(spec.restarts.windowSeconds),
    KILN_ON_CRASH_LOOP: spec.restarts.onCrashLoop ?? "poweroff",
    KILN_SECCOMP: spec.seccomp ? "on" : "off",
    // Where the init mounts the dependency partition (4): the baker's choice (node_modules, site-packages).
    ...(deps ? { KILN_DEPS_DIR: checkDepsDir(deps.imageDir) } : {}),
  };
  await mkdir(path.join(root, "kiln"), { recursive: true });
  await writeFile(path.join(root, "kiln", "cmd"), renderCmdFile(argv));
  await writeFile(path.join(root, "kiln", "env"), renderEnvFile(env));
  await writeFile(path.join(root, "kiln", "launch.conf"), renderLaunchConf(launch));
  return { root, appDir, argv, env, ...(deps ? { deps } : {}) };
}

export async function buildAppLayer(staged: StagedApp, ctx: BakeContext): Promise<AppLayer> {
  const key = (await hashTree(staged.root)).slice(0, 32);
  const entries = await listTree(staged.appDir);
  const appBytes = entries.reduce((a, e) => a + e.size, 0);
  const app = await cachedErofs(`app-${key}`, staged.root, key, ctx);
  const deps = staged.deps ? await cachedErofs(`deps-${staged.deps.key}`, staged.deps.hostDir, staged.deps.key, ctx) : undefined;
  return { ...app, appBytes, fileCount: entries.length, ...(deps ? { deps } : {}) };
}

/**
 * One EROFS image per key in the layer cache. The dependency layer's key is its install key (the
 * installed tree never changes under a key), so a source change finds it without reading it.
 */
async function cachedErofs(name: string, source: string, key: string, ctx: BakeContext): Promise<DepsLayer> {
  const out = path.join(ctx.layers, `${name}.erofs`);
  const cached = await exists(out);
  if (!cached) {
    const tmp = path.join(ctx.scratch, `${name}.erofs`);
    await makeErofs(source, tmp, key);
    await mkdir(ctx.layers, { recursive: true });
    await rename(tmp, out);
  }
  return { path: out, sha256: await cachedSha256(out), bytes: (await stat(out)).size, cached };
}

/** The dependency layer's mount point: a plain directory under /app that the app layer keeps empty. */
function checkDepsDir(imageDir: string): string {
  if (!isPlainDepsDir(imageDir)) throw new KilnError(`the dependency layer's mount point ${imageDir} is not a plain directory under /app`);
  return imageDir;
}

/** Whether a dependency mount point is a plain directory under /app (no `.`, `..`, `//` or trailing `/`); a rebake checks it too. */
export function isPlainDepsDir(imageDir: string): boolean {
  const rel = imageDir.startsWith("/app/") ? imageDir.slice("/app/".length) : "";
  // Every name between slashes is a real name: no "" (a leading, doubled or trailing slash), "." or "..".
  return /^[A-Za-z0-9._/-]+$/.test(rel) && !rel.split("/").some((s) => s === "" || s === "." || s === "..");
}
