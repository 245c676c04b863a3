/**
 * The only module that starts processes. Every failure carries the shell-quoted command
 * line and the last lines of stderr; a missing binary names the Debian package to install.
 */
import { execa, type ResultPromise } from "execa";
import { CommandFailedError, ToolMissingError } from "./errors.js";

/** Debian package that provides each tool kiln runs, for ToolMissingError hints. */
export const TOOL_PACKAGES: Readonly<Record<string, string>> = {
  "qemu-system-x86_64": "qemu-system-x86",
  "qemu-img": "qemu-utils",
  "mkfs.erofs": "erofs-utils",
  "mkfs.fat": "dosfstools",
  mcopy: "mtools",
  mmd: "mtools",
  syslinux: "syslinux",
  "apt-get": "apt",
  "apt-cache": "apt",
  "dpkg-deb": "dpkg",
  dpkg: "dpkg",
  npm: "npm",
  gcc: "gcc",
  make: "make",
  zstd: "zstd",
  tar: "tar",
  bwrap: "bubblewrap",
  haproxy: "haproxy",
  wrk: "wrk",
};

export interface RunOptions {
  cwd?: string;
  /** Extra environment on top of a clean one (PATH, HOME, LANG=C.UTF-8). */
  env?: Record<string, string | undefined>;
  /** Inherit the parent's full environment (npm needs its config variables). */
  inheritEnv?: boolean;
  /** `env` is the child's whole environment (a sandboxed stage): nothing added, nothing inherited. */
  exactEnv?: boolean;
  input?: string | Buffer;
  timeoutMs?: number;
  /** Hint attached to a CommandFailedError. */
  hint?: string;
  /** Called with each line of stdout as it arrives (a long build's progress). */
  onStdoutLine?: (line: string) => void;
  /** Stops the command (SIGTERM) when aborted; the run then fails. */
  signal?: AbortSignal;
}

let debug = false;
export function setDebug(on: boolean): void {
  debug = on;
}

