/**
 * npm run bench:boot: kiln's images side by side with the usual way, built and booted in the
 * same run (issue 14). Columns: kiln with the Debian kernel, kiln with `kernel: minimal` (skipped
 * with a note while `kiln bake --kernel minimal` is refused), and the usual way (bench/usual-way.ts).
 * Rows, per example (hello-native, hello-node): build time cold and warm, image bytes (raw,
 * allocated, gzip), boot-to-HTTP (median of N boots, the images alternating boot by boot so
 * machine noise hits all), memory needed to boot (smallest -m that reaches healthy, bisected),
 * QEMU's peak RSS, and Ctrl-C-to-exit of `kiln run`. A table with ratios goes to stdout, every
 * figure as JSON to --out.
 *
 *   npm run bench:boot -- [hello-native] [hello-node] [--columns kiln-debian,kiln-minimal,usual]
 *                         [--boots N] [--memory-step MiB] [--no-memory] [--quick] [--out FILE]
 * --quick: hello-native only, 3 boots, memory bisected in 64 MiB steps.
 * Needs root (debootstrap, chroot) and the host's apt mirror for the usual way.
 */
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { CommandFailedError } from "../src/errors.js";
import { run } from "../src/exec.js";
import { installRoot, kilnHome, type KilnHome } from "../src/home.js";
import { ImageStore, type StoredImage } from "../src/image/store.js";
import { bootOnce, type BootResult, type BootTarget, kilnTarget, measureCtrlC, usualWayTarget } from "./boot-measure.js";
import { alternatingOrder, formatRatio, formatTable, median, refusalReason, smallestPassing } from "./stats.js";
import { buildUsualWay, hostMirror, removeTree, type UsualWayApp } from "./usual-way.js";
import { gzipSize } from "./gzip-size.js";

const repo = installRoot();
const kilnBin = path.join(repo, "bin", "kiln.js");
const MiB = 1024 * 1024;

/** kiln's columns: adding a kernel is one entry. */
const KILN_COLUMNS = [
  { id: "kiln-debian", label: "kiln, Debian kernel", bakeArgs: [] as string[] },
  { id: "kiln-minimal", label: "kiln, kernel: minimal", bakeArgs: ["--kernel", "minimal"] },
] as const;
const USUAL = { id: "usual", label: "usual way" } as const;
const EXAMPLES = ["hello-native", "hello-node"] as const;
type Example = (typeof EXAMPLES)[number];

interface Column {
  readonly id: string;
  readonly label: string;
  readonly skipped?: string;
  readonly build?: { coldSeconds: number; warmSeconds: number; warmIs: string };
  readonly bytes?: { raw: number; allocated: number; gzip: number };
  readonly boots?: BootResult[];
  readonly bootToHttpMedianSeconds?: number;
  readonly qemuPeakRssMiB?: number;
  readonly memoryToBootMiB?: number;
  readonly memoryProbes?: { value: number; passed: boolean }[];
  readonly ctrlCToExitSeconds?: number;
  readonly kernel?: string;
}

interface Options {
  examples: Example[];
  columns: string[];
  boots: number;
  memoryStep: number;
  memory: boolean;
  out: string;
}

function parseArgs(argv: readonly string[]): Options {
  const o: Options = {
    examples: [],
    columns: [...KILN_COLUMNS.map((c) => c.id), USUAL.id],
    boots: 3,
    memoryStep: 16,
    memory: true,
    out: path.join(repo, "dist", "bench-boot.json"),
  };
  const fail = (why: string): never => {
    process.stderr.write(`bench:boot: ${why}\n`);
    process.exit(2);
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => argv[++i] ?? fail(`${a} needs a value`);
    const count = (min: number) => {
      const n = Number(value());
      return Number.isInteger(n) && n >= min ? n : fail(`${a} needs a whole number ≥ ${min}`);
    };
    if (a === "--quick") Object.assign(o, { examples: ["hello-native"], boots: 3, memoryStep: 64 });
    else if (a === "--boots") o.boots = count(1);
    else if (a === "--memory-step") o.memoryStep = count(1);
    else if (a === "--no-memory") o.memory = false;
    else if (a === "--out") o.out = path.resolve(value());
    else if (a === "--columns") {
      o.columns = value().split(",");
      const known: string[] = [...KILN_COLUMNS.map((c) => c.id), USUAL.id];
      const unknown = o.columns.filter((c) => !known.includes(c));
      if (unknown.length) fail(`no column ${unknown.join(", ")}; columns: ${known.join(", ")}`);
    } else if ((EXAMPLES as readonly string[]).includes(a)) o.examples.push(a as Example);
    else fail(`unknown argument ${a}; examples: ${EXAMPLES.join(", ")}`);
  }
  if (o.examples.length === 0) o.examples = [...EXAMPLES];
  return o;
}

