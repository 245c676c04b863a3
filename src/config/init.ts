/**
 * kiln init: a commented starter kiln.yml for the app in a directory, from what the bakers detect
 * and what the app's source says (a health route, a hard-coded port), like `fly launch`. The
 * file is checked by the same loader kiln bake uses before anyone relies on it.
 */
import { lstat, open, readdir, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { parse, stringify } from "yaml";
import type { Baker, Detection } from "../bake/baker.js";
import { InputError, SpecError } from "../errors.js";
import { loadSpec } from "./load.js";
import { schemaProblems } from "./schema.js";
import { DEFAULTS } from "./types.js";

/** What kiln init found and wrote; `problems` are what kiln bake would still refuse. */
export interface InitResult {
  readonly file: string;
  readonly baker: string;
  readonly name: string;
  /** The version kiln bake gives the image now (package.json's, the jar's, or 0.1.0). */
  readonly version: string;
  readonly port: number;
  readonly healthPath: string;
  readonly problems: readonly string[];
}

/** The port a baker's apps get when nothing says otherwise (kiln sets PORT to it in the image). */
const FALLBACK_PORT = 8080;
const SOURCE_EXTENSIONS = /\.(c|cc|cpp|cs|go|java|js|cjs|mjs|kt|py|rb|rs|ts)$/;
/** Directories of dependencies, build output and tests: not where the app's routes are defined. */
const NOT_SOURCE = new Set(["node_modules", "venv", "target", "build", "dist", "vendor", "test", "tests", "__pycache__", "coverage"]);
const MAX_DEPTH = 8;
const MAX_SOURCE_FILES = 200;
const MAX_SOURCE_BYTES = 256 * 1024;
/** Routes apps commonly answer health checks on, most specific first. */
const HEALTH_ROUTES = ["/healthz", "/health", "/livez", "/readyz", "/ready", "/ping", "/status"];
/** A hard-coded listening port: server.listen(3000 …) in Node, app.run(… port=5000) in Flask. */
const LISTEN_PATTERNS = [/\.listen\(\s*(\d{2,5})\s*[,)]/, /\.run\([^)]*\bport\s*=\s*(\d{2,5})/];

/** The app's own source files: a bounded walk that skips dependencies, build output and dot-directories. */
async function sourceFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(rel: string, depth: number): Promise<void> {
    const entries = await readdir(path.join(dir, rel), { withFileTypes: true }).catch(() => []);
    for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (out.length >= MAX_SOURCE_FILES) return;
      const child = path.join(rel, entry.name);
      if (entry.isFile() && SOURCE_EXTENSIONS.test(entry.name)) out.push(path.join(dir, child));
      // Links are not followed: kiln never reads outside the tree it was pointed at.
      else if (entry.isDirectory() && depth < MAX_DEPTH && !entry.name.startsWith(".") && !NOT_SOURCE.has(entry.name))
        await walk(child, depth + 1);
    }
  }
  await walk("", 0);
  return out;
}

