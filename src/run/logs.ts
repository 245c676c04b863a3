/**
 * kiln logs for local VMs: which console a name means (a running VM or a kept console of a stopped
 * one: id, id prefix, VM name, image ref), printing it (following it while the VM runs), and the
 * merged consoles of a local environment's instances.
 */
import { open } from "node:fs/promises";
import path from "node:path";
import { InputError, NotFoundError } from "../errors.js";
import type { KilnHome } from "../home.js";
import { listVms, vmStillRunning, type LocalVmEntry } from "../providers/vm-registry.js";
import { consolesDir, listStoppedConsoles, type StoppedConsole } from "./console-archive.js";
import { isAppLine } from "./console-lines.js";
import { keepMerged, mergeConsoles, mergedJson } from "./console-merge.js";

export type LogTarget =
  | { readonly state: "running"; readonly vm: LocalVmEntry; readonly consoleFile: string }
  | { readonly state: "stopped"; readonly stopped: StoppedConsole };

function runningTarget(vm: LocalVmEntry): LogTarget {
  return { state: "running", vm, consoleFile: path.join(vm.dir, "console.log") };
}

function describeTarget(t: LogTarget): string {
  return t.state === "running"
    ? `${t.vm.id}  ${t.vm.name}  ${t.vm.image}  running since ${t.vm.startedAt}`
    : `${t.stopped.id}  ${t.stopped.name}  ${t.stopped.image}  stopped ${t.stopped.stoppedAt}${t.stopped.failed ? " (failed)" : ""}`;
}

/**
 * Resolves what the user named: an exact VM id or name, then an image (name:version, name, or a
 * sha256: digest prefix: its newest VM, running before stopped), then a unique id prefix.
 */
export async function findLogTarget(home: KilnHome, query: string): Promise<LogTarget> {
  const running = (await listVms(home)).sort((a, b) => b.startedAt.localeCompare(a.startedAt));
  const stopped = await listStoppedConsoles(home); // newest first
  const all: LogTarget[] = [...running.map(runningTarget), ...stopped.map((s) => ({ state: "stopped" as const, stopped: s }))];
  const fields = (t: LogTarget) => (t.state === "running" ? t.vm : t.stopped);
  const exact = all.find((t) => fields(t).id === query) ?? all.find((t) => fields(t).name === query);
  if (exact) return exact;
  const ofImage = all.find((t) => {
    const f = fields(t);
    return f.image === query || f.image.startsWith(`${query}:`) || (query.startsWith("sha256:") && (f.digest ?? "").startsWith(query));
  });
  if (ofImage) return ofImage;
  const prefixed = all.filter((t) => fields(t).id.startsWith(query));
  if (prefixed.length === 1) return prefixed[0]!;
  if (prefixed.length > 1)
    throw new InputError(`'${query}' matches ${prefixed.length} VMs:\n  ${prefixed.map(describeTarget).join("\n  ")}`, {
      hint: "give more characters of the id",
    });
  const recent = stopped.slice(0, 5).map((s) => ({ state: "stopped" as const, stopped: s }));
  throw new NotFoundError(`no VM, running or stopped, matches '${query}'`, {
    hint:
      running.length + recent.length > 0
        ? `kiln ps lists the running VMs; kept consoles of stopped VMs:\n  ${recent.map(describeTarget).join("\n  ") || "(none)"}`
        : "no VM has run yet with this KILN_HOME: kiln run NAME:VERSION starts one",
  });
}

