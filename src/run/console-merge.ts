/**
 * Several VMs' consoles as one stream (kiln logs --env), pure. Lines from kiln-log carry an RFC
 * 3339 UTC timestamp and are ordered by it; a line without one (kernel, early init) keeps its
 * place after the last stamped line of its own console, so each console's order is never changed.
 */
const STAMP = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) /;

export interface ConsoleLines {
  readonly label: string;
  readonly lines: readonly string[];
  /** Ordering key of lines before the first stamped one (the last key of an earlier read, or ""). */
  readonly since?: string;
}

/** A merged line: its console's label, the line, and its ordering key (its stamp, else the last one before it, else ""). */
export interface MergedLine {
  readonly label: string;
  readonly line: string;
  readonly key: string;
  /** The line's own RFC 3339 stamp, when it has one. */
  readonly stamp?: string;
}

/** Merges consoles into "label | line" lines, in time order as far as the timestamps allow. */
export function mergeConsoles(consoles: readonly ConsoleLines[]): {
  lines: string[];
  entries: MergedLine[];
  lastKeys: Map<string, string>;
} {
  const keyed: { key: string; console: number; index: number; text: string; entry: MergedLine }[] = [];
  const lastKeys = new Map<string, string>();
  consoles.forEach((c, console) => {
    let key = c.since ?? "";
    c.lines.forEach((line, index) => {
      const stamp = STAMP.exec(line)?.[1];
      // Same length for every stamp kiln-log writes (milliseconds): a string compare is a time compare.
      if (stamp && stamp > key) key = stamp;
      const entry = { label: c.label, line, key, ...(stamp ? { stamp } : {}) };
      keyed.push({ key, console, index, text: `${c.label} | ${line}`, entry });
    });
    lastKeys.set(c.label, key);
  });
  keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.console - b.console || a.index - b.index));
  return { lines: keyed.map((k) => k.text), entries: keyed.map((k) => k.entry), lastKeys };
}

/**
 * Which merged lines --since and --filter keep: a line's time is its ordering key (a line without
 * a stamp of its own takes the last stamp before it in its console; one before any stamp has no
 * known time and goes when --since is given). `since` is an ISO time with milliseconds, like the stamps.
 */
export function keepMerged(entry: MergedLine, since: string | undefined, filter: string | undefined): boolean {
  if (since !== undefined && (entry.key === "" || entry.key < since)) return false;
  return filter === undefined || entry.line.includes(filter);
}

/** A merged line as JSON, like an AWS environment's: {time, instance, message}; a local VM has no zone. */
export function mergedJson(entry: MergedLine): string {
  const message = entry.stamp ? entry.line.slice(entry.stamp.length + 1) : entry.line;
  return JSON.stringify({ ...(entry.key ? { time: entry.key } : {}), instance: entry.label, message });
}
