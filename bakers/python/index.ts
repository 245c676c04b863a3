/**
 * python: a directory with requirements.txt and/or an entry file (app.py, main.py, server.py,
 * __main__.py), or a single .py file. Runtime: Debian's CPython 3.11 with a trimmed, precompiled
 * standard library. App: its files plus its requirements, installed at bake time by the build
 * host's pip from the configured index as wheels only (pure Python or manylinux for the image's
 * glibc), so nothing compiles and nothing needs a compiler in the image.
 */
import { chmod, copyFile, lstat, mkdir, readFile, readdir } from "node:fs/promises";
import path from "node:path";
import type { AppSource, Baker, Detection } from "../../src/bake/baker.js";
import { resolveDebian, type BakeContext } from "../../src/bake/context.js";
import { CommandFailedError, InputError, KilnError } from "../../src/errors.js";
import { copyAppTree } from "../../src/bake/app-tree.js";
import { hostPythonAccess, pipAccess } from "../../src/sandbox-access.js";
import { copyTreeNormalized, exists, hashTree, makeScratchDir, publishDir, removeDir, sha256, sha256File } from "../../src/fsutil.js";
import { lockEntryOf } from "../../src/packages/apt.js";
import { appHas, appRelative, missingEntry, programName, scriptArgument } from "../../src/bake/entry.js";
import { explainPipFailure, glibcOf, parseRequirements, pythonCommand, targetWheelArgs } from "./requirements.js";
import { compilePython, preparePython, PYTHON_VERSION, SITE_PACKAGES, STDLIB_DEST } from "./runtime.js";

export const priority = 40;

const DEFAULT_PORT = 8080;
const REQUIREMENTS = "requirements.txt";
const SKIP_TOP = new Set([
  ".git",
  "kiln.yml",
  "kiln.lock",
  ".kiln",
  ".venv",
  "venv",
  ".tox",
  ".pytest_cache",
  ".mypy_cache",
  ".ruff_cache",
]);
/** Options of python3 that take the next argument as their value (python3 -W ignore app.py). */
const PYTHON_OPTIONS_WITH_VALUE = new Set(["-W", "-X", "--check-hash-based-pycs"]);
const PIP_ENV = ["PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX", "PIP_PRE"];

function skip(rel: string): boolean {
  const parts = rel.split("/");
  return SKIP_TOP.has(parts[0]!) || parts.includes("__pycache__") || rel.endsWith(".pyc");
}

export const baker: Baker = {
  name: "python",

  async detect(source: AppSource): Promise<Detection | undefined> {
    if (source.file) {
      if (!source.file.endsWith(".py")) return undefined;
      const base = path.basename(source.file);
      return { name: sanitize(base.replace(/\.py$/, "")), cmd: ["python3", "-u", base], port: DEFAULT_PORT };
    }
    const files = (await readdir(source.dir, { withFileTypes: true })).filter((e) => e.isFile()).map((e) => e.name);
    const cmd = pythonCommand(files);
    if (!cmd && !files.includes(REQUIREMENTS)) return undefined;
    const name = sanitize(path.basename(source.dir));
    if (cmd) return { name, cmd, port: DEFAULT_PORT };
    return {
      name,
      port: DEFAULT_PORT,
      problems: [
        `cmd: ${source.dir} has ${REQUIREMENTS} but no app.py, main.py, server.py or __main__.py; set cmd: in kiln.yml, e.g. [python3, -u, myapp.py] or [python3, -u, -m, mypackage]`,
      ],
    };
  },

  async entryProblems(spec) {
    const cmd = spec.cmd ?? [];
    if (!/^python3?(\.\d+)?$/.test(programName(cmd))) return [];
    // -m runs a module, which may come from requirements.txt or the standard library: not checked here.
    const script = scriptArgument(cmd, PYTHON_OPTIONS_WITH_VALUE, new Set(["-c", "-m", "-V", "--version"]));
    const rel = script === undefined ? undefined : appRelative(script);
    if (rel === undefined) return [];
    // A directory (python3 .) runs its __main__.py.
    if ((await appHas(spec, rel)) || (await appHas(spec, path.posix.join(rel, "__main__.py")))) return [];
    return [missingEntry(spec, rel === "." ? "__main__.py" : rel)];
  },

  async prepareRuntime(_spec, ctx) {
    const py = await preparePython(ctx);
    const packages = py.packages.map((p) => lockEntryOf(p, "runtime"));
    ctx.used.push(...packages);
    return {
      key: `python:${py.key}`,
      files: [{ dest: "/usr/bin/python3", source: py.python, mode: 0o755 }],
      trees: [{ dest: STDLIB_DEST, source: py.stdlib }],
      packages,
      path: ["/usr/bin"],
    };
  },

  async stageApp(spec, ctx, dest, runtime) {
    if (spec.appFile) {
      const target = path.join(dest, path.basename(spec.appFile));
      await copyFile(spec.appFile, target);
      await chmod(target, 0o644);
    } else {
      await copyAppTree(spec.appDir, dest, skip);
    }
    const python = runtime.files.find((f) => f.dest === "/usr/bin/python3");
    if (!python) throw new KilnError("the python runtime has no /usr/bin/python3");
    // The app's own modules are compiled on every bake (they are small); requirements once, cached.
    await compilePython(ctx.sandbox, python.source, dest, "/app", "/\\.kiln/");
    const requirements = path.join(spec.appDir, REQUIREMENTS);
    if (!(await exists(requirements))) return;
    const site = await installRequirements(requirements, { python: python.source, key: runtime.key }, ctx);
    if ((await readdir(site)).length === 0) return;
    // The installed requirements are their own layer, mounted over an empty site-packages:
    // a source change does not copy, scan or compress them again.
    const key = path.basename(site);
    const layer = await layerTree(site, key, ctx);
    await mkdir(path.join(dest, SITE_PACKAGES.slice("/app/".length)), { recursive: true });
    ctx.progress.info(`  dependencies ${key.slice(0, 12)}${layer.cached ? " (cached: pip not run)" : " (installed)"}`);
    return { imageDir: SITE_PACKAGES, hostDir: layer.dir, key, cached: layer.cached };
  },
};

