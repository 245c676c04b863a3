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

/** Merges consoles into "label | line" lines, in time order as far as the timestamps allow. */
export function mergeConsoles(consoles: readonly ConsoleLines[]): { lines: string[]; lastKeys: Map<string, string> } {
  const keyed: { key: string; console: number; index: number; text: string }[] = [];
  const lastKeys = new Map<string, string>();
  consoles.forEach((c, console) => {
    let key = c.since ?? "";
    c.lines.forEach((line, index) => {
      const stamp = STAMP.exec(line)?.[1];
      // Same length for every stamp kiln-log writes (milliseconds): a string compare is a time compare.
      if (stamp && stamp > key) key = stamp;
      keyed.push({ key, console, index, text: `${c.label} | ${line}` });
    });
    lastKeys.set(c.label, key);
  });
  keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.console - b.console || a.index - b.index));
  return { lines: keyed.map((k) => k.text), lastKeys };
}