/** A temporary copy of the example, built the way bench/bake.ts builds it (make for the native one). */
async function copyExample(example: Example): Promise<string> {
  const app = mkdtempSync(path.join(os.tmpdir(), `kiln-bench-boot-${example}-`));
  cpSync(path.join(repo, "examples", example), app, { recursive: true });
  rmSync(path.join(app, "kiln.lock"), { force: true });
  if (example === "hello-native") await run(["make", "-s", "-B", "-C", app]);
  return app;
}

/** The user's kiln home's kernel builds (KILN_BENCH_KERNELS overrides): `kiln kernel build` fills it. */
function userKernels(): string {
  return process.env.KILN_BENCH_KERNELS ?? path.join(kilnHome({ ...process.env, KILN_HOME: undefined }).cache, "kernels");
}

/**
 * A cold bake with `kernel: minimal` would otherwise time a kernel compile (minutes; reported on
 * its own by `kiln kernel build`): finished builds are copied into the fresh home, sources and
 * half-done builds are not. Returns how many were copied.
 */
function seedBuiltKernels(home: KilnHome): number {
  const from = userKernels();
  if (!existsSync(from)) return 0;
  const built = readdirSync(from).filter((name) => /^[0-9a-f]{32}$/.test(name) && existsSync(path.join(from, name, "kernel.json")));
  for (const name of built) cpSync(path.join(from, name), path.join(home.cache, "kernels", name), { recursive: true });
  return built.length;
}

async function timeKilnBake(app: string, example: string, home: KilnHome, extra: readonly string[]): Promise<number> {
  const started = performance.now();
  await run([process.execPath, kilnBin, "bake", app, "--name", example, ...extra], { env: { KILN_HOME: home.root }, timeoutMs: 3_600_000 });
  return (performance.now() - started) / 1000;
}

/** Cold bake (empty kiln home), then a warm one after an app change; undefined with a note when kiln refuses the column's flags. */
async function bakeKilnColumn(example: Example, column: (typeof KILN_COLUMNS)[number]) {
  const app = await copyExample(example);
  const home = kilnHome({ KILN_HOME: mkdtempSync(path.join(os.tmpdir(), "kiln-bench-boot-home-")) });
  try {
    const prebuilt = column.id === "kiln-minimal" ? seedBuiltKernels(home) : 0;
    if (prebuilt > 0) process.stderr.write(`  ${column.label}: the cold bake reuses ${prebuilt} kernel build(s) from ${userKernels()}\n`);
    const coldSeconds = await timeKilnBake(app, example, home, column.bakeArgs);
    writeFileSync(path.join(app, "bench-change.txt"), `changed at ${Date.now()}\n`);
    const warmSeconds = await timeKilnBake(app, example, home, column.bakeArgs);
    const image = await new ImageStore(home).resolve(example);
    return { home, image, coldSeconds, warmSeconds };
  } catch (error) {
    rmSync(home.root, { recursive: true, force: true });
    if (column.bakeArgs.length > 0 && error instanceof CommandFailedError)
      return { skipped: `kiln bake ${column.bakeArgs.join(" ")} was refused: ${refusalReason(error.stderrTail)}` };
    throw error;
  } finally {
    rmSync(app, { recursive: true, force: true });
  }
}

function usualWayApp(example: Example, app: string): UsualWayApp {
  return example === "hello-native"
    ? { name: example, runtimePackages: [], files: [path.join(app, "server")], execStart: "/opt/app/server --listen 8080", port: 8080 }
    : {
        name: example,
        runtimePackages: ["nodejs"],
        files: [path.join(app, "server.js"), path.join(app, "package.json")],
        execStart: "/usr/bin/node server.js",
        port: 8080,
      };
}

