/**
 * Reads an app's spec once: kiln.yml (optional) + what the baker detects + flags, validates
 * everything, reports every problem at once with its path, and freezes the result.
 */
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { parse as parseYaml, YAMLParseError } from "yaml";
import { InputError, SpecError } from "../errors.js";
import type { AppSource, Baker, Detection } from "../bake/baker.js";
import { splitCommand } from "./argv.js";
import { CRASH_LOOP_ACTIONS, DEFAULTS, type CrashLoopAction, type Spec, type SpecOverrides } from "./types.js";

const KNOWN_KEYS = new Set([
  "name", "version", "baker", "cmd", "port", "env", "healthcheck", "kernel", "resources", "packages", "stopTimeout", "restarts", "node",
  "seccomp", "environments", "pipeline",
]);

export async function resolveAppSource(target: string): Promise<AppSource> {
  const absolute = path.resolve(target);
  let info;
  try {
    info = await stat(absolute);
  } catch {
    throw new InputError(`app path ${target} does not exist`, { hint: "give the directory of your app (with package.json or kiln.yml) or an executable" });
  }
  if (info.isDirectory()) return { dir: absolute, file: undefined };
  if (info.isFile()) return { dir: path.dirname(absolute), file: absolute };
  throw new InputError(`app path ${target} is neither a directory nor a file`);
}

async function readKilnYml(dir: string): Promise<Record<string, unknown> | undefined> {
  const file = path.join(dir, "kiln.yml");
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch {
    return undefined;
  }
  try {
    const value: unknown = parseYaml(text);
    if (value === null || value === undefined) return {};
    if (typeof value !== "object" || Array.isArray(value)) throw new SpecError(file, ["the top level must be a mapping of settings (name:, version:, cmd: …)"]);
    return value as Record<string, unknown>;
  } catch (error) {
    if (error instanceof YAMLParseError) throw new SpecError(file, [`not valid YAML: ${error.message.split("\n")[0]}`]);
    throw error;
  }
}

/** Picks the baker: kiln.yml/flag `baker:` wins; otherwise the first baker that recognises the app. */
async function detectBaker(bakers: readonly Baker[], source: AppSource, wanted: string | undefined): Promise<{ baker: Baker; detection: Detection } | { problem: string }> {
  if (wanted !== undefined) {
    const baker = bakers.find((b) => b.name === wanted);
    if (!baker) return { problem: `baker: '${wanted}' is not one of ${bakers.map((b) => b.name).join(", ")}` };
    return { baker, detection: (await baker.detect(source)) ?? {} };
  }
  for (const baker of bakers) {
    const detection = await baker.detect(source);
    if (detection) return { baker, detection };
  }
  return { problem: `${source.file ?? source.dir} holds no app kiln recognises: no package.json (Node.js), no .jar (Java), no app.py/main.py/requirements.txt (Python) and no ELF executable or tarball (native); add one, or a kiln.yml with baker: and cmd:` };
}

