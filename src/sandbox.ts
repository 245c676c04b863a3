/**
 * The stages that touch untrusted content (archive extraction, npm and pip installs with their
 * install scripts and addon compiles, jdeps/jlink on app jars, Python byte-compiling) run under
 * bubblewrap: uid 1000 without capabilities, in private user, pid, ipc, uts, cgroup and mount
 * namespaces (and network, unless the stage must reach a registry), in an empty root where only
 * the read-only system directories, a few /etc files, the stage's inputs (read-only) and its
 * outputs (writable) exist. HOME is an empty tmpfs holding only the registry config files a
 * stage is given, so a hostile install script sees no credentials, no KILN_HOME and no host
 * /proc, and whatever it writes outside its output directory is gone when it exits.
 *
 * A stage is described as data (SandboxSpec); sandboxArgv turns it into bwrap's argv (pure,
 * unit-tested) and the Sandbox runs it through exec.ts.
 */
import { lstatSync, readlinkSync } from "node:fs";
import { CommandFailedError, KilnError, ToolMissingError } from "./errors.js";
import { quoteArgv, run, type RunResult } from "./exec.js";

export interface SandboxSpec {
  /** Host paths visible read-only, each at its own path. */
  readonly readOnly: readonly string[];
  /** Host paths visible and writable, each at its own path (the stage's outputs and caches). */
  readonly writable: readonly string[];
  /** Share the host's network (a registry download); off unless asked for. */
  readonly network?: boolean;
  /** The stage's whole environment on top of PATH, HOME, TMPDIR and the C.UTF-8 locale. */
  readonly env?: Readonly<Record<string, string>>;
  /** Working directory inside the sandbox (default /). */
  readonly cwd?: string;
  /** HOME inside: an empty private tmpfs; readOnly files under it (an .npmrc) are bound into it. */
  readonly home?: string;
}

/** What the host's root looks like, so the argv builder stays pure. */
export interface SystemLayout {
  /** Top-level system directories that exist as directories (bound read-only). */
  readonly dirs: readonly string[];
  /** Top-level system directories that are symlinks (merged /usr): path → link text. */
  readonly links: Readonly<Record<string, string>>;
  /** The /etc entries that exist (bound read-only). */
  readonly etc: readonly string[];
}

export const SANDBOX_UID = 1000;
export const SANDBOX_HOME = "/home/kiln";
export const SANDBOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const SYSTEM_DIRS = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];
/**
 * The /etc a compiler, npm or pip needs: users and groups (no passwords: those are in shadow),
 * the dynamic loader's cache, Debian's alternatives (c++ → g++), CA certificates and the
 * OpenSSL config (not /etc/ssl/private). Name resolution files only come with the network.
 */
const ETC_ALWAYS = [
  "/etc/passwd",
  "/etc/group",
  "/etc/ld.so.cache",
  "/etc/ld.so.conf",
  "/etc/ld.so.conf.d",
  "/etc/alternatives",
  "/etc/ssl/certs",
  "/etc/ssl/openssl.cnf",
  "/etc/ca-certificates",
  "/etc/pki/tls/certs",
  "/etc/localtime",
];
const ETC_NETWORK = ["/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/host.conf", "/etc/gai.conf"];

/** Reads which system directories and /etc files exist on this host. */
export function detectSystemLayout(): SystemLayout {
  const dirs: string[] = [];
  const links: Record<string, string> = {};
  for (const dir of SYSTEM_DIRS) {
    const info = lstatSync(dir, { throwIfNoEntry: false });
    if (info?.isSymbolicLink()) links[dir] = readlinkSync(dir);
    else if (info?.isDirectory()) dirs.push(dir);
  }
  const etc = [...ETC_ALWAYS, ...ETC_NETWORK].filter((file) => lstatSync(file, { throwIfNoEntry: false }) !== undefined);
  return { dirs, links, etc };
}

function checkPath(p: string): void {
  // Programming errors, not user input: every stage path is absolute and never the whole host.
  if (!p.startsWith("/") || p === "/" || p.split("/").includes("..")) throw new Error(`sandbox: refusing to bind '${p}'`);
}

