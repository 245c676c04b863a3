/**
 * The one symlink policy of every baker (native, node, python, java, tarball): the app
 * directory is copied into the image as it is, but a symlink whose target resolves outside
 * the app directory is refused, naming the link and where it points. Following it would carry
 * a build-host file (a key, a config with secrets) into the image, or let a bake step that
 * reads the staged app (byte-compiling, npm) read it. Links that stay inside are kept as links.
 * Unreadable files and over-long paths become InputErrors naming the file.
 */
import { realpath } from "node:fs/promises";
import path from "node:path";
import { resolveBeneath, printable } from "../confine.js";
import { InputError } from "../errors.js";
import { fsInputError } from "../fs-errors.js";
import { copyListedTree, listTree, type TreeEntry } from "../fsutil.js";

/** Lists the app directory (skipping what the baker leaves out) and checks its links. */
export async function listAppTree(appDir: string, skip: (rel: string) => boolean = () => false): Promise<TreeEntry[]> {
  const entries = await withInputErrors(() => listTree(appDir, skip));
  await checkAppLinks(appDir, entries);
  return entries;
}

/** Copies the app directory with normalised modes, after the link check. */
export async function copyAppTree(appDir: string, dest: string, skip: (rel: string) => boolean = () => false): Promise<TreeEntry[]> {
  const entries = await listAppTree(appDir, skip);
  return withInputErrors(() => copyListedTree(appDir, dest, entries));
}

/** Refuses, all at once, every symlink among `entries` that leads out of `root` (or loops). */
export async function checkAppLinks(root: string, entries: readonly TreeEntry[]): Promise<void> {
  const problems: string[] = [];
  for (const entry of entries) {
    if (entry.type !== "symlink") continue;
    const resolved = await withInputErrors(() => resolveBeneath(root, entry.rel));
    if ("rel" in resolved) continue;
    const target = printable(entry.target ?? "");
    if (resolved.escape === "loop") {
      problems.push(`${printable(entry.rel)} -> ${target} (a link loop)`);
      continue;
    }
    // Where it really leads on this host (through the other links), for the message only.
    const lands = await realpath(path.join(root, entry.rel)).catch(() => path.resolve(root, path.dirname(entry.rel), entry.target ?? ""));
    problems.push(`${printable(entry.rel)} -> ${target} (resolves to ${printable(lands)})`);
  }
  if (problems.length === 0) return;
  const shown = problems.slice(0, 10);
  const more = problems.length > shown.length ? `\n  … and ${problems.length - shown.length} more` : "";
  const list = `${shown.map((p) => `  - ${p}`).join("\n")}${more}`;
  throw new InputError(`${root} has symlink${problems.length === 1 ? "" : "s"} pointing outside the app directory:\n${list}`, {
    hint:
      "kiln never follows links out of the app (they would carry build-host files into the image): " +
      "copy what they point to into the app directory, or make them relative links that stay inside it",
  });
}

/** Runs a file system step over the user's files, turning EACCES, ENAMETOOLONG and ELOOP into InputErrors. */
export async function withInputErrors<T>(step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    throw fsInputError(error) ?? error;
  }
}
