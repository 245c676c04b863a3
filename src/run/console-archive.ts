/**
 * Consoles of stopped VMs. A VM's directory (seed drive with its -e values, QMP socket, disk
 * clone) goes when the VM stops, but its console is what a user reads next ("why did it stop?"),
 * so it moves to $KILN_HOME/consoles/<id>/ with a small record of the VM and how it ended.
 * Kept: the newest KEEP_STOPPED consoles, and failed runs' up to KEEP_FAILED more, each cut to its
 * last MAX_CONSOLE_BYTES, all together under MAX_TOTAL_BYTES (the newest is never dropped).
 */
import { open, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import type { KilnHome } from "../home.js";
import { makePrivate, makePrivateDir, writePrivateFile } from "../private-fs.js";

export const KEEP_STOPPED = 20;
export const KEEP_FAILED = 20;
export const MAX_CONSOLE_BYTES = 4 * 1024 * 1024;
export const MAX_TOTAL_BYTES = 64 * 1024 * 1024;

/** How a VM ended, as far as kiln knows. */
export type StopHow = "clean" | "app-killed" | "killed" | "already-stopped" | "stopped-unwatched";

/** What is kept about a stopped VM next to its console (consoles/<id>/stopped.json). */
export interface StoppedVm {
  readonly id: string;
  readonly name: string;
  readonly image: string;
  readonly digest?: string;
  readonly owner?: string;
  readonly startedAt?: string;
  readonly stoppedAt: string;
  readonly how: StopHow;
  readonly failed: boolean;
  /** Why the run failed (the error kiln printed), when it did. */
  readonly reason?: string;
}

export interface StoppedConsole extends StoppedVm {
  readonly consoleFile: string;
  readonly bytes: number;
}

export function consolesDir(home: Pick<KilnHome, "root">): string {
  return path.join(home.root, "consoles");
}

/** The init's own verdicts in a console that make a run a failure even if kiln did not watch it. */
const FAILURE_MARKS = [/kiln-init: FATAL: /, /kiln-init: app keeps crashing: powering off/];

export function consoleShowsFailure(text: string): boolean {
  return FAILURE_MARKS.some((mark) => mark.test(text));
}

/**
 * Which archived consoles to delete (pure): newest first, keep KEEP_STOPPED of all and up to
 * KEEP_FAILED failed ones beyond them, then drop the oldest (successful before failed) while the
 * total is over MAX_TOTAL_BYTES, never the newest one.
 */
export function consolesToDrop(
  entries: readonly Pick<StoppedConsole, "id" | "stoppedAt" | "failed" | "bytes">[],
  limits = { keepStopped: KEEP_STOPPED, keepFailed: KEEP_FAILED, maxTotalBytes: MAX_TOTAL_BYTES },
): string[] {
  const newestFirst = [...entries].sort((a, b) => b.stoppedAt.localeCompare(a.stoppedAt) || a.id.localeCompare(b.id));
  const kept: typeof newestFirst = [];
  const dropped: string[] = [];
  let failedBeyond = 0;
  newestFirst.forEach((entry, index) => {
    if (index < limits.keepStopped) kept.push(entry);
    else if (entry.failed && failedBeyond < limits.keepFailed) {
      failedBeyond++;
      kept.push(entry);
    } else dropped.push(entry.id);
  });
  let total = kept.reduce((sum, e) => sum + e.bytes, 0);
  for (const failedToo of [false, true]) {
    for (let i = kept.length - 1; i > 0 && total > limits.maxTotalBytes; i--) {
      const entry = kept[i]!;
      if (entry.failed !== failedToo) continue;
      total -= entry.bytes;
      dropped.push(entry.id);
      kept.splice(i, 1);
    }
  }
  return dropped;
}

/** Copies the last `max` bytes of `from` into `to` (0600), starting at a line boundary when it cuts. */
async function copyTail(from: string, to: string, max: number): Promise<void> {
  const fh = await open(from, "r");
  try {
    const size = (await fh.stat()).size;
    const start = Math.max(0, size - max);
    const buf = Buffer.alloc(size - start);
    await fh.read(buf, 0, buf.length, start);
    let text = buf;
    if (start > 0) {
      const newline = buf.indexOf(0x0a);
      text = Buffer.concat([
        Buffer.from(`[kiln: the first ${start + newline + 1} bytes of this console were not kept]\n`),
        buf.subarray(newline + 1),
      ]);
    }
    await writePrivateFile(to, text);
  } finally {
    await fh.close();
  }
}

/**
 * Keeps the console of the VM whose directory is `vmDir` (its vm.json names it) and prunes the
 * archive; returns the kept console's path (also when another kiln kept it first), or undefined
 * when there is none. The caller removes `vmDir` afterwards.
 */
export async function archiveConsole(
  home: Pick<KilnHome, "root">,
  vmDir: string,
  ending: { readonly how: StopHow; readonly failed?: boolean; readonly reason?: string; readonly stoppedAt?: Date },
): Promise<string | undefined> {
  const source = path.join(vmDir, "console.log");
  const info = await stat(source).catch(() => undefined);
  if (!info) {
    // Another kiln (kiln ps, kiln logs) found the VM stopped first and kept its console already.
    const kept = path.join(consolesDir(home), path.basename(vmDir));
    if (!(await stat(path.join(kept, "console.log")).catch(() => undefined))) return undefined;
    if (ending.failed) await markFailed(kept, ending.reason); // that kiln could not know the run failed
    return path.join(kept, "console.log");
  }
  const record = await readFile(path.join(vmDir, "vm.json"), "utf8").then(
    (t) => JSON.parse(t) as Partial<StoppedVm> & { uuid?: string },
    () => ({}) as Partial<StoppedVm>,
  );
  const id = record.id ?? path.basename(vmDir);
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(id)) return undefined; // never a path out of the archive
  const dir = path.join(consolesDir(home), id);
  await makePrivateDir(dir);
  const kept = path.join(dir, "console.log");
  if (info.size <= MAX_CONSOLE_BYTES) {
    // Same file system (both under KILN_HOME): a rename costs nothing.
    await rename(source, kept).catch(() => copyTail(source, kept, MAX_CONSOLE_BYTES));
    await makePrivate(kept); // a hypervisor may have created the log with the umask's mode
  } else await copyTail(source, kept, MAX_CONSOLE_BYTES);
  const text = await readFile(kept, "utf8").catch(() => "");
  const stopped: StoppedVm = {
    id,
    name: record.name ?? id,
    image: record.image ?? "?",
    ...(record.digest ? { digest: record.digest } : {}),
    ...(record.owner ? { owner: record.owner } : {}),
    ...(record.startedAt ? { startedAt: record.startedAt } : {}),
    // The console's last write is when the VM last said anything: the best "stopped at" for a VM
    // found stopped later.
    stoppedAt: (ending.stoppedAt ?? info.mtime).toISOString(),
    how: ending.how,
    failed: ending.failed ?? consoleShowsFailure(text),
    ...(ending.reason ? { reason: ending.reason } : {}),
  };
  await writePrivateFile(path.join(dir, "stopped.json"), `${JSON.stringify(stopped, null, 2)}\n`);
  await pruneConsoles(home);
  return kept;
}

