/**
 * `kiln logs --since`: where reading starts, as a duration back from now (30s, 10m, 2h, 1d) or
 * an ISO 8601 time that says its zone (2026-11-29T20:00:00Z, …+01:00) or a plain UTC date. Pure.
 */
import { InputError } from "../errors.js";

const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const DURATION = /^(\d{1,9})([smhd])$/;
// A time of day without a zone would be read in this machine's zone: ambiguous, so refused.
const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d{1,9})?)?(?:Z|[+-]\d\d:\d\d)$/;
const ISO_DATE = /^\d{4}-\d\d-\d\d$/;

/** The start time in epoch milliseconds that `text` means at `now`. */
export function parseSince(text: string, now: number): number {
  const trimmed = text.trim();
  const duration = DURATION.exec(trimmed);
  // Before 1970 nothing was logged: a duration reaching past it means "from the start".
  if (duration) return Math.max(0, now - Number(duration[1]) * UNIT_MS[duration[2] as keyof typeof UNIT_MS]);
  if (ISO_TIME.test(trimmed) || ISO_DATE.test(trimmed)) {
    const ms = Date.parse(trimmed);
    // Date.parse accepts 2026-02-31 by rolling over on some engines and not others: compare the date back.
    if (Number.isFinite(ms) && new Date(ms).toISOString().slice(0, 10) === utcDateOf(trimmed, ms)) return ms;
  }
  throw new InputError(`--since '${text}': not a duration or a time`, {
    hint: "give a duration back from now (30s, 10m, 2h, 1d) or an ISO time with its zone (2026-11-29T20:00:00Z)",
  });
}

/** The UTC date a valid ISO text names (its own date when it is UTC, else what the offset makes of it). */
function utcDateOf(text: string, ms: number): string {
  if (ISO_DATE.test(text) || text.endsWith("Z")) return text.slice(0, 10);
  // With an offset, rebuild the local date from the parsed instant and check it against the text.
  const offset = /([+-])(\d\d):(\d\d)$/.exec(text)!;
  const minutes = (offset[1] === "-" ? -1 : 1) * (Number(offset[2]) * 60 + Number(offset[3]));
  const local = new Date(ms + minutes * 60_000).toISOString().slice(0, 10);
  return local === text.slice(0, 10) ? new Date(ms).toISOString().slice(0, 10) : "";
}