/** Reads at most MAX_SOURCE_BYTES of a file (a huge generated file must not stall init). */
async function readHead(file: string): Promise<string> {
  const handle = await open(file, "r");
  try {
    const buffer = Buffer.alloc(MAX_SOURCE_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    return buffer.subarray(0, bytesRead).toString("utf8");
  } finally {
    await handle.close();
  }
}

/** The health route and hard-coded port the app's source names, with the file each was found in. */
async function scanSource(dir: string): Promise<{ health?: { path: string; file: string }; port?: { port: number; file: string } }> {
  const found: { health?: { path: string; file: string; rank: number }; port?: { port: number; file: string } } = {};
  for (const file of await sourceFiles(dir)) {
    const text = await readHead(file).catch(() => "");
    const rel = path.relative(dir, file);
    HEALTH_ROUTES.forEach((route, rank) => {
      const quoted = new RegExp(`["'\`]${route.replace("/", "\\/")}["'\`]`);
      if (quoted.test(text) && (found.health === undefined || rank < found.health.rank)) found.health = { path: route, file: rel, rank };
    });
    for (const pattern of LISTEN_PATTERNS) {
      const port = Number(pattern.exec(text)?.[1]);
      if (found.port === undefined && port >= 1 && port <= 65535) found.port = { port, file: rel };
    }
  }
  const health = found.health ? { path: found.health.path, file: found.health.file } : undefined;
  return { ...(health ? { health } : {}), ...(found.port ? { port: found.port } : {}) };
}

/** The first baker that recognises the directory, as kiln bake would pick it. */
async function detectApp(dir: string, bakers: readonly Baker[]): Promise<{ baker: Baker; detection: Detection }> {
  for (const baker of bakers) {
    const detection = await baker.detect({ dir, file: undefined });
    if (detection) return { baker, detection };
  }
  throw new InputError(`${dir} holds no app kiln recognises, so kiln init cannot tell how to start it`, {
    hint: "run kiln init in the app's directory: one with package.json (Node.js), a .jar (Java), app.py/main.py/requirements.txt (Python) or an x86-64 executable (native)",
  });
}

/** A scalar as YAML writes it (quoted when it must be), so a detected name cannot add a line or a key. */
function scalar(value: string | number): string {
  return stringify(value).trimEnd();
}

/** A valid image name from a detected one, or the directory's, or "app". */
function imageName(detected: string | undefined, dir: string): string {
  for (const candidate of [detected, path.basename(dir)]) {
    const name = (candidate ?? "")
      .toLowerCase()
      .replace(/[^a-z0-9._-]+/g, "-")
      .replace(/^[^a-z0-9]+/, "")
      .slice(0, 63);
    if (name !== "" && schemaProblems("/properties/name", name).length === 0) return name;
  }
  return "app";
}

/** A start command to show when none was detected, in the baker's terms. */
const EXAMPLE_CMD: Record<string, string> = {
  node: "[node, server.js]",
  python: "[python3, -u, app.py]",
  java: "[java, -jar, app.jar]",
  native: '[./server, --port, "8080"]',
};

interface Starter {
  readonly baker: string;
  readonly name: string;
  readonly version: string | undefined;
  readonly cmd: readonly string[] | undefined;
  readonly port: number;
  readonly portFrom: string;
  readonly healthPath: string;
  readonly healthFrom: string | undefined;
}

/** The starter file's text: every setting explained, the ones kiln detects on each bake left as comments. */
export function renderStarter(s: Starter): string {
  const cmdLine = s.cmd ? `[${s.cmd.map((a) => stringify(a, { collectionStyle: "flow" }).trimEnd()).join(", ")}]` : undefined;
  const lines = [
    "# kiln.yml: how kiln bakes, runs and releases this app. Written by kiln init; edit freely.",
    "# Every setting is described in kiln's README (Configuration) and checked by kiln.schema.json.",
    "",
    `# The image is ${s.name}:VERSION. ${s.version !== undefined ? `The version comes from ${s.baker === "node" ? "package.json" : "the jar"} on each bake (now ${scalar(s.version)}); set version: to fix it here.` : 'Without version: it is 0.1.0; quote it (version: "1.10").'}`,
    `name: ${scalar(s.name)}`,
    `baker: ${s.baker}`,
    "",
    cmdLine
      ? `# The start command is detected on each bake (now ${cmdLine}); set cmd: to start the app differently.`
      : "# kiln could not tell how to start this app: set the command (no shell runs it), for example:",
    `# cmd: ${cmdLine ?? EXAMPLE_CMD[s.baker] ?? EXAMPLE_CMD.native}`,
    "",
    `# The port the app listens on, inside its VM; kiln sets PORT to it. ${s.portFrom}`,
    `port: ${s.port}`,
    "",
    `# kiln waits for GET ${s.healthPath} to answer 2xx or 3xx before an instance counts as healthy. ${s.healthFrom ?? "A route that answers without touching a database is best."}`,
    "healthcheck:",
    `  path: ${scalar(s.healthPath)}`,
    `  timeout: ${DEFAULTS.healthTimeoutSeconds}   # seconds from boot to healthy`,
    "",
    "# Variables every instance gets (per environment below too). Secrets belong in kiln config set, not here.",
    "# env:",
    "#   LOG_LEVEL: info",
    "",
    "# Where the app runs. kiln promote IMAGE --env dev starts it here: local VMs behind a load balancer.",
    "environments:",
    "  dev:",
    "    target: local",
    "    port: 8000        # http://127.0.0.1:8000 reaches the instances",
    "    instances: 2",
    "  # prod:",
    "  #   target: aws",
    "  #   region: eu-west-1",
    "  #   instanceType: t3.micro",
    "  #   instances: 2",
    "  #   after: [dev]    # promote to prod only what was healthy in dev",
    "",
  ];
  return lines.join("\n");
}

/**
 * Writes a starter kiln.yml into `dir`, refusing to replace one unless `force`. The written file
 * is loaded with kiln bake's own loader; what it would refuse comes back as `problems`.
 */
export async function initConfig(dir: string, opts: { force?: boolean }, bakers: readonly Baker[]): Promise<InitResult> {
  const absolute = path.resolve(dir);
  if (!(await stat(absolute).catch(() => undefined))?.isDirectory())
    throw new InputError(`${dir} is not a directory`, { hint: "run kiln init in the app's directory, or give it as kiln init DIR" });
  const file = path.join(absolute, "kiln.yml");
  const existing = await lstat(file).catch(() => undefined);
  if (existing !== undefined && !opts.force)
    throw new InputError(`${file} already exists; kiln init leaves it as it is`, {
      hint: "edit it (README: Configuration), or run kiln init --force to replace it with a fresh starter",
    });
  // --force replaces a file, never what a link points to.
  if (existing !== undefined && !existing.isFile())
    throw new InputError(`${file} is not a regular file (a link or a directory); kiln init --force replaces only a file`, {
      hint: "remove it yourself if a fresh starter should take its place",
    });
  const { baker, detection } = await detectApp(absolute, bakers);
  const scanned = await scanSource(absolute);
  const port = scanned.port?.port ?? detection.port ?? FALLBACK_PORT;
  const portFrom = scanned.port
    ? `Found in ${scanned.port.file}; reading process.env.PORT instead lets kiln choose.`
    : detection.port !== undefined
      ? `${detection.port} is the ${baker.name} baker's default.`
      : `kiln cannot read it from an executable: set the port ${path.basename(absolute)} listens on.`;
  const name = imageName(detection.name, absolute);
  const healthPath = scanned.health?.path ?? DEFAULTS.healthPath;
  const text = renderStarter({
    baker: baker.name,
    name,
    version: detection.version,
    cmd: detection.cmd,
    port,
    portFrom,
    healthPath,
    healthFrom: scanned.health ? `Found in ${scanned.health.file}.` : undefined,
  });
  // The starter's own settings must pass the schema whatever was detected: checked before writing.
  const own = schemaProblems("", parse(text));
  if (own.length > 0)
    throw new InputError(`kiln init made a kiln.yml that kiln.schema.json refuses (${own.join("; ")}); nothing was written`, {
      hint: "this is a kiln bug: please report it with the app's file list; meanwhile write kiln.yml by hand (README: Configuration)",
    });
  await writeFile(file, text, { flag: opts.force ? "w" : "wx", mode: 0o644 });
  const version = detection.version ?? "0.1.0";
  return { file, baker: baker.name, name, version, port, healthPath, problems: await bakeProblems(absolute, bakers) };
}

/** The written file as kiln bake loads it (schema, detection, the start file): what bake would still refuse. */
async function bakeProblems(dir: string, bakers: readonly Baker[]): Promise<string[]> {
  try {
    const spec = await loadSpec(dir, {}, bakers);
    const baker = bakers.find((b) => b.name === spec.baker);
    return [...((await baker?.entryProblems?.(spec)) ?? [])];
  } catch (error) {
    if (error instanceof SpecError) return [...error.problems];
    throw error;
  }
}