export function quoteArgv(argv: readonly string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`)).join(" ");
}

function cleanEnv(extra: Record<string, string | undefined> = {}, inherit = false): Record<string, string | undefined> {
  const base: Record<string, string | undefined> = inherit
    ? { ...process.env }
    : { PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", HOME: process.env.HOME, TMPDIR: process.env.TMPDIR };
  return { ...base, LANG: "C.UTF-8", LC_ALL: "C.UTF-8", ...extra };
}

function tail(text: string, lines = 15): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}

function toolError(argv: readonly string[], error: unknown): Error {
  const e = error as {
    code?: string;
    exitCode?: number;
    signal?: string;
    stderr?: string;
    stdout?: string;
    timedOut?: boolean;
    shortMessage?: string;
  };
  const tool = argv[0] ?? "";
  if (e.code === "ENOENT") return new ToolMissingError(tool, TOOL_PACKAGES[tool.split("/").pop() ?? tool] ?? tool);
  const reason = e.timedOut ? "timed out" : e.signal ? `killed by ${e.signal}` : `exited with status ${e.exitCode ?? "?"}`;
  const stderr = typeof e.stderr === "string" && e.stderr.trim() ? e.stderr : typeof e.stdout === "string" ? e.stdout : "";
  return new CommandFailedError(quoteArgv(argv), reason, tail(stderr));
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; throws CommandFailedError / ToolMissingError. */
export async function run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const [file, ...args] = argv;
  if (!file) throw new Error("run: empty argv");
  if (debug) process.stderr.write(`$ ${quoteArgv(argv)}\n`);
  try {
    const child = execa(file, args, {
      cwd: options.cwd,
      env: options.exactEnv ? options.env : cleanEnv(options.env, options.inheritEnv),
      extendEnv: false,
      input: options.input,
      stdin: options.input === undefined ? "ignore" : "pipe",
      timeout: options.timeoutMs,
      stripFinalNewline: false,
      maxBuffer: 256 * 1024 * 1024,
      ...(options.signal ? { cancelSignal: options.signal } : {}),
    });
    if (options.onStdoutLine) forEachLine(child, options.onStdoutLine);
    const result = await child;
    return { stdout: String(result.stdout), stderr: String(result.stderr) };
  } catch (error) {
    const failure = toolError(argv, error);
    if (failure instanceof CommandFailedError && options.hint) {
      throw new CommandFailedError(failure.command, failure.message.split("\n")[1]?.trim() ?? "", failure.stderrTail, options.hint);
    }
    throw failure;
  }
}

function forEachLine(child: ResultPromise, onLine: (line: string) => void): void {
  let partial = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    const lines = (partial + chunk.toString("utf8")).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) onLine(line);
  });
}

/** Runs a command and returns its stdout as a Buffer (binary output, e.g. a tar stream). */
export async function runBinary(argv: readonly string[], options: RunOptions = {}): Promise<Buffer> {
  const [file, ...args] = argv;
  if (!file) throw new Error("runBinary: empty argv");
  if (debug) process.stderr.write(`$ ${quoteArgv(argv)}\n`);
  try {
    const result = await execa(file, args, {
      cwd: options.cwd,
      env: cleanEnv(options.env, options.inheritEnv),
      extendEnv: false,
      input: options.input,
      stdin: options.input === undefined ? "ignore" : "pipe",
      encoding: "buffer",
      maxBuffer: 1024 * 1024 * 1024,
      timeout: options.timeoutMs,
    });
    return Buffer.from(result.stdout as Uint8Array);
  } catch (error) {
    throw toolError(argv, error);
  }
}

export interface Spawned {
  readonly pid: number;
  readonly child: ResultPromise;
  /** Resolves with the exit code (or null if killed by a signal); never rejects. */
  readonly exited: Promise<{ exitCode: number | null; signal: string | null; stderrTail: string }>;
  readonly commandLine: string;
}

/**
 * Starts a long-running process (a VM, a load balancer) in its own process group, so a
 * Ctrl-C in the terminal reaches kiln only and kiln decides how to shut the child down.
 */
export function spawnDetached(argv: readonly string[], options: RunOptions & { stdoutFile?: string } = {}): Spawned {
  const [file, ...args] = argv;
  if (!file) throw new Error("spawnDetached: empty argv");
  if (debug) process.stderr.write(`$ ${quoteArgv(argv)}\n`);
  const child = execa(file, args, {
    cwd: options.cwd,
    env: cleanEnv(options.env, options.inheritEnv),
    extendEnv: false,
    stdin: "ignore",
    stdout: options.stdoutFile ? { file: options.stdoutFile } : "ignore",
    stderr: "pipe",
    detached: true,
    reject: false,
    buffer: { stderr: true, stdout: false },
  });
  const exited = child.then((r) => ({
    exitCode: r.exitCode ?? null,
    signal: r.signal ?? null,
    stderrTail: tail(String(r.stderr ?? "")),
  }));
  if (child.pid === undefined) {
    // execa reports spawn failures through the promise; surface ENOENT as ToolMissingError.
    return { pid: -1, child, exited, commandLine: quoteArgv(argv) };
  }
  return { pid: child.pid, child, exited, commandLine: quoteArgv(argv) };
}

/** Throws ToolMissingError for the first tool that is not on PATH. */
export async function requireTools(tools: readonly string[]): Promise<void> {
  const { access } = await import("node:fs/promises");
  const { constants } = await import("node:fs");
  const dirs = (process.env.PATH ?? "").split(":").filter(Boolean);
  for (const tool of tools) {
    let found = false;
    for (const dir of dirs) {
      try {
        await access(`${dir}/${tool}`, constants.X_OK);
        found = true;
        break;
      } catch {
        // keep looking
      }
    }
    if (!found) throw new ToolMissingError(tool, TOOL_PACKAGES[tool] ?? tool);
  }
}

export interface Captured {
  readonly pid: number;
  /** Sends a signal to the process (e.g. SIGINT: wrk prints its summary and exits). */
  signal(name: NodeJS.Signals): void;
  readonly done: Promise<{ exitCode: number | null; stdout: string; stderr: string }>;
}

/** Starts a process whose output is collected (a load generator), stoppable by signal. */
export function spawnCapture(argv: readonly string[], options: RunOptions = {}): Captured {
  const [file, ...args] = argv;
  if (!file) throw new Error("spawnCapture: empty argv");
  if (debug) process.stderr.write(`$ ${quoteArgv(argv)}\n`);
  const child = execa(file, args, {
    cwd: options.cwd,
    env: cleanEnv(options.env, options.inheritEnv),
    extendEnv: false,
    stdin: "ignore",
    reject: false,
  });
  const done = child.then((r) => {
    if ((r as { code?: string }).code === "ENOENT") throw new ToolMissingError(file, TOOL_PACKAGES[file] ?? file);
    return { exitCode: r.exitCode ?? null, stdout: String(r.stdout), stderr: String(r.stderr) };
  });
  return { pid: child.pid ?? -1, signal: (name) => void child.kill(name), done };
}
