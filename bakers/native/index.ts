/**
 * native: any x86-64 ELF executable (C, Go, Rust, …), static or dynamic, alone or in a
 * directory with its data files, or a tarball of such files with a cmd (kiln bake app.tar.gz
 * --cmd "./bin/server"). The shared-library closure is computed by the bake from the ELF
 * headers; this baker only recognises the app and copies (or unpacks) it.
 */
import { copyFile, chmod, readdir, readFile, open } from "node:fs/promises";
import path from "node:path";
import type { AppSource, Baker, Detection } from "../../src/bake/baker.js";
import { isElf, parseElf } from "../../src/elf/elf.js";
import { copyAppTree } from "../../src/bake/app-tree.js";
import { makeScratchDir, removeDir } from "../../src/fsutil.js";
import { extractArchive } from "./extract.js";
import { tarballBaseName, tarballKind } from "../../src/archive/tarball.js";

export const priority = 90;

const SKIP = new Set([".git", "kiln.yml", "kiln.lock", ".kiln"]);

async function elfHeader(file: string): Promise<boolean> {
  const fh = await open(file, "r");
  try {
    const head = Buffer.alloc(4);
    await fh.read(head, 0, 4, 0);
    return isElf(head);
  } finally {
    await fh.close();
  }
}

async function executablesIn(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const full = path.join(dir, entry.name);
    if (!(await elfHeader(full))) continue;
    const info = parseElf(await readFile(full), entry.name);
    if (info.type === "exec" || (info.type === "dyn" && (info.interpreter !== undefined || info.isPie))) out.push(entry.name);
  }
  return out.sort();
}

export const baker: Baker = {
  name: "native",

  async detect(source: AppSource): Promise<Detection | undefined> {
    if (source.file) {
      // A tarball carries no hint of what to run: cmd comes from kiln.yml or --cmd.
      if (await tarballKind(source.file)) return { name: sanitize(tarballBaseName(source.file)) };
      if (!(await elfHeader(source.file))) return undefined;
      const base = path.basename(source.file);
      return { name: sanitize(base), cmd: [`./${base}`] };
    }
    const found = await executablesIn(source.dir);
    if (found.length === 0) return undefined;
    const name = sanitize(path.basename(source.dir));
    if (found.length === 1) return { name, cmd: [`./${found[0]}`] };
    return { name };
  },

  async prepareRuntime() {
    return { key: "native", files: [], packages: [], path: ["/app"] };
  },

  async stageApp(spec, ctx, dest) {
    if (spec.appFile && (await tarballKind(spec.appFile))) {
      const scratch = await makeScratchDir(ctx.scratch, "untar");
      try {
        await copyAppTree(await extractArchive(ctx, spec.appFile, scratch), dest);
      } finally {
        await removeDir(scratch);
      }
      return;
    }
    if (spec.appFile) {
      const target = path.join(dest, path.basename(spec.appFile));
      await copyFile(spec.appFile, target);
      await chmod(target, 0o755);
      return;
    }
    await copyAppTree(spec.appDir, dest, (rel) => SKIP.has(rel.split("/")[0]!));
  },
};

function sanitize(name: string): string {
  return (
    name
      .toLowerCase()
      .replace(/[^a-z0-9._-]+/g, "-")
      .replace(/^[^a-z0-9]+/, "") || "app"
  );
}
