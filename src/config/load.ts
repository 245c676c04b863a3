/**
 * Reads an app's spec once: kiln.yml (optional) + what the baker detects + flags, validates
 * everything, reports every problem at once with its path, and freezes the result.
 */
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { InputError, SpecError } from "../errors.js";
import type { AppSource, Baker, Detection } from "../bake/baker.js";
import { splitCommand } from "./argv.js";
import { parseEnvironments } from "./environments.js";
import { schemaProblems } from "./schema.js";
import { parseKilnYaml } from "./yaml.js";
import { DEFAULTS, type CrashLoopAction, type Spec, type SpecOverrides } from "./types.js";

export async function resolveAppSource(target: string): Promise<AppSource> {
  const absolute = path.resolve(target);
  let info;
  try {
    info = await stat(absolute);
  } catch {
    throw new InputError(`app path ${target} does not exist`, {
      hint: "give the directory of your app (with package.json or kiln.yml) or an executable",
    });
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
  const value = parseKilnYaml(text, file);
  if (value === null || value === undefined) return {};
  if (typeof value !== "object" || Array.isArray(value))
    throw new SpecError(file, ["the top level must be a mapping of settings (name:, version:, cmd: …)"]);
  return value as Record<string, unknown>;
}

/** Picks the baker: kiln.yml/flag `baker:` wins; otherwise the first baker that recognises the app. */
async function detectBaker(
  bakers: readonly Baker[],
  source: AppSource,
  wanted: string | undefined,
): Promise<{ baker: Baker; detection: Detection } | { problem: string }> {
  if (wanted !== undefined) {
    const baker = bakers.find((b) => b.name === wanted);
    if (!baker) return { problem: `baker: '${wanted}' is not one of ${bakers.map((b) => b.name).join(", ")}` };
    return { baker, detection: (await baker.detect(source)) ?? {} };
  }
  for (const baker of bakers) {
    const detection = await baker.detect(source);
    if (detection) return { baker, detection };
  }
  return {
    problem: `${source.file ?? source.dir} holds no app kiln recognises: no package.json (Node.js), no .jar (Java), no app.py/main.py/requirements.txt (Python) and no ELF executable or tarball (native); add one, or a kiln.yml with baker: and cmd:`,
  };
}

/** Flags that stand in for a kiln.yml setting, each checked by that setting's schema. */
const FLAG_SETTINGS = ["name", "version", "cmd", "port", "baker", "kernel"] as const;

export async function loadSpec(target: string, overrides: SpecOverrides, bakers: readonly Baker[]): Promise<Spec> {
  const source = await resolveAppSource(target);
  const yml = (await readKilnYml(source.dir)) ?? {};
  const where = path.join(source.dir, "kiln.yml");
  const problems: string[] = [];

  // The file's settings that flags or detection may replace are checked below, once, as the
  // value that wins; environments are checked with their cross-setting rules.
  const doc: Record<string, unknown> = { ...yml };
  for (const key of [...FLAG_SETTINGS, "environments"]) delete doc[key];
  problems.push(...schemaProblems("", doc));

  const wantedBaker = overrides.baker ?? (typeof yml.baker === "string" ? yml.baker : undefined);
  const picked = await detectBaker(bakers, source, wantedBaker);
  if ("problem" in picked) throw new InputError(picked.problem, { hint: "see README: Apps kiln can bake" });
  const { baker, detection } = picked;
  const cmdGiven = overrides.cmd !== undefined || (yml.cmd !== undefined && yml.cmd !== null);
  // Detection problems are about guessing the command; an explicit cmd makes them moot.
  if (!cmdGiven) problems.push(...(detection.problems ?? []));

  const setting = (key: (typeof FLAG_SETTINGS)[number], detected: unknown): { value: unknown; label: string } =>
    overrides[key] !== undefined ? { value: overrides[key], label: `--${key}` } : { value: yml[key] ?? detected, label: key };
  const checked = (key: (typeof FLAG_SETTINGS)[number], value: unknown, label: string): boolean => {
    if (value === undefined) return true;
    const found = schemaProblems(key === "cmd" || key === "port" ? `/definitions/${key}` : `/properties/${key}`, value, label);
    problems.push(...found);
    return found.length === 0;
  };

  const named = setting("name", detection.name);
  if (named.value === undefined) problems.push("name: required (set name: in kiln.yml or pass --name)");
  const name = checked("name", named.value, named.label) ? (named.value as string | undefined) : undefined;

  let version = "0.1.0";
  if (overrides.version === undefined && typeof yml.version === "number") {
    problems.push(`version: ${String(yml.version)} is a YAML number (1.10 would read as 1.1); quote it: version: "${String(yml.version)}"`);
  } else {
    const given = setting("version", detection.version ?? "0.1.0");
    if (checked("version", given.value, given.label)) version = given.value as string;
  }
  const bakerSetting = setting("baker", undefined);
  checked("baker", bakerSetting.value, bakerSetting.label);

  const before = problems.length;
  const cmd = readCmd(setting("cmd", detection.cmd), (value, label) => checked("cmd", value, label), problems);
  const example = baker.name === "node" ? "node server.js" : "./server --port 8080";
  if (cmd === undefined && problems.length === before && (cmdGiven || !detection.problems?.length)) {
    problems.push(`cmd: required for a ${baker.name} app (set cmd: in kiln.yml or pass --cmd "${example}")`);
  }

  const ported = setting("port", detection.port);
  // A flag is text: digits become the number the schema checks.
  const portValue = typeof ported.value === "string" && /^\d+$/.test(ported.value) ? Number(ported.value) : ported.value;
  const port = checked("port", portValue, ported.label) ? (portValue as number | undefined) : undefined;

  // package.json's engines.node, when kiln.yml has no node.version, is held to the same rule.
  if ((yml.node as { version?: unknown } | undefined)?.version === undefined && detection.nodeVersion !== undefined) {
    problems.push(...schemaProblems("/properties/node/properties/version", detection.nodeVersion, "package.json engines.node"));
  }

  const kernelSetting = setting("kernel", undefined);
  checked("kernel", kernelSetting.value, kernelSetting.label);

  const health = (yml.healthcheck ?? {}) as { path?: string; timeout?: number };
  const healthPath = health.path ?? DEFAULTS.healthPath;
  try {
    parseEnvironments(yml.environments, name ?? "", healthPath, where);
  } catch (error) {
    if (!(error instanceof SpecError)) throw error;
    problems.push(...error.problems);
  }
  if (problems.length > 0) {
    const about = Object.keys(yml).length > 0 ? where : (source.file ?? source.dir);
    throw new SpecError(about, problems, "fix these in kiln.yml (or the flags) and run kiln bake again; README.md lists every setting");
  }

  // Everything below passed the schema: the types and ranges hold.
  const resources = (yml.resources ?? {}) as { memory?: number; cpus?: number };
  const restarts = (yml.restarts ?? {}) as { maxQuickExits?: number; window?: number; onCrashLoop?: CrashLoopAction };
  const spec: Spec = {
    appDir: source.dir,
    appFile: source.file,
    name: name ?? "",
    version,
    baker: baker.name,
    cmd,
    port,
    env: Object.fromEntries(Object.entries((yml.env ?? {}) as Record<string, unknown>).map(([k, v]) => [k, String(v)])),
    healthcheck: { path: healthPath, timeoutSeconds: health.timeout ?? DEFAULTS.healthTimeoutSeconds },
    kernel: readKernel(kernelSetting.value),
    resources: { memoryMiB: resources.memory ?? DEFAULTS.memoryMiB, cpus: resources.cpus ?? DEFAULTS.cpus },
    packages: (yml.packages as string[] | undefined) ?? [],
    stopTimeoutSeconds: (yml.stopTimeout as number | undefined) ?? DEFAULTS.stopTimeoutSeconds,
    restarts: {
      maxQuickExits: restarts.maxQuickExits ?? DEFAULTS.maxQuickExits,
      windowSeconds: restarts.window ?? DEFAULTS.quickExitWindowSeconds,
      ...(restarts.onCrashLoop !== undefined ? { onCrashLoop: restarts.onCrashLoop } : {}),
    },
    node: { version: (yml.node as { version?: string } | undefined)?.version ?? detection.nodeVersion },
    seccomp: yml.seccomp === undefined ? DEFAULTS.seccomp : yml.seccomp === true || yml.seccomp === "on",
  };
  return deepFreeze(spec);
}

/** `kernel: minimal`, `kernel: debian` or `kernel: { package: … }` (checked by the schema already). */
function readKernel(value: unknown): Spec["kernel"] {
  if (value === "minimal") return { kind: "minimal" };
  const pkg = typeof value === "object" && value !== null ? (value as { package?: string }).package : undefined;
  return { kind: "debian", package: pkg ?? DEFAULTS.kernelPackage };
}

/**
 * The command as argv: a list passes as it is; a string is split without a shell, and shell
 * features are refused (the image has none). The schema checks characters and lengths first.
 */
type Given = { value: unknown; label: string };
function readCmd(given: Given, check: (value: unknown, label: string) => boolean, problems: string[]): readonly string[] | undefined {
  const { value, label } = given;
  if (value === undefined || value === null || !check(value, label)) return undefined;
  if (typeof value !== "string") return value as string[];
  const split = splitCommand(value);
  if ("problem" in split) {
    problems.push(`${label}: '${value}' ${split.problem}`);
    return undefined;
  }
  return split.argv;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object") {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