async function markFailed(dir: string, reason: string | undefined): Promise<void> {
  const file = path.join(dir, "stopped.json");
  const record = await readFile(file, "utf8").then(
    (t) => JSON.parse(t) as StoppedVm,
    () => undefined,
  );
  if (record) await writePrivateFile(file, `${JSON.stringify({ ...record, failed: true, ...(reason ? { reason } : {}) }, null, 2)}\n`);
}

/** The archived consoles, newest first. */
export async function listStoppedConsoles(home: Pick<KilnHome, "root">): Promise<StoppedConsole[]> {
  const root = consolesDir(home);
  const out: StoppedConsole[] = [];
  for (const id of await readdir(root).catch(() => [] as string[])) {
    const dir = path.join(root, id);
    const record = await readFile(path.join(dir, "stopped.json"), "utf8").then(
      (t) => JSON.parse(t) as StoppedVm,
      () => undefined,
    );
    const consoleFile = path.join(dir, "console.log");
    const info = await stat(consoleFile).catch(() => undefined);
    if (record && info) out.push({ ...record, id, consoleFile, bytes: info.size });
  }
  return out.sort((a, b) => b.stoppedAt.localeCompare(a.stoppedAt));
}

export async function pruneConsoles(home: Pick<KilnHome, "root">): Promise<void> {
  const drop = consolesToDrop(await listStoppedConsoles(home));
  for (const id of drop) await rm(path.join(consolesDir(home), id), { recursive: true, force: true });
}

/** A stopped VM's directory goes; its console stays in the archive. Returns the kept console's path. */
export async function retireVmDir(
  home: Pick<KilnHome, "root">,
  vmDir: string,
  ending: Parameters<typeof archiveConsole>[2],
): Promise<string | undefined> {
  const kept = await archiveConsole(home, vmDir, ending).catch(() => undefined);
  await rm(vmDir, { recursive: true, force: true });
  return kept;
}
