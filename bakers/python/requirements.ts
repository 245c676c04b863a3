/**
 * Pure helpers for the python baker: reading requirements.txt before pip does (so unsupported
 * lines fail with a clear message), the wheel tags the image's Python accepts, explaining pip's
 * failures, and which parts of Debian's standard library go into the image.
 */

export interface Requirement {
  /** Project name as written (pip normalises case and -/_ itself). */
  readonly name: string;
  /** The whole requirement, e.g. "flask==3.0.3; python_version >= '3.8'". */
  readonly text: string;
  readonly line: number;
}

export interface ParsedRequirements {
  readonly requirements: readonly Requirement[];
  readonly problems: readonly string[];
  /**
   * Local files and directories the install reads besides requirements.txt itself, relative to
   * it as written (./wheels/x.whl, -r base.txt, -c constraints.txt, --find-links wheels): their
   * contents decide what pip installs, so they are part of the install's cache key.
   */
  readonly localInputs: readonly string[];
}

/** A path as written in requirements.txt, when it names something local (not a URL). */
function localPath(target: string): string | undefined {
  if (target.startsWith("file:")) return target.slice("file:".length).replace(/^\/\/(localhost)?(?=\/)/, "");
  return /^[a-z][a-z0-9+.-]*:/i.test(target) ? undefined : target;
}

/** Options pip accepts inside requirements.txt that are fine with wheel-only installs. */
const ALLOWED_OPTIONS =
  /^(-i|--index-url|--extra-index-url|--no-index|-f|--find-links|-c|--constraint|-r|--requirement|--pre|--prefer-binary|--only-binary|--trusted-host|--use-feature|--require-hashes)\b/;