/**
 * The contents of the local files requirements.txt makes pip read (a wheel rebuilt under the same
 * name must not reuse the old install). Only paths inside the app directory count: pip runs in a
 * sandbox that sees nothing else, and kiln reads nothing outside the app to make a key.
 */
async function localInputHashes(appDir: string, inputs: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const rel of inputs) {
    if (path.isAbsolute(rel) || rel.split("/").includes("..") || rel.includes("\0")) continue;
    const target = path.join(appDir, rel);
    const info = await lstat(target).catch(() => undefined);
    if (info?.isFile()) out.push(`${rel}:${await sha256File(target)}`);
    else if (info?.isDirectory()) out.push(`${rel}/:${await hashTree(target)}`);
    else out.push(`${rel}:missing`);
  }
  return out;
}

/**
 * The installed tree as the dependency layer sees it: modes normalised, once per install key,
 * as <key>/site-packages (named like its mount point, so the SBOM scan sees the same paths).
 */
async function layerTree(site: string, key: string, ctx: BakeContext): Promise<{ dir: string; cached: boolean }> {
  const entry = path.join(ctx.home.cache, "python-deps", key);
  const dir = path.join(entry, path.posix.basename(SITE_PACKAGES));
  if (await exists(entry)) return { dir, cached: true };
  const scratch = await makeScratchDir(ctx.scratch, "site");
  await copyTreeNormalized(site, path.join(scratch, path.posix.basename(SITE_PACKAGES)));
  await mkdir(path.dirname(entry), { recursive: true });
  await publishDir(scratch, entry);
  return { dir, cached: false };
}

/**
 * pip install --target, wheels only, for the image's interpreter and glibc (not the build
 * host's), then byte-compiled by that interpreter, once per (requirements.txt, runtime, index
 * settings); the result is cached like node_modules.
 */
