/**
 * Release history kept in resource tags (`kiln:h:000042` → encoded entry), so every machine
 * with the credentials reads the same history. Pure: callers read and write the tags.
 */
import type { HistoryEntry } from "../../deploy/types.js";

const PREFIX = "kiln:h:";
/** ALBs and EC2 resources hold 50 tags: kiln's own and the newest 40 releases fit. */
const HISTORY_LIMIT = 40;

/** ELB and EC2 tag values: at most 256 characters. */
const TAG_VALUE_MAX = 256;
/** ELB tag values allow letters, digits, spaces and _.:/=+-@ only. */
const TAG_VALUE_CHARS = /^[A-Za-z0-9 _.:/=+\-@]*$/;

/**
 * The fields joined by spaces; then the launch configuration's hash, then its settings as
 * NAME=VALUE words when they fit in a tag value (else only the hash: the plan says so).
 * Entries written before kiln recorded configurations have five fields and read as before.
 */
function encodeHistory(entry: HistoryEntry): string {
  const fields = [entry.result, entry.at, entry.image.digest, entry.image.ref, entry.release];
  if (!entry.config) return fields.join(" ");
  const withHash = [...fields, entry.config.hash].join(" ");
  if (withHash.length > TAG_VALUE_MAX) return fields.join(" ");
  const settings = Object.entries(entry.config.settings ?? {}).map(([k, v]) => `${k}=${v}`);
  const full = [withHash, ...settings].join(" ");
  const fits = full.length <= TAG_VALUE_MAX && TAG_VALUE_CHARS.test(full) && settings.every((s) => !/\s/.test(s));
  return fits && entry.config.settings ? `${full}${settings.length ? "" : " ="}` : withHash;
}

function decodeHistory(value: string): HistoryEntry | undefined {
  const [result, at, digest, ref, release, hash, ...settings] = value.split(" ");
  if (!(result && at && digest && ref && release)) return undefined;
  const entry = { release, image: { ref, digest }, result: result as HistoryEntry["result"], at };
  if (!hash) return entry;
  // A lone "=" marks recorded settings that were empty (an environment without env: on the local target).
  const pairs = settings.filter((s) => s !== "=").map((s) => [s.slice(0, s.indexOf("=")), s.slice(s.indexOf("=") + 1)]);
  return { ...entry, config: settings.length ? { hash, settings: Object.fromEntries(pairs) } : { hash } };
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
