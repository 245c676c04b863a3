/**
 * Paths taken from untrusted content (archive entries, ELF headers, app directories, package
 * trees) are confined to a root before any file operation: a name never climbs out with "..",
 * and a symlink is only followed as far as the root it lives in.
 */
import { lstat, readlink } from "node:fs/promises";
import path from "node:path";
import { InputError } from "./errors.js";

/** ld.so gives up after 40 links in one lookup; a longer chain is a loop or an attack. */
const MAX_LINKS = 40;

/**
 * `name` joined under `root`, where `name` is relative to the root (a leading "/" means the
 * root itself, as for paths inside an image). Names with ".." or NUL are refused outright
 * rather than normalised: nothing kiln reads from a package or an app needs them.
 */
export function confinedPath(root: string, name: string, what = "a path"): string {
  const parts = name.split("/").filter((p) => p !== "" && p !== ".");
  if (name.includes("\0") || parts.some((p) => p === "..")) {
    throw new InputError(`${what} '${printable(name)}' climbs out of the directory it belongs to`, {
      hint: "paths taken from archives, programs and packages must stay inside their tree (no '..' components)",
    });
  }
  return parts.length === 0 ? root : path.join(root, ...parts);
}

export type Resolution = { readonly rel: string } | { readonly escape: "outside" | "loop" };

/**
 * Resolves `rel` inside `root` the way the kernel's openat2(RESOLVE_BENEATH) would: one
 * component at a time, following symlinks found on disk, never letting ".." or a link's
 * target leave the root. `inRoot` instead treats the root as "/" (RESOLVE_IN_ROOT, for
 * package trees whose absolute links mean paths in the image): absolute targets restart at
 * the root and ".." stops there. Components that do not exist are taken as written, so a
 * dangling link is judged by where it would point. Returns the resolved path relative to root.
 */
export async function resolveBeneath(root: string, rel: string, options: { inRoot?: boolean } = {}): Promise<Resolution> {
  const pending = rel.split("/").reverse();
  const done: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const part = pending.pop()!;
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (done.length > 0) done.pop();
      else if (!options.inRoot) return { escape: "outside" };
      continue;
    }
    const host = path.join(root, ...done, part);
    const info = await lstat(host).catch((error: NodeJS.ErrnoException) => {
      // Missing (or under a file): the rest of the name is taken as written.
      if (error.code === "ENOENT" || error.code === "ENOTDIR") return undefined;
      throw error;
    });
    if (info === undefined || !info.isSymbolicLink()) {
      done.push(part);
      continue;
    }
    if (++links > MAX_LINKS) return { escape: "loop" };
    const target = await readlink(host);
    if (target.startsWith("/")) {
      if (!options.inRoot) return { escape: "outside" };
      done.length = 0;
    }
    pending.push(...target.split("/").reverse());
  }
  return { rel: done.join("/") };
}

/** The host path `rel` resolves to inside `root`, or undefined when it would leave the root. */
export async function hostPathBeneath(root: string, rel: string, options: { inRoot?: boolean } = {}): Promise<string | undefined> {
  const resolved = await resolveBeneath(root, rel, options);
  return "rel" in resolved ? confinedPath(root, resolved.rel) : undefined;
}

/** Where a link target lands when read lexically from its directory, relative to the root; undefined above it. */
export function lexicalTarget(linkRel: string, target: string): string | undefined {
  if (target.startsWith("/")) return undefined;
  const joined = path.posix.normalize(path.posix.join(path.posix.dirname(linkRel), target));
  return joined === ".." || joined.startsWith("../") ? undefined : joined;
}

/** Names from hostile bytes can hold control characters; messages show them escaped. */
export function printable(name: string): string {
  const quoted = JSON.stringify(name).slice(1, -1);
  return quoted.length > 300 ? `${quoted.slice(0, 300)}…` : quoted;
}