async function installRequirements(file: string, runtime: { python: string; key: string }, ctx: BakeContext): Promise<string> {
  const text = await readFile(file, "utf8");
  const parsed = parseRequirements(text, REQUIREMENTS);
  if (parsed.problems.length > 0) {
    throw new InputError(
      `${file} has ${parsed.problems.length} problem${parsed.problems.length === 1 ? "" : "s"}:\n${parsed.problems.map((p) => `  - ${p}`).join("\n")}`,
      {
        hint: "kiln installs requirements as wheels (pip --only-binary=:all:), so every line must name a project on your index or a .whl",
      },
    );
  }
  const libc = await resolveDebian(ctx, "libc6");
  const glibc = glibcOf(libc.version);
  if (!glibc) throw new KilnError(`cannot tell the glibc version from libc6 ${libc.version}`);
  const wheelArgs = targetWheelArgs(PYTHON_VERSION, glibc);
  const settings = PIP_ENV.map((k) => `${k}=${process.env[k] ?? ""}`);
  const locals = await localInputHashes(path.dirname(file), parsed.localInputs);
  const key = sha256([text, runtime.key, ...wheelArgs, ...settings, ...locals].join("\n")).slice(0, 32);
  const cached = path.join(ctx.home.cache, "python-packages", key);
  if (await exists(cached)) return cached;
  if (parsed.requirements.length === 0) return emptyDir(ctx, cached);
  const work = await makeScratchDir(ctx.scratch, "pip");
  try {
    const site = path.join(work, "site-packages");
    // The host's pip, isolated (-I: the app directory, pip's working directory, is not on
    // sys.path), in the sandbox with the network and pip's registry settings, writing only to `work`.
    const host = await hostPythonAccess();
    const access = pipAccess();
    const argv = [
      host.python,
      "-I",
      "-m",
      "pip",
      "install",
      "--target",
      site,
      "--no-compile",
      "--no-warn-script-location",
      "--disable-pip-version-check",
      "--no-input",
      "--progress-bar",
      "off",
      ...wheelArgs,
      "-r",
      file,
    ];
    const stage = {
      readOnly: [path.dirname(file), ...host.readOnly, ...access.readOnly],
      writable: [work],
      network: true,
      cwd: path.dirname(file),
      env: { ...access.env, PIP_ROOT_USER_ACTION: "ignore" },
    };
    try {
      await ctx.sandbox.run(argv, stage, { timeoutMs: 30 * 60_000 });
    } catch (error) {
      if (error instanceof CommandFailedError) throw pipError(file, error, glibc);
      throw error;
    }
    // Console scripts carry the build host's interpreter path and cannot run without a shell
    // wrapper anyway: apps run `python3 -m tool` instead.
    await removeDir(path.join(site, "bin"));
    await compilePython(ctx.sandbox, runtime.python, site, SITE_PACKAGES);
    await mkdir(path.dirname(cached), { recursive: true });
    await publishDir(site, cached);
    return cached;
  } finally {
    await removeDir(work);
  }
}

async function emptyDir(ctx: BakeContext, dir: string): Promise<string> {
  const scratch = await makeScratchDir(ctx.scratch, "pip");
  await mkdir(path.dirname(dir), { recursive: true });
  await publishDir(scratch, dir);
  return dir;
}

function pipError(file: string, error: CommandFailedError, glibc: [number, number]): KilnError {
  const stderr = error.stderrTail;
  if (/No module named pip/.test(stderr)) {
    return new KilnError("the build host's python3 has no pip, which the python baker uses to install requirements", {
      hint: "install it: apt-get install python3-pip",
      cause: error,
    });
  }
  const failure = explainPipFailure(stderr);
  const wheels = `kiln installs wheels only: pure Python, or CPython ${PYTHON_VERSION} manylinux x86-64 wheels for glibc ${glibc.join(".")} and older`;
  switch (failure.kind) {
    case "unresolvable":
      return new InputError(`${file}: pip found nothing to install for ${failure.requirement}:\n${indent(failure.detail)}`, {
        hint: `check the project name and version on your package index (pip index versions ${failure.requirement!.split(/[=<>!~ ;[]/)[0]}) and fix ${REQUIREMENTS}; ${wheels}, so pick a version that publishes one (or build the wheel with pip wheel and add --find-links)`,
        cause: error,
      });
    case "conflict":
      return new InputError(`${file}: the requirements conflict:\n${indent(failure.detail)}`, {
        hint: `align the versions pip names above in ${REQUIREMENTS} (pip install -r ${REQUIREMENTS} shows the same conflict)`,
        cause: error,
      });
    case "network":
      return new KilnError(`pip could not reach the package index while installing ${file}:\n${indent(failure.detail)}`, {
        hint: "check network access and pip's index settings (pip config list, PIP_INDEX_URL)",
        cause: error,
      });
    default:
      return new KilnError(`pip could not install ${file}:\n${indent(failure.detail)}`, {
        hint: `run the same pip command to see why (kiln --debug bake … prints it); ${wheels}`,
        cause: error,
      });
  }
}

function indent(text: string): string {
  return text
    .split("\n")
    .map((l) => `    ${l}`)
    .join("\n");
}

function sanitize(name: string): string {
  return (
    name
      .toLowerCase()
      .replace(/[^a-z0-9._-]+/g, "-")
      .replace(/^[^a-z0-9]+/, "") || "app"
  );
}
