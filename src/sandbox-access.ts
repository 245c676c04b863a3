/**
 * What a sandboxed install needs from the host to reach the registry the user configured, and
 * nothing else: npm's and pip's config files (bound read-only at their own paths), their
 * settings and proxy variables from the environment, extra CA files those name, and the host's
 * own node/npm/python when they live outside the system directories (nvm, pyenv, a venv).
 * Never AWS_* or any other variable: the stage's environment is built from this list.
 */
import { existsSync, realpathSync, statSync } from "node:fs";
import path from "node:path";
import { run } from "./exec.js";
import { SANDBOX_PATH } from "./sandbox.js";

export interface HostAccess {
  readonly readOnly: string[];
  readonly env: Record<string, string>;
}

const PROXY_VARS = ["HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "ALL_PROXY", "all_proxy"];
/** Variables that name a CA bundle: passed on, and the file bound read-only. */
const CA_VARS = [
  "SSL_CERT_FILE",
  "SSL_CERT_DIR",
  "NODE_EXTRA_CA_CERTS",
  "REQUESTS_CA_BUNDLE",
  "PIP_CERT",
  "npm_config_cafile",
  "NPM_CONFIG_CAFILE",
];
/** npm settings that point at the host's own directories (set by `npm run`): the sandbox has its own. */
const NPM_HOST_PATHS = new Set(["cache", "userconfig", "prefix", "local_prefix", "global_prefix", "globalconfig", "init_module", "tmp"]);
const SYSTEM_PREFIXES = ["/usr/", "/bin/", "/sbin/", "/lib/", "/lib64/"];

function isSystemPath(p: string): boolean {
  return SYSTEM_PREFIXES.some((prefix) => p.startsWith(prefix));
}

function existing(files: readonly (string | undefined)[]): string[] {
  return [...new Set(files.filter((f): f is string => f !== undefined && path.isAbsolute(f) && existsSync(f)))];
}

function passThrough(env: NodeJS.ProcessEnv, keep: (name: string) => boolean): { env: Record<string, string>; files: string[] } {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value !== undefined && (PROXY_VARS.includes(name) || CA_VARS.includes(name) || keep(name))) out[name] = value;
  }
  return { env: out, files: existing(CA_VARS.map((name) => env[name])) };
}

/** npm's registry settings: ~/.npmrc (or npm_config_userconfig), npm_config_* variables, proxies, CA files. */
export function npmAccess(env: NodeJS.ProcessEnv = process.env): HostAccess {
  const userconfig = env.npm_config_userconfig ?? env.NPM_CONFIG_USERCONFIG ?? (env.HOME ? path.join(env.HOME, ".npmrc") : undefined);
  const settings = passThrough(
    env,
    (name) => /^npm_config_/i.test(name) && !NPM_HOST_PATHS.has(name.slice("npm_config_".length).toLowerCase()),
  );
  const files = existing([userconfig, ...settings.files]);
  return {
    readOnly: files,
    env: { ...settings.env, ...(userconfig && files.includes(userconfig) ? { npm_config_userconfig: userconfig } : {}) },
  };
}

/**
 * pip's registry settings: its site and user config files (the user ones found through
 * XDG_CONFIG_HOME and PIP_CONFIG_FILE, since HOME inside is empty), PIP_* variables, proxies,
 * CA files, and local --find-links directories.
 */
export function pipAccess(env: NodeJS.ProcessEnv = process.env): HostAccess {
  const home = env.HOME;
  const xdg = env.XDG_CONFIG_HOME ?? (home ? path.join(home, ".config") : undefined);
  const userFile = xdg ? path.join(xdg, "pip", "pip.conf") : undefined;
  const legacyFile = home ? path.join(home, ".pip", "pip.conf") : undefined;
  const settings = passThrough(env, (name) => name.startsWith("PIP_"));
  const findLinks = (env.PIP_FIND_LINKS ?? "").split(/\s+/).filter((p) => path.isAbsolute(p));
  const files = existing([
    "/etc/pip.conf",
    "/etc/xdg/pip/pip.conf",
    userFile,
    legacyFile,
    env.PIP_CONFIG_FILE,
    ...settings.files,
    ...findLinks,
  ]);
  const extra: Record<string, string> = {};
  if (xdg && userFile && files.includes(userFile)) extra.XDG_CONFIG_HOME = xdg;
  if (!env.PIP_CONFIG_FILE && legacyFile && files.includes(legacyFile)) extra.PIP_CONFIG_FILE = legacyFile;
  return { readOnly: files, env: { ...settings.env, ...extra } };
}

/**
 * A host tool the sandbox must run (npm, node): nothing to add when it is a system binary;
 * otherwise its installation prefix (read-only) and its bin directory first on PATH.
 */
export function hostToolAccess(tools: readonly string[], env: NodeJS.ProcessEnv = process.env): HostAccess {
  const readOnly: string[] = [];
  const bins: string[] = [];
  for (const tool of tools) {
    const candidates = (env.PATH ?? "")
      .split(":")
      .filter(Boolean)
      .map((dir) => path.join(dir, tool));
    const found = candidates.find((file) => existsSync(file) && statSync(file).isFile());
    if (!found || isSystemPath(found)) continue;
    const bin = path.dirname(found);
    readOnly.push(path.dirname(bin), path.dirname(path.dirname(realpathSync(found))));
    bins.push(bin);
  }
  return {
    readOnly: [...new Set(readOnly)].filter((p) => p !== "/"),
    env: bins.length ? { PATH: [...new Set(bins), SANDBOX_PATH].join(":") } : {},
  };
}

/**
 * The host's python3 (the one on PATH, which may be a pyenv shim or a venv) as the sandbox sees
 * it: the real interpreter and its prefixes, asked from the interpreter itself (isolated mode,
 * no app input, from /).
 */
export async function hostPythonAccess(): Promise<HostAccess & { python: string }> {
  const probe = "import json, sys; print(json.dumps([sys.executable, sys.prefix, sys.base_prefix]))";
  const { stdout } = await run(["python3", "-I", "-c", probe], { inheritEnv: true, cwd: "/", timeoutMs: 60_000 });
  const [python, prefix, basePrefix] = JSON.parse(stdout) as [string, string, string];
  const readOnly = [prefix, basePrefix].filter((p) => !isSystemPath(`${p}/`) && p !== "/");
  return { python, readOnly: [...new Set(readOnly)], env: {} };
}