/** Reads a console from `offset` on; a VM retired meanwhile (console moved to the archive) is read there. */
async function readFrom(home: KilnHome, id: string, file: string, offset: number): Promise<{ text: string; offset: number }> {
  for (const candidate of [file, path.join(consolesDir(home), id, "console.log")]) {
    const fh = await open(candidate, "r").catch(() => undefined);
    if (!fh) continue;
    try {
      // VirtualBox truncates its serial log when a VM (re)starts: begin again at the top.
      const size = (await fh.stat()).size;
      const from = size < offset ? 0 : offset;
      const buf = Buffer.alloc(Math.min(size - from, 1024 * 1024));
      const { bytesRead } = await fh.read(buf, 0, buf.length, from);
      return { text: buf.subarray(0, bytesRead).toString("utf8"), offset: from + bytesRead };
    } finally {
      await fh.close();
    }
  }
  return { text: "", offset };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    const wake = () => {
      clearTimeout(timer);
      resolve();
    };
    signal.addEventListener("abort", wake, { once: true });
  });
}

/** Splits new text into complete lines (CR dropped), carrying the unfinished last line over. */
function takeLines(pending: string, text: string): { lines: string[]; pending: string } {
  const lines = (pending + text).replace(/\r/g, "").split("\n");
  return { pending: lines.pop() ?? "", lines };
}

export interface ShowOptions {
  readonly follow: boolean;
  readonly all: boolean;
  readonly signal: AbortSignal;
  readonly onLine: (line: string) => void;
  readonly intervalMs?: number;
  /** kiln logs --env: lines from this time (epoch ms) on, lines containing this text, JSON lines. */
  readonly since?: number;
  readonly filter?: string;
  readonly json?: boolean;
}

/** Prints one VM's console (app lines unless `all`); following while the VM runs. */
export async function showConsole(home: KilnHome, target: LogTarget, options: ShowOptions): Promise<void> {
  const id = target.state === "running" ? target.vm.id : target.stopped.id;
  const file = target.state === "running" ? target.consoleFile : target.stopped.consoleFile;
  let offset = 0;
  let pending = "";
  for (;;) {
    const read = await readFrom(home, id, file, offset);
    offset = read.offset;
    const taken = takeLines(pending, read.text);
    pending = taken.pending;
    for (const line of taken.lines) if (options.all || isAppLine(line)) options.onLine(line);
    if (read.text.length > 0) continue;
    if (!options.follow || target.state === "stopped" || options.signal.aborted || !(await vmStillRunning(target.vm))) break;
    await sleep(options.intervalMs ?? 200, options.signal);
  }
  if (pending && (options.all || isAppLine(pending))) options.onLine(pending);
}

/**
 * Prints the merged consoles of the running VMs whose record names `owner` (a local environment),
 * each line prefixed with the VM's name; following, VMs that start later join and the stream
 * ends when none runs. Returns how many instances were read.
 */
export async function showEnvConsoles(home: KilnHome, owner: string, options: ShowOptions): Promise<number> {
  const read = new Map<string, { name: string; file: string; offset: number; pending: string; since: string }>();
  for (;;) {
    const vms = (await listVms(home)).filter((vm) => vm.hypervisor === "qemu" && vm.owner === owner);
    for (const vm of vms)
      if (!read.has(vm.id)) read.set(vm.id, { name: vm.name, file: path.join(vm.dir, "console.log"), offset: 0, pending: "", since: "" });
    const batch = [];
    for (const [id, c] of read) {
      const got = await readFrom(home, id, c.file, c.offset);
      c.offset = got.offset;
      const taken = takeLines(c.pending, got.text);
      c.pending = taken.pending;
      batch.push({ label: c.name, lines: taken.lines.filter((l) => options.all || isAppLine(l)), since: c.since });
    }
    const merged = mergeConsoles(batch);
    for (const c of read.values()) c.since = merged.lastKeys.get(c.name) ?? c.since;
    const since = options.since === undefined ? undefined : new Date(options.since).toISOString();
    for (let i = 0; i < merged.entries.length; i++) {
      const entry = merged.entries[i]!;
      if (keepMerged(entry, since, options.filter)) options.onLine(options.json ? mergedJson(entry) : merged.lines[i]!);
    }
    if (!options.follow || options.signal.aborted || vms.length === 0) break;
    await sleep(options.intervalMs ?? 500, options.signal);
  }
  return read.size;
}