export function parseRequirements(text: string, file = "requirements.txt"): ParsedRequirements {
  const requirements: Requirement[] = [];
  const problems: string[] = [];
  const localInputs: string[] = [];
  // Backslash-newline continues a line; '#' after whitespace starts a comment.
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  for (let i = 0; i < lines.length; i++) {
    const number = i + 1;
    let line = lines[i]!;
    while (line.endsWith("\\") && i + 1 < lines.length) line = line.slice(0, -1) + lines[++i]!;
    line = line.replace(/(^|\s)#.*$/, "").trim();
    if (line === "") continue;
    if (line.startsWith("-e ") || line.startsWith("--editable")) {
      problems.push(
        `${file}:${number}: '${line}' is an editable install, which needs building from source; kiln installs wheels only: build a wheel (pip wheel) and require it, or publish it to your index`,
      );
      continue;
    }
    if (line.startsWith("-")) {
      if (!ALLOWED_OPTIONS.test(line))
        problems.push(
          `${file}:${number}: option '${line.split(/\s+/)[0]}' is not supported in a kiln bake (kiln runs pip with --only-binary=:all: --target)`,
        );
      const fileOption = /^(-r|--requirement|-c|--constraint|-f|--find-links)(?:\s*=\s*|\s+)(\S+)/.exec(line);
      const local = fileOption ? localPath(fileOption[2]!) : undefined;
      if (local !== undefined) localInputs.push(local);
      continue;
    }
    const spec = line.split(";")[0]!.trim();
    if (/^(git|hg|svn|bzr)\+/.test(spec) || / @ (git|hg|svn|bzr)\+/.test(spec)) {
      problems.push(
        `${file}:${number}: '${spec}' is a version-control checkout, which needs building from source; kiln installs wheels only: publish a wheel to your index (or require a .whl URL)`,
      );
      continue;
    }
    const direct = / @ (\S+)$/.exec(spec)?.[1] ?? (/^(https?:|file:|\.{0,2}\/)/.test(spec) ? spec : undefined);
    if (direct !== undefined && !/\.whl$/.test(direct.split(/[?#]/)[0]!)) {
      problems.push(
        `${file}:${number}: '${spec}' is not a wheel (.whl); kiln installs wheels only: build one with pip wheel, or require the project by name from your index`,
      );
      continue;
    }
    const local = direct === undefined ? undefined : localPath(direct);
    if (local !== undefined) localInputs.push(local);
    const name = /^([A-Za-z0-9][A-Za-z0-9._-]*)/.exec(spec)?.[1] ?? spec;
    requirements.push({ name, text: line, line: number });
  }
  return { requirements, problems, localInputs };
}

/** glibc version of Debian's libc6 package version: "2.36-9+deb12u14" → [2, 36]. */
export function glibcOf(libc6Version: string): [number, number] | undefined {
  const m = /^(?:\d+:)?(\d+)\.(\d+)/.exec(libc6Version);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

/**
 * The --platform tags for pip: every manylinux level the image's glibc satisfies (PEP 600),
 * newest first, with the legacy aliases (PEP 513/571/599) that older wheels carry.
 */
export function manylinuxPlatforms(glibc: [number, number], arch = "x86_64"): string[] {
  const [major, minor] = glibc;
  const tags: string[] = [];
  if (major !== 2) return tags;
  for (let m = minor; m >= 5; m--) {
    tags.push(`manylinux_2_${m}_${arch}`);
    if (m === 17) tags.push(`manylinux2014_${arch}`);
    if (m === 12) tags.push(`manylinux2010_${arch}`);
    if (m === 5) tags.push(`manylinux1_${arch}`);
  }
  return tags;
}

/** pip arguments that select wheels for the image's CPython, whatever Python runs pip. */
export function targetWheelArgs(pythonVersion: string, glibc: [number, number]): string[] {
  const abi = `cp${pythonVersion.replace(".", "")}`;
  return [
    "--only-binary=:all:",
    "--python-version",
    pythonVersion,
    "--implementation",
    "cp",
    "--abi",
    abi,
    "--abi",
    "abi3",
    "--abi",
    "none",
    ...manylinuxPlatforms(glibc).flatMap((p) => ["--platform", p]),
  ];
}

export interface PipFailure {
  /** The requirement pip could not satisfy, if it said which. */
  readonly requirement?: string;
  readonly kind: "unresolvable" | "conflict" | "network" | "other";
  /** pip's own ERROR lines, for the message. */
  readonly detail: string;
}

/** Reads pip's stderr after a failed install. */
export function explainPipFailure(stderr: string): PipFailure {
  const errors = stderr
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.startsWith("ERROR:"));
  const detail = (errors.length > 0 ? errors : stderr.trim().split("\n").slice(-5)).join("\n");
  const notFound =
    /No matching distribution found for (.+)$/m.exec(stderr) ??
    /Could not find a version that satisfies the requirement (\S+)/.exec(stderr);
  if (notFound) return { requirement: notFound[1]!.trim(), kind: "unresolvable", detail };
  if (/ResolutionImpossible|conflicting dependencies|Cannot install .* because/.test(stderr)) return { kind: "conflict", detail };
  if (
    /Max retries exceeded|Could not fetch URL|NewConnectionError|Temporary failure in name resolution|ConnectTimeout|ReadTimeout|SSLError/.test(
      stderr,
    )
  )
    return { kind: "network", detail };
  return { kind: "other", detail };
}

/** Top-level parts of the standard library that a server image never uses. */
const DROP_TOP = new Set([
  "test",
  "idlelib",
  "tkinter",
  "turtledemo",
  "turtle.py",
  "ensurepip",
  "curses",
  "lib2to3",
  "pydoc_data",
  "__phello__",
  "__hello__.py",
  "sitecustomize.py",
  "EXTERNALLY-MANAGED",
]);
/** Test packages inside other packages (ctypes/test, unittest/test, distutils/tests, …). */
const DROP_ANY = new Set(["__pycache__", "test", "tests", "idle_test"]);
/**
 * Extension modules that are tests, need a terminal (curses, readline), or pull in databases
 * and services nothing in a kiln image has (dbm, NIS); the rest of lib-dynload stays.
 */
const DROP_DYNLOAD =
  /^(_test\w*|_ctypes_test|_xxtestfuzz|_xxsubinterpreters|xxlimited\w*|_curses\w*|readline|_dbm|_gdbm|nis|ossaudiodev)\./;

/** Whether a path relative to /usr/lib/python3.X goes into the image. */
export function keepStdlibPath(rel: string): boolean {
  const parts = rel.split("/");
  if (DROP_TOP.has(parts[0]!)) return false;
  if (parts.slice(1).some((p) => DROP_ANY.has(p)) || parts[0] === "__pycache__") return false;
  if (parts[0] === "lib-dynload" && parts.length === 2 && DROP_DYNLOAD.test(parts[1]!)) return false;
  return true;
}

/** The start command for a Python app directory, from the conventional entry files. */
export function pythonCommand(files: readonly string[]): string[] | undefined {
  for (const candidate of ["app.py", "main.py", "server.py"]) {
    if (files.includes(candidate)) return ["python3", "-u", candidate];
  }
  if (files.includes("__main__.py")) return ["python3", "-u", "."];
  return undefined;
}
