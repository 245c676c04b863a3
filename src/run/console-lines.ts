/**
 * The lines of a kiln VM's serial console: which are the app's, complete lines of a chunk, what
 * a re-read added. Free of the AWS SDK: `kiln run`, `ps` and `logs` use it without loading it.
 *
 * Console format (templates/init): kernel lines "[    1.234] …"; the init's early lines
 * "kiln-init: …"; from the start of the app on, every line (app and init) goes through kiln-log
 * and carries an RFC 3339 UTC timestamp: "2025-01-31T12:00:00.123Z text".
 */

const STAMPED = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z (.*)$/;
const KERNEL = /^\[\s*\d+\.\d+\] /;
const INIT = /^kiln-init: /;

/**
 * Whether a console line is the app's output. Lenient (local VMs): everything but kernel and
 * init lines, so images whose init printed app output without timestamps still show it.
 * `stampedOnly` (EC2 consoles, which also carry firmware and boot loader output): only
 * timestamped lines that are not the init's.
 */
export function isAppLine(line: string, options: { readonly stampedOnly?: boolean } = {}): boolean {
  const stamped = STAMPED.exec(line);
  if (stamped) return !INIT.test(stamped[1]!);
  return !options.stampedOnly && !KERNEL.test(line) && !INIT.test(line);
}

/** Splits console text into complete lines (CR dropped) and the unfinished last line, if any. */
export function splitConsole(text: string): { lines: string[]; partial: string } {
  const lines = text.replace(/\r/g, "").split("\n");
  const partial = lines.pop() ?? "";
  return { lines, partial };
}

/**
 * The lines of a re-read console window that were not in the previous read. The window slides
 * (EC2 keeps the last 64 KB), so the longest tail of `previous` that starts `next` is the overlap.
 */
export function newConsoleLines(previous: readonly string[], next: readonly string[]): string[] {
  for (let k = Math.min(previous.length, next.length); k > 0; k--) {
    let same = true;
    for (let i = 0; i < k && same; i++) same = previous[previous.length - k + i] === next[i];
    if (same) return next.slice(k);
  }
  return [...next];
}
