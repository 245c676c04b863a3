/**
 * Release history kept in resource tags (`kiln:h:000042` → encoded entry), so every machine
 * with the credentials reads the same history. Pure: callers read and write the tags.
 */
import type { HistoryEntry } from "../../deploy/types.js";
import { decodeHistory, encodeHistory } from "./names.js";

const PREFIX = "kiln:h:";

export function historyFromTags(tags: Readonly<Record<string, string>>): HistoryEntry[] {
  const history: HistoryEntry[] = [];
  for (const key of Object.keys(tags).filter((k) => k.startsWith(PREFIX)).sort()) {
    const h = decodeHistory(tags[key]!);
    if (h) history.push({ release: h.release, image: { ref: h.ref, digest: h.digest }, result: h.result as HistoryEntry["result"], at: h.at });
  }
  return history;
}

/**
 * The tag to add for a new entry and the oldest keys to drop so at most `limit` entries remain
 * (ALBs and EC2 resources hold 50 tags; the rest are kiln's own).
 */
export function appendHistory(tags: Readonly<Record<string, string>>, entry: HistoryEntry, limit: number): { set: Record<string, string>; remove: string[] } {
  const keys = Object.keys(tags).filter((k) => k.startsWith(PREFIX)).sort();
  const next = keys.length ? Number(keys.at(-1)!.slice(PREFIX.length)) + 1 : 1;
  const value = encodeHistory({ result: entry.result, at: entry.at, digest: entry.image.digest, ref: entry.image.ref, release: entry.release });
  return { set: { [`${PREFIX}${String(next).padStart(6, "0")}`]: value }, remove: keys.slice(0, Math.max(0, keys.length + 1 - limit)) };
}