async function buildUsualColumn(example: Example, work: string) {
  const app = await copyExample(example);
  try {
    const mirror = await hostMirror();
    const cache = path.join(work, "debs");
    process.stderr.write(`  usual way: cold build (debootstrap, downloads included)…\n`);
    const cold = await buildUsualWay(usualWayApp(example, app), work, cache, mirror);
    process.stderr.write(`  usual way: ${cold.seconds.toFixed(1)}s; warm build (same .debs from debootstrap's cache)…\n`);
    const warm = await buildUsualWay(usualWayApp(example, app), work, cache, mirror);
    return { cold, warm };
  } finally {
    rmSync(app, { recursive: true, force: true });
  }
}

const mib = (b: number | undefined) => (b === undefined ? "–" : (b / MiB).toFixed(1));
const secs = (s: number | undefined) => (s === undefined || Number.isNaN(s) ? "–" : s.toFixed(2));

function formatExample(example: string, columns: readonly Column[]): string {
  const live = columns.filter((c) => !c.skipped);
  const usual = live.find((c) => c.id === USUAL.id);
  const kilns = live.filter((c) => c.id !== USUAL.id);
  const rows: [string, (c: Column) => number | undefined, (n: number | undefined) => string][] = [
    ["build cold, s", (c) => c.build?.coldSeconds, secs],
    ["build warm, s", (c) => c.build?.warmSeconds, secs],
    ["image raw, MiB", (c) => c.bytes?.raw, mib],
    ["image allocated, MiB", (c) => c.bytes?.allocated, mib],
    ["image gzip, MiB", (c) => c.bytes?.gzip, mib],
    ["boot to HTTP (median), s", (c) => c.bootToHttpMedianSeconds, secs],
    ["memory to boot, MiB", (c) => c.memoryToBootMiB, (n) => (n === undefined ? "–" : String(n))],
    ["QEMU peak RSS, MiB", (c) => c.qemuPeakRssMiB, (n) => (n === undefined ? "–" : n.toFixed(0))],
    ["Ctrl-C to exit (kiln run), s", (c) => c.ctrlCToExitSeconds, secs],
  ];
  const header = ["", ...live.map((c) => c.label), ...(usual ? kilns.map((k) => `usual ÷ ${k.label}`) : [])];
  const body = rows.map(([name, get, show]) => [
    name,
    ...live.map((c) => show(get(c))),
    ...(usual && name !== "Ctrl-C to exit (kiln run), s" ? kilns.map((k) => formatRatio(get(usual), get(k))) : kilns.map(() => "")),
  ]);
  const notes = columns.filter((c) => c.skipped).map((c) => `  ${c.label}: skipped (${c.skipped})`);
  return [`${example}`, formatTable(header, body), ...notes, ""].join("\n");
}

