/**
 * The init's small C helpers (kiln-exec, kiln-log, kiln-https, kiln-cwlogs) are built without libc (raw
 * system calls), so they are tiny, static and byte-reproducible. One compile recipe for all of
 * them, cached in the layers directory by (source, compiler, linked libraries).
 */
import { mkdir, readdir, readFile, rename } from "node:fs/promises";
import path from "node:path";
import { run } from "../exec.js";
import { exists, sha256, sha256File } from "../fsutil.js";
import type { BakeContext } from "./context.js";

export interface FreestandingBuild {
  /** templates/init/NAME.c; the binary is cached as NAME-KEY. */
  readonly name: string;
  /** Static libraries linked in (their bytes are part of the cache key). */
  readonly libraries?: readonly string[];
  /** Flags added to the common ones. */
  readonly extraFlags?: readonly string[];
  readonly hint?: string;
}

/** The compile flags every helper gets (tests that build one by hand use them too). */
export const FREESTANDING_FLAGS = [
  "-static",
  "-nostdlib",
  "-ffreestanding",
  "-fno-builtin",
  "-Os",
  "-fno-stack-protector",
  "-fno-asynchronous-unwind-tables",
  "-fno-pie",
  "-no-pie",
  "-Wl,--build-id=none",
  "-Wl,-z,max-page-size=4096",
  "-s",
];

export async function compileFreestanding(ctx: BakeContext, build: FreestandingBuild): Promise<Buffer> {
  const source = path.join(ctx.templates, "init", `${build.name}.c`);
  const compiler = (await run(["gcc", "--version"])).stdout.split("\n")[0] ?? "";
  const libraries = build.libraries ?? [];
  // The helpers share headers (kiln-trust-anchors.h, kiln-bearssl-runtime.h): every header beside
  // the sources is an input, so a change to one rebuilds each helper that might include it.
  const headers = (await readdir(path.dirname(source))).filter((f) => f.endsWith(".h")).sort();
  const inputs = [
    await sha256File(source),
    ...(await Promise.all(headers.map(async (h) => `${h}:${await sha256File(path.join(path.dirname(source), h))}`))),
    compiler,
    ...(await Promise.all(libraries.map((l) => sha256File(l)))),
  ];
  const key = sha256(inputs.join("\0")).slice(0, 24);
  const out = path.join(ctx.layers, `${build.name}-${key}`);
  if (!(await exists(out))) {
    await mkdir(ctx.layers, { recursive: true });
    const tmp = `${out}.tmp-${process.pid}`;
    const link = libraries.length > 0 ? [...libraries, "-lgcc"] : [];
    await run(
      ["gcc", ...FREESTANDING_FLAGS, ...(build.extraFlags ?? []), "-o", tmp, source, ...link],
      build.hint ? { hint: build.hint } : {},
    );
    await rename(tmp, out);
  }
  return readFile(out);
}