/** bwrap's argv for a command in the sandbox a spec describes (bind order: parents before children). */
export function sandboxArgv(spec: SandboxSpec, command: readonly string[], system: SystemLayout): string[] {
  const home = spec.home ?? SANDBOX_HOME;
  for (const p of [...spec.readOnly, ...spec.writable, home]) checkPath(p);
  const argv = [
    "bwrap",
    "--unshare-user",
    "--uid",
    String(SANDBOX_UID),
    "--gid",
    String(SANDBOX_UID),
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-cgroup-try",
    ...(spec.network ? [] : ["--unshare-net"]),
    "--hostname",
    "kiln-sandbox",
    "--die-with-parent",
    "--new-session",
  ];
  for (const dir of system.dirs) argv.push("--ro-bind", dir, dir);
  for (const [link, target] of Object.entries(system.links).sort()) argv.push("--symlink", target, link);
  const etc = spec.network ? system.etc : system.etc.filter((file) => !ETC_NETWORK.includes(file));
  for (const file of etc) argv.push("--ro-bind", file, file);
  argv.push("--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", home);
  const binds = [...spec.readOnly.map((p) => ["--ro-bind", p] as const), ...spec.writable.map((p) => ["--bind", p] as const)];
  binds.sort((a, b) => (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  for (const [flag, p] of binds) argv.push(flag, p, p);
  argv.push("--chdir", spec.cwd ?? "/", "--", ...command);
  return argv;
}

/** The sandboxed command's whole environment: nothing of the host's unless a stage passes it. */
export function sandboxEnv(spec: SandboxSpec): Record<string, string> {
  return {
    PATH: SANDBOX_PATH,
    HOME: spec.home ?? SANDBOX_HOME,
    TMPDIR: "/tmp",
    LANG: "C.UTF-8",
    LC_ALL: "C.UTF-8",
    USER: "kiln",
    ...spec.env,
  };
}

export interface SandboxRunOptions {
  readonly timeoutMs?: number;
  readonly hint?: string;
}

/** Runs stages confined (bubblewrap) or, with --no-sandbox, directly on the host. */
export interface Sandbox {
  readonly enabled: boolean;
  run(command: readonly string[], spec: SandboxSpec, options?: SandboxRunOptions): Promise<RunResult>;
}

export const NO_SANDBOX_WARNING =
  "warning: --no-sandbox (or KILN_NO_SANDBOX=1): archive extraction, npm/pip installs with their install scripts, " +
  "addon compiles, jdeps/jlink and Python byte-compiling run directly on this host as " +
  "your user, with your home directory, " +
  "credentials (~/.aws, AWS_* variables), KILN_HOME and network in reach of the app's code and dependencies";

/**
 * The bake's sandbox. Checks once that bubblewrap can create a user namespace here, so a host
 * without them fails before any stage runs, with the way out in the hint.
 */
export async function openSandbox(options: { enabled: boolean; warn: (message: string) => void }): Promise<Sandbox> {
  if (!options.enabled) {
    options.warn(NO_SANDBOX_WARNING);
    return { enabled: false, run: (command, spec, runOptions = {}) => runUnconfined(command, spec, runOptions) };
  }
  const system = detectSystemLayout();
  await probe(system);
  return { enabled: true, run: (command, spec, runOptions = {}) => runConfined(command, spec, runOptions, system) };
}

let probed: Promise<void> | undefined;
function probe(system: SystemLayout): Promise<void> {
  const empty: SandboxSpec = { readOnly: [], writable: [] };
  probed ??= run(sandboxArgv(empty, ["true"], system), { env: sandboxEnv(empty), exactEnv: true, timeoutMs: 30_000 })
    .then(() => undefined)
    .catch((error: unknown) => {
      probed = undefined;
      if (error instanceof ToolMissingError) throw error;
      const detail = error instanceof KilnError ? error.message : String(error);
      throw new KilnError(`bubblewrap cannot create a sandbox on this host (user namespaces):\n${detail}`, {
        hint:
          "kiln runs the stages that touch untrusted content in a bubblewrap sandbox: install it (apt-get install bubblewrap) and enable user " +
          "namespaces (sysctl kernel.unprivileged_userns_clone=1 and user.max_user_namespaces > 0; in a container, allow them), or bake with " +
          "--no-sandbox / KILN_NO_SANDBOX=1 on a host you trust with the app's code",
        cause: error,
      });
    });
  return probed;
}

async function runConfined(
  command: readonly string[],
  spec: SandboxSpec,
  options: SandboxRunOptions,
  system: SystemLayout,
): Promise<RunResult> {
  try {
    return await run(sandboxArgv(spec, command, system), { env: sandboxEnv(spec), exactEnv: true, ...options });
  } catch (error) {
    // The stage's own command line reads better than bwrap's forty mount arguments.
    if (error instanceof CommandFailedError) {
      const reason = error.message.split("\n")[1]?.trim() ?? "";
      throw new CommandFailedError(`${quoteArgv(command)} (in the build sandbox)`, reason, error.stderrTail, options.hint);
    }
    throw error;
  }
}

function runUnconfined(command: readonly string[], spec: SandboxSpec, options: SandboxRunOptions): Promise<RunResult> {
  // The host's own PATH and HOME: the tools and registry settings the user set up, unconfined.
  const env = {
    ...sandboxEnv(spec),
    PATH: process.env.PATH ?? SANDBOX_PATH,
    HOME: process.env.HOME ?? "/",
    TMPDIR: process.env.TMPDIR ?? "/tmp",
  };
  return run(command, { env, exactEnv: true, ...(spec.cwd ? { cwd: spec.cwd } : {}), ...options });
}