async function measureExample(example: Example, options: Options): Promise<Column[]> {
  const columns: Column[] = [];
  const targets: { column: string; target: BootTarget; memory: number }[] = [];
  const homes: KilnHome[] = [];
  let resources = { memoryMiB: 512, cpus: 1 };
  const work = mkdtempSync(path.join(os.tmpdir(), `kiln-bench-usual-${example}-`));
  try {
    const images: Record<string, { image: StoredImage; home: KilnHome }> = {};
    for (const column of KILN_COLUMNS.filter((c) => options.columns.includes(c.id))) {
      process.stderr.write(`  ${column.label}: cold and warm bake…\n`);
      const baked = await bakeKilnColumn(example, column);
      if ("skipped" in baked) {
        columns.push({ id: column.id, label: column.label, skipped: baked.skipped });
        continue;
      }
      homes.push(baked.home);
      images[column.id] = baked;
      const m = baked.image.manifest;
      resources = m.resources;
      columns.push({
        id: column.id,
        label: column.label,
        build: { coldSeconds: baked.coldSeconds, warmSeconds: baked.warmSeconds, warmIs: "kiln bake after an app change, same kiln home" },
        bytes: { raw: m.sizes.rawDisk, allocated: m.sizes.allocated, gzip: await gzipSize(baked.image.disk) },
      });
      targets.push({ column: column.id, target: kilnTarget(column.label, baked.image, baked.home), memory: m.resources.memoryMiB });
    }
    if (options.columns.includes(USUAL.id)) {
      const { cold, warm } = await buildUsualColumn(example, work);
      columns.push({
        id: USUAL.id,
        label: USUAL.label,
        build: {
          coldSeconds: cold.seconds,
          warmSeconds: warm.seconds,
          warmIs: "the whole image again (new tree) with debootstrap's cached .debs",
        },
        bytes: { raw: warm.rawBytes, allocated: warm.allocatedBytes, gzip: await gzipSize(warm.disk) },
        kernel: warm.kernel,
      });
      // The home only serves QEMU's accelerator check and the VM's scratch directory.
      const home = homes[0] ?? kilnHome({ KILN_HOME: mkdtempSync(path.join(os.tmpdir(), "kiln-bench-boot-home-")) });
      if (homes.length === 0) homes.push(home);
      targets.push({
        column: USUAL.id,
        target: usualWayTarget(USUAL.label, warm.disk, home, 8080, resources.cpus),
        memory: resources.memoryMiB,
      });
    }
    // Every image boots with the same memory and CPUs: the kiln image's defaults.
    const boots = new Map<string, BootResult[]>();
    for (const t of alternatingOrder(targets, options.boots)) {
      const result = await bootOnce(t.target, resources.memoryMiB, 600_000);
      process.stderr.write(
        `  boot ${t.target.label}: ${result.healthy ? `${result.seconds.toFixed(2)}s, QEMU RSS ${((result.qemuPeakRssKiB ?? 0) / 1024).toFixed(0)} MiB` : result.reason}\n`,
      );
      boots.set(t.column, [...(boots.get(t.column) ?? []), result]);
    }
    for (const t of targets) {
      const results = boots.get(t.column) ?? [];
      const healthy = results.filter((r) => r.healthy);
      const i = columns.findIndex((c) => c.id === t.column);
      const bootMedian = healthy.length === results.length ? median(healthy.map((r) => r.seconds)) : Number.NaN;
      const rss = median(healthy.map((r) => (r.qemuPeakRssKiB ?? Number.NaN) / 1024));
      columns[i] = { ...columns[i]!, boots: results, bootToHttpMedianSeconds: bootMedian, qemuPeakRssMiB: rss };
      if (options.memory && Number.isFinite(bootMedian)) {
        // One boot per probe, allowed three times the median boot (a starved guest may crawl, not fail).
        const limitMs = Math.max(60_000, 3 * bootMedian * 1000);
        const found = await smallestPassing(32, resources.memoryMiB, options.memoryStep, async (m) => {
          const r = await bootOnce(t.target, m, limitMs);
          process.stderr.write(
            `  memory ${t.target.label} -m ${m}: ${r.healthy ? `healthy in ${r.seconds.toFixed(2)}s` : "not healthy"}\n`,
          );
          return r.healthy;
        });
        columns[i] = { ...columns[i]!, memoryToBootMiB: found.value, memoryProbes: found.probes };
      }
      const baked = images[t.column];
      if (baked) {
        const m = baked.image.manifest;
        const ctrlC = await measureCtrlC(kilnBin, baked.image.ref, baked.home, m.port ?? 8080, m.healthcheck.path);
        process.stderr.write(`  Ctrl-C ${t.target.label}: ${secs(ctrlC.seconds)}s\n`);
        columns[i] = { ...columns[i]!, ctrlCToExitSeconds: ctrlC.seconds };
      }
    }
    return columns;
  } finally {
    for (const home of homes) rmSync(home.root, { recursive: true, force: true });
    await removeTree(work);
  }
}

const options = parseArgs(process.argv.slice(2));
const results: Record<string, Column[]> = {};
for (const example of options.examples) {
  process.stderr.write(`measuring ${example}…\n`);
  results[example] = await measureExample(example, options);
  process.stdout.write(`${formatExample(example, results[example])}\n`);
}
const json = {
  machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, kernel: os.release() },
  options: { boots: options.boots, memoryStep: options.memoryStep, memory: options.memory },
  results,
};
writeFileSync(options.out, `${JSON.stringify(json, null, 2)}\n`);
process.stdout.write(`all figures: ${options.out}\n`);