export async function loadSpec(target: string, overrides: SpecOverrides, bakers: readonly Baker[]): Promise<Spec> {
  const source = await resolveAppSource(target);
  const yml = (await readKilnYml(source.dir)) ?? {};
  const where = path.join(source.dir, "kiln.yml");
  const problems: string[] = [];
  for (const key of Object.keys(yml)) if (!KNOWN_KEYS.has(key)) problems.push(`${key}: unknown setting (known: ${[...KNOWN_KEYS].join(", ")})`);

  const wantedBaker = overrides.baker ?? (typeof yml.baker === "string" ? yml.baker : undefined);
  const picked = await detectBaker(bakers, source, wantedBaker);
  if ("problem" in picked) throw new InputError(picked.problem, { hint: "see README: Apps kiln can bake" });
  const { baker, detection } = picked;
  const cmdGiven = overrides.cmd !== undefined || (yml.cmd !== undefined && yml.cmd !== null);
  // Detection problems are about guessing the command; an explicit cmd makes them moot.
  if (!cmdGiven) problems.push(...(detection.problems ?? []));

  const v = new Validator(problems);
  const name = overrides.name ?? v.string(yml, "name") ?? detection.name;
  if (typeof yml.version === "number") problems.push(`version: ${String(yml.version)} is a YAML number (1.10 would read as 1.1); quote it: version: "${String(yml.version)}"`);
  const version = overrides.version ?? (typeof yml.version === "number" ? undefined : v.string(yml, "version")) ?? detection.version ?? "0.1.0";
  if (name === undefined) problems.push("name: required (set name: in kiln.yml or pass --name)");
  else if (!/^[a-z0-9][a-z0-9._-]{0,62}$/.test(name)) problems.push(`name: '${name}' must be lowercase letters, digits, '.', '_' or '-' (max 63), starting with a letter or digit`);
  if (!/^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/.test(version)) problems.push(`version: '${version}' must be letters, digits, '.', '_', '+' or '-'`);

  const cmd = readCmd(overrides.cmd ?? yml.cmd, overrides.cmd !== undefined ? "--cmd" : "cmd", problems) ?? detection.cmd;
  const example = baker.name === "node" ? "node server.js" : "./server --port 8080";
  if (cmd === undefined && (cmdGiven || !detection.problems?.length)) problems.push(`cmd: required for a ${baker.name} app (set cmd: in kiln.yml or pass --cmd "${example}")`);
  const port = readPort(overrides.port ?? yml.port, overrides.port !== undefined ? "--port" : "port", problems) ?? detection.port;

  const env = readEnv(yml.env, problems);
  const health = v.mapping(yml, "healthcheck") ?? {};
  const healthPath = v.string(health, "path", "healthcheck.path") ?? DEFAULTS.healthPath;
  if (!healthPath.startsWith("/")) problems.push(`healthcheck.path: '${healthPath}' must start with /`);
  const resources = v.mapping(yml, "resources") ?? {};
  const kernel = v.mapping(yml, "kernel") ?? {};
  const restarts = v.mapping(yml, "restarts") ?? {};
  const onCrashLoop = v.string(restarts, "onCrashLoop", "restarts.onCrashLoop");
  if (onCrashLoop !== undefined && !(CRASH_LOOP_ACTIONS as readonly string[]).includes(onCrashLoop)) {
    problems.push(`restarts.onCrashLoop: '${onCrashLoop}' must be one of ${CRASH_LOOP_ACTIONS.join(", ")}`);
  }
  const node = v.mapping(yml, "node") ?? {};

  const spec: Spec = {
    appDir: source.dir,
    appFile: source.file,
    name: name ?? "",
    version,
    baker: baker.name,
    cmd,
    port,
    env,
    healthcheck: { path: healthPath, timeoutSeconds: v.positive(health, "timeout", "healthcheck.timeout") ?? DEFAULTS.healthTimeoutSeconds },
    kernel: { package: v.string(kernel, "package", "kernel.package") ?? DEFAULTS.kernelPackage },
    resources: {
      memoryMiB: v.positive(resources, "memory", "resources.memory") ?? DEFAULTS.memoryMiB,
      cpus: v.positive(resources, "cpus", "resources.cpus") ?? DEFAULTS.cpus,
    },
    packages: v.stringList(yml, "packages") ?? [],
    stopTimeoutSeconds: v.positive(yml, "stopTimeout") ?? DEFAULTS.stopTimeoutSeconds,
    restarts: {
      maxQuickExits: v.positive(restarts, "maxQuickExits", "restarts.maxQuickExits") ?? DEFAULTS.maxQuickExits,
      windowSeconds: v.positive(restarts, "window", "restarts.window") ?? DEFAULTS.quickExitWindowSeconds,
      ...(onCrashLoop !== undefined ? { onCrashLoop: onCrashLoop as CrashLoopAction } : {}),
    },
    node: { version: v.string(node, "version", "node.version") ?? detection.nodeVersion },
    seccomp: readSwitch(yml.seccomp, "seccomp", problems) ?? DEFAULTS.seccomp,
  };
  if (problems.length > 0) {
    throw new SpecError(Object.keys(yml).length > 0 ? where : (source.file ?? source.dir), problems, "fix these in kiln.yml (or the flags) and run kiln bake again; README.md lists every setting");
  }
  return deepFreeze(spec);
}

