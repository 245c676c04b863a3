/**
 * Realistic apps for npm run bench (bench/fixtures/): a Node service with ~200 production
 * packages, a Python service with compiled wheels and a Spring Boot service (built with Maven
 * before each bake, in the temporary copy). Per fixture, with its own empty kiln home:
 * a cold bake, a warm rebake after a one-line source change, a warm rebake after a dependency
 * change, and the 512 KiB blocks the incremental push of each rebake would upload (the previous
 * bake being the parent snapshot), each as a ratio of the cold bake of the same run.
 * Every change is made to a temporary copy; the committed fixtures are never edited.
 */
import { appendFileSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { readZipEntries } from "../bakers/java/jar.js";
import { bake } from "../src/bake/bake.js";
import { execFileSync } from "node:child_process";
import { run } from "../src/exec.js";
import { ImageStore, type StoredImage } from "../src/image/store.js";
import { installRoot, kilnHome } from "../src/home.js";
import type { Progress } from "../src/progress.js";
import { BLOCK_SIZE, planBlocks, type BlockHashes } from "../src/push/blocks.js";
import { scanDiskBlocks } from "../src/push/scan.js";

const FIXTURES = path.join(installRoot(), "bench", "fixtures");

interface Fixture {
  readonly name: string;
  /** The one-line source change: a file of the app and the line appended to it (then `again`, for a second change). */
  readonly source: { readonly file: string; readonly line: string; readonly again?: string };
  /** The dependency change, made to the app copy in place. */
  changeDependency(app: string): void;
  readonly dependencyChange: string;
  /** Builds the app copy (after each change) and returns what to bake; without it, the copy itself. */
  build?(app: string): Promise<string>;
  /** Packages of the built app, when the committed fixture has no lock file to count them from. */
  countPackages?(built: string): number;
  /** A baseline measured only when named (npm run bench -- NAME), not in every run. */
  readonly onlyWhenNamed?: boolean;
}

const SPRING_SOURCE = "src/main/java/com/example/service/ServiceApplication.java";
const SPRING_JAR = "target/spring-service-1.0.0.jar";

/** mvn package in the app copy (tests skipped): the fat jar the Spring Boot rows bake. */
async function buildSpringJar(app: string): Promise<string> {
  await run(["mvn", "-q", "-B", "package", "-DskipTests"], { cwd: app, inheritEnv: true, timeoutMs: 900_000 });
  return path.join(app, SPRING_JAR);
}

/** commons-lang3 added to the copy's pom (its version comes from the Spring Boot parent). */
function addSpringDependency(app: string): void {
  const pom = path.join(app, "pom.xml");
  const dependency = "<dependency><groupId>org.apache.commons</groupId><artifactId>commons-lang3</artifactId></dependency>";
  writeFileSync(pom, readFileSync(pom, "utf8").replace("<dependencies>", `<dependencies>\n    ${dependency}`));
}

function countBootLibraries(jar: string): number {
  return readZipEntries(readFileSync(jar)).filter((e) => /^BOOT-INF\/lib\/[^/]+\.jar$/.test(e.name)).length;
}

export const fixtures: readonly Fixture[] = [
  {
    name: "node-service",
    source: { file: "server.js", line: "// bench: a one-line source change\n" },
    // npm ci needs package.json and its lock file in step: the pair with uuid added is committed
    // beside the fixture (made with npm install --package-lock-only), so the bench runs no npm on the host.
    changeDependency: (app) => cpSync(path.join(FIXTURES, "node-service-dep-change"), app, { recursive: true }),
    dependencyChange: "uuid@10.0.0 added",
  },
  {
    name: "python-service",
    source: { file: "app.py", line: "# bench: a one-line source change\n" },
    changeDependency: (app) => appendFileSync(path.join(app, "requirements.txt"), "python-dotenv==1.0.1\n"),
    dependencyChange: "python-dotenv==1.0.1 added",
  },
  {
    name: "spring-service",
    // A comment would compile to the same classes (and the same image): one line of code instead.
    source: { file: SPRING_SOURCE, line: "class BenchChange {}\n", again: "class BenchChangeAgain {}\n" },
    changeDependency: addSpringDependency,
    dependencyChange: "commons-lang3 added",
    build: buildSpringJar,
    countPackages: countBootLibraries,
  },
  {
    // The same service run with java -jar (a cmd in kiln.yml): the whole fat jar in the app layer.
    name: "spring-service-whole-jar",
    source: { file: SPRING_SOURCE, line: "class BenchChange {}\n", again: "class BenchChangeAgain {}\n" },
    changeDependency: addSpringDependency,
    dependencyChange: "commons-lang3 added",
    async build(app) {
      const jar = await buildSpringJar(app);
      writeFileSync(path.join(path.dirname(jar), "kiln.yml"), `cmd: [java, -jar, ${path.basename(jar)}]\n`);
      return jar;
    },
    countPackages: countBootLibraries,
    onlyWhenNamed: true,
  },
];

export interface BakeRow {
  readonly bake: string;
  readonly seconds: number;
  readonly secondsOverCold: number;
  readonly rawDiskBytes: number;
  readonly appBytes: number;
  /** Blocks a push would upload: every non-zero block for the cold bake, changed blocks for a rebake. */
  readonly uploadBlocks: number;
  readonly uploadOverCold: number;
  /** The three slowest bake steps, as the progress lines name them. */
  readonly slowestSteps: readonly { label: string; seconds: number }[];
}

export interface FixtureResult {
  readonly fixture: string;
  readonly packages: number;
  readonly dependencyChange: string;
  readonly rows: readonly BakeRow[];
}

/** A Progress that prints nothing and keeps each step's duration. */
function timingProgress(steps: { label: string; seconds: number }[]): Progress {
  return {
    async step(label, work) {
      const started = performance.now();
      try {
        return await work();
      } finally {
        steps.push({ label, seconds: (performance.now() - started) / 1000 });
      }
    },
    info: () => undefined,
  };
}

export async function measureFixture(fixture: Fixture): Promise<FixtureResult> {
  const app = mkdtempSync(path.join(os.tmpdir(), `kiln-bench-${fixture.name}-`));
  cpSync(path.join(FIXTURES, fixture.name.replace(/-whole-jar$/, "")), app, { recursive: true });
  let packages = 0;
  rmSync(path.join(app, "kiln.lock"), { force: true });
  const home = kilnHome({ KILN_HOME: mkdtempSync(path.join(os.tmpdir(), "kiln-bench-home-")) });
  const rows: BakeRow[] = [];
  try {
    let cold: { seconds: number; blocks: number } | undefined;
    let parent: BlockHashes | undefined;
    const bakeOnce = async (label: string) => {
      const steps: { label: string; seconds: number }[] = [];
      const target = fixture.build ? await fixture.build(app) : app;
      packages = fixture.countPackages ? fixture.countPackages(target) : dependencyCount(fixture.name);
      const { image, seconds } = await bake(target, { name: fixture.name }, home, timingProgress(steps));
      const blocks = await scanDiskBlocks(image.dir, image.disk);
      const upload = planBlocks(blocks, parent).upload.length;
      parent = blocks;
      cold ??= { seconds, blocks: upload };
      rows.push(rowOf(label, image, seconds, upload, cold, steps));
    };
    const bakeByCli = async (label: string) => {
      // Building the app (mvn package) is not part of the bake the user waits for.
      const target = fixture.build ? await fixture.build(app) : app;
      const started = performance.now();
      execFileSync(process.execPath, [path.join(installRoot(), "bin", "kiln.js"), "bake", target, "--name", fixture.name], {
        env: { ...process.env, KILN_HOME: home.root },
        stdio: ["ignore", "ignore", "pipe"],
      });
      const seconds = (performance.now() - started) / 1000;
      const image = await new ImageStore(home).resolve(fixture.name);
      const blocks = await scanDiskBlocks(image.dir, image.disk);
      const upload = planBlocks(blocks, parent).upload.length;
      parent = blocks;
      rows.push(rowOf(label, image, seconds, upload, cold!, []));
    };
    await bakeOnce("cold");
    appendFileSync(path.join(app, fixture.source.file), fixture.source.line);
    await bakeOnce(`source change (${fixture.source.file})`);
    // The same change as the user sees it: `kiln bake` in a new process, start-up included.
    appendFileSync(path.join(app, fixture.source.file), fixture.source.again ?? fixture.source.line);
    await bakeByCli(`source change, kiln bake command`);
    fixture.changeDependency(app);
    await bakeOnce(`dependency change (${fixture.dependencyChange})`);
    // The first bake of an app in a kiln home that already has the base packages and system
    // layer: its dependencies installed, scanned and compressed from nothing.
    for (const dir of ["node-deps", "python-deps", "java-deps", "derived", "elf-scan"])
      rmSync(path.join(home.cache, dir), { recursive: true, force: true });
    for (const layer of readdirSync(path.join(home.cache, "layers")).filter((f) => /^(app|deps)-/.test(f)))
      rmSync(path.join(home.cache, "layers", layer), { force: true });
    await bakeOnce("first bake of the app, kiln home warm");
  } finally {
    rmSync(home.root, { recursive: true, force: true });
    rmSync(app, { recursive: true, force: true });
  }
  return { fixture: fixture.name, packages, dependencyChange: fixture.dependencyChange, rows };
}

function rowOf(
  label: string,
  image: StoredImage,
  seconds: number,
  upload: number,
  cold: { seconds: number; blocks: number },
  steps: { label: string; seconds: number }[],
): BakeRow {
  return {
    bake: label,
    seconds,
    secondsOverCold: seconds / cold.seconds,
    rawDiskBytes: image.manifest.sizes.rawDisk,
    appBytes: image.manifest.sizes.app,
    uploadBlocks: upload,
    uploadOverCold: upload / cold.blocks,
    slowestSteps: [...steps].sort((a, b) => b.seconds - a.seconds).slice(0, 3),
  };
}

const pct = (r: number) => `${(r * 100).toFixed(1)}%`;
const mib = (b: number) => `${(b / 1048576).toFixed(1)}`;

/** The fixture's rows as a fixed-width table, with the slowest steps of each bake under it. */
export function formatFixture(result: FixtureResult): string {
  const header = ["bake", "seconds", "vs cold", "blocks to push", "MiB to push", "vs cold", "app MiB"];
  const body = result.rows.map((r) => [
    r.bake,
    r.seconds.toFixed(2),
    pct(r.secondsOverCold),
    String(r.uploadBlocks),
    mib(r.uploadBlocks * BLOCK_SIZE),
    pct(r.uploadOverCold),
    mib(r.appBytes),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: string[]) => `  ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ")}`;
  const slowest = result.rows.map(
    (r) => `  slowest steps, ${r.bake}: ${r.slowestSteps.map((s) => `${s.label} ${s.seconds.toFixed(2)}s`).join(", ")}`,
  );
  return [
    `${result.fixture}, ${result.packages} packages (fresh kiln home; pushes at ${BLOCK_SIZE / 1024} KiB blocks, each against the previous bake)`,
    line(header),
    ...body.map(line),
    ...slowest,
    "",
  ].join("\n");
}

/** Packages a fixture installs: lock file entries for Node, pinned requirement lines for Python. */
export function dependencyCount(fixture: string): number {
  const dir = path.join(FIXTURES, fixture);
  const lockFile = path.join(dir, "package-lock.json");
  if (existsSync(lockFile)) {
    const lock = JSON.parse(readFileSync(lockFile, "utf8")) as { packages: Record<string, unknown> };
    return Object.keys(lock.packages).filter((k) => k !== "").length;
  }
  return readFileSync(path.join(dir, "requirements.txt"), "utf8")
    .split("\n")
    .filter((l) => /^[A-Za-z0-9]/.test(l)).length;
}
