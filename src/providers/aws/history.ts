/**
 * Release history kept in resource tags (`kiln:h:000042` → encoded entry), so every machine
 * with the credentials reads the same history. Pure: callers read and write the tags.
 */
import type { HistoryEntry } from "../../deploy/types.js";

const PREFIX = "kiln:h:";
/** ALBs and EC2 resources hold 50 tags: kiln's own and the newest 40 releases fit. */
const HISTORY_LIMIT = 40;

/** ELB tag values allow letters, digits, spaces and _.:/=+-@ only: the fields joined by spaces. */
function encodeHistory(entry: HistoryEntry): string {
  return [entry.result, entry.at, entry.image.digest, entry.image.ref, entry.release].join(" ");
}

function decodeHistory(value: string): HistoryEntry | undefined {
  const [result, at, digest, ref, release] = value.split(" ");
  return result && at && digest && ref && release
    ? { release, image: { ref, digest }, result: result as HistoryEntry["result"], at }
    : undefined;
}

export function historyFromTags(tags: Readonly<Record<string, string>>): HistoryEntry[] {
  return Object.keys(tags)
    .filter((k) => k.startsWith(PREFIX))
    .sort()
    .flatMap((key) => decodeHistory(tags[key]!) ?? []);
}

/** The tag to add for a new entry and the oldest keys to drop so at most `limit` entries remain. */
export function appendHistory(
  tags: Readonly<Record<string, string>>,
  entry: HistoryEntry,
  limit = HISTORY_LIMIT,
): { set: Record<string, string>; remove: string[] } {
  const keys = Object.keys(tags)
    .filter((k) => k.startsWith(PREFIX))
    .sort();
  const next = keys.length ? Number(keys.at(-1)!.slice(PREFIX.length)) + 1 : 1;
  return {
    set: { [`${PREFIX}${String(next).padStart(6, "0")}`]: encodeHistory(entry) },
    remove: keys.slice(0, Math.max(0, keys.length + 1 - limit)),
  };
}