function readCmd(value: unknown, label: string, problems: string[]): readonly string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "string") {
    const split = splitCommand(value);
    if ("problem" in split) {
      problems.push(`${label}: '${value}' ${split.problem}`);
      return undefined;
    }
    return split.argv;
  }
  if (Array.isArray(value) && value.length > 0 && value.every((a) => typeof a === "string")) {
    if (value.some((a: string) => a.includes("\n") || a.includes("\0"))) {
      problems.push(`${label}: arguments must not contain newlines or NUL bytes`);
      return undefined;
    }
    return value as string[];
  }
  problems.push(`${label}: must be a command string or a non-empty list of strings`);
  return undefined;
}

/** on/off/true/false; YAML 1.2 reads `off` as a string, so both spellings arrive here. */
function readSwitch(value: unknown, label: string, problems: string[]): boolean | undefined {
  if (value === undefined || value === null) return undefined;
  if (value === true || value === "on" || value === "true") return true;
  if (value === false || value === "off" || value === "false") return false;
  problems.push(`${label}: '${String(value)}' must be on or off`);
  return undefined;
}

function readPort(value: unknown, label: string, problems: string[]): number | undefined {
  if (value === undefined || value === null) return undefined;
  const port = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) {
    problems.push(`${label}: '${String(value)}' must be a TCP port number from 1 to 65535`);
    return undefined;
  }
  return port;
}

function readEnv(value: unknown, problems: string[]): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value)) {
    problems.push("env: must be a mapping of NAME: value");
    return {};
  }
  const env: Record<string, string> = {};
  for (const [key, raw] of Object.entries(value as Record<string, unknown>)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) problems.push(`env.${key}: not a valid environment variable name`);
    else if (typeof raw !== "string" && typeof raw !== "number" && typeof raw !== "boolean") problems.push(`env.${key}: must be a string, number or boolean`);
    else if (String(raw).includes("\n")) problems.push(`env.${key}: values cannot contain newlines`);
    else if (key.startsWith("KILN_")) problems.push(`env.${key}: KILN_* variables are set by kiln`);
    else env[key] = String(raw);
  }
  return env;
}

/** Typed reads of optional settings; each wrong type becomes one problem with its path. */
class Validator {
  constructor(private readonly problems: string[]) {}

  mapping(obj: Record<string, unknown>, key: string, label = key): Record<string, unknown> | undefined {
    const value = obj[key];
    if (value === undefined || value === null) return undefined;
    if (typeof value === "object" && !Array.isArray(value)) return value as Record<string, unknown>;
    this.problems.push(`${label}: must be a mapping`);
    return undefined;
  }

  string(obj: Record<string, unknown>, key: string, label = key): string | undefined {
    const value = obj[key];
    if (value === undefined || value === null) return undefined;
    if (typeof value === "string" && value.length > 0) return value;
    if (typeof value === "number") return String(value);
    this.problems.push(`${label}: must be a non-empty string`);
    return undefined;
  }

  positive(obj: Record<string, unknown>, key: string, label = key): number | undefined {
    const value = obj[key];
    if (value === undefined || value === null) return undefined;
    if (typeof value === "number" && Number.isInteger(value) && value > 0) return value;
    this.problems.push(`${label}: must be a positive whole number, not '${String(value)}'`);
    return undefined;
  }

  stringList(obj: Record<string, unknown>, key: string, label = key): string[] | undefined {
    const value = obj[key];
    if (value === undefined || value === null) return undefined;
    if (Array.isArray(value) && value.every((a) => typeof a === "string" && /^[a-z0-9][a-z0-9+.-]+$/.test(a))) return value as string[];
    this.problems.push(`${label}: must be a list of Debian package names`);
    return undefined;
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object") {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
