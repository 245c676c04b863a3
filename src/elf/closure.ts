import { posix } from "node:path";
import type { ElfInfo } from "./elf.js";

/**
 * Which shared libraries a program needs at run time, found the way ld.so finds them:
 * breadth-first over DT_NEEDED, each soname loaded once, first match wins. Looking a
 * soname up on disk is left to the caller's resolver so this stays pure and testable.
 */

export interface LibRequest {
  soname: string;
  /** Path of the object whose DT_NEEDED named this soname. */
  neededBy: string;
  runpath: string[];
  /**
   * The requester's DT_RPATH, followed by those of the objects that loaded it, up to the
   * root; ld.so searches that whole chain when the requester has no DT_RUNPATH. Entries
   * inherited from other objects already have $ORIGIN expanded, since `origin` is only
   * the requester's directory.
   */
  rpath: string[];
  /** Directory of the requester, for expanding $ORIGIN. */
  origin: string;
}

export interface ResolvedLib {
  soname: string;
  path: string;
  info: ElfInfo;
}

export interface LibClosure {
  interpreter?: string;
  /** Sorted by soname, each soname once. */
  libs: ResolvedLib[];
  missing: { soname: string; neededBy: string }[];
}

/** An object whose DT_NEEDED entries are being resolved, with the rpath it inherited. */
interface Requester {
  path: string;
  info: ElfInfo;
  inheritedRpath: string[];
}

export async function computeLibClosure(
  root: { path: string; info: ElfInfo },
  resolve: (req: LibRequest) => Promise<ResolvedLib | undefined>,
): Promise<LibClosure> {
  // ld.so never loads a second object under a soname it already has, the root's included.
  const queued = new Set<string>(root.info.soname === undefined ? [] : [root.info.soname]);
  const libs = new Map<string, ResolvedLib>();
  const missing: LibClosure["missing"] = [];

  let frontier = requestsFrom({ ...root, inheritedRpath: [] }, queued);
  while (frontier.length > 0) {
    // One breadth-first level is resolved concurrently; results are consumed in request
    // order, so the outcome does not depend on which lookup finishes first.
    const results = await Promise.all(frontier.map(({ request }) => resolve(request)));
    const next: PendingRequest[] = [];
    frontier.forEach(({ request, requester }, i) => {
      const lib = results[i];
      if (lib === undefined || !sameArchitecture(lib.info, root.info)) {
        missing.push({ soname: request.soname, neededBy: request.neededBy });
        return;
      }
      libs.set(request.soname, { soname: request.soname, path: lib.path, info: lib.info });
      const child = { path: lib.path, info: lib.info, inheritedRpath: rpathPassedOn(requester) };
      next.push(...requestsFrom(child, queued));
    });
    frontier = next;
  }

  const closure: LibClosure = {
    libs: [...libs.values()].sort((a, b) => compareStrings(a.soname, b.soname)),
    missing: missing.sort((a, b) => compareStrings(a.soname, b.soname) || compareStrings(a.neededBy, b.neededBy)),
  };
  if (root.info.interpreter !== undefined) closure.interpreter = root.info.interpreter;
  return closure;
}

interface PendingRequest {
  request: LibRequest;
  requester: Requester;
}

function requestsFrom(requester: Requester, queued: Set<string>): PendingRequest[] {
  const pending: PendingRequest[] = [];
  for (const soname of requester.info.needed) {
    if (queued.has(soname)) continue;
    queued.add(soname);
    pending.push({
      requester,
      request: {
        soname,
        neededBy: requester.path,
        runpath: [...requester.info.runpath],
        rpath: [...requester.info.rpath, ...requester.inheritedRpath],
        origin: posix.dirname(requester.path),
      },
    });
  }
  return pending;
}

/** An object with DT_RUNPATH has its DT_RPATH ignored, so it passes on only what it inherited. */
function rpathPassedOn(loader: Requester): string[] {
  if (loader.info.runpath.length > 0) return loader.inheritedRpath;
  const origin = posix.dirname(loader.path);
  const own = loader.info.rpath.map((entry) => entry.replace(/\$ORIGIN\b|\$\{ORIGIN\}/g, origin));
  return [...own, ...loader.inheritedRpath];
}

/** ld.so skips libraries built for another machine, word size or byte order; so do we. */
function sameArchitecture(lib: ElfInfo, root: ElfInfo): boolean {
  return lib.machine === root.machine && lib.bits === root.bits && lib.littleEndian === root.littleEndian;
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
