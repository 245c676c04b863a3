/**
 * The events of an environment's log group as `kiln logs --env` shows them, pure: time order
 * with a fixed order for equal timestamps, no event twice while following, the --filter match,
 * and the printed line (text or JSON).
 */

/** One CloudWatch Logs event; `stream` is the instance id (one stream per instance). */
export interface LogEvent {
  readonly time: number;
  readonly stream: string;
  readonly id: string;
  readonly message: string;
}

/** What is known about a stream's instance: its zone (absent once it is gone) and, with --release, its release. */
export interface StreamPlacement {
  readonly zone?: string;
  readonly release?: string;
}

/**
 * Time order; equal timestamps by stream name, so two instances' lines of the same millisecond
 * come out the same way on every run. The sort is stable: one stream's lines of one millisecond
 * keep the order CloudWatch gave them, which is the order they were written.
 */
export function orderEvents(events: readonly LogEvent[]): LogEvent[] {
  return [...events].sort((a, b) => a.time - b.time || (a.stream < b.stream ? -1 : a.stream > b.stream ? 1 : 0));
}

/**
 * Paging through one read: events of a page are ordered and printed except those at the page's
 * last timestamp, which wait for the next page (it may hold more of that millisecond from another
 * stream). `final`: no page follows, everything goes.
 */
export function takeOrdered(held: readonly LogEvent[], page: readonly LogEvent[], final: boolean): { ready: LogEvent[]; held: LogEvent[] } {
  const all = orderEvents([...held, ...page]);
  if (final || all.length === 0) return { ready: all, held: [] };
  const last = all.at(-1)!.time;
  const cut = all.findIndex((e) => e.time === last);
  return { ready: all.slice(0, cut), held: all.slice(cut) };
}

/**
 * The event ids already printed while following. Each poll reads again from a little before the
 * newest event seen (late batches carry older timestamps), so ids are kept for that window only.
 */
export class SeenEvents {
  private readonly times = new Map<string, number>();

  /** True the first time an event is offered; false when it was printed already. */
  admit(event: LogEvent): boolean {
    const key = `${event.stream}\n${event.id}`;
    if (this.times.has(key)) return false;
    this.times.set(key, event.time);
    return true;
  }

  /** Forgets events older than `before`: the next read does not reach back to them. */
  forget(before: number): void {
    for (const [key, time] of this.times) if (time < before) this.times.delete(key);
  }

  get size(): number {
    return this.times.size;
  }
}

/** --filter: the text as typed, case-sensitive, anywhere in the line (no pattern syntax to trip over). */
export function matchesFilter(message: string, filter: string | undefined): boolean {
  return filter === undefined || message.includes(filter);
}

/** A line from a log is untrusted: control characters (escape sequences) are shown, not sent to the terminal. */
export function printable(message: string): string {
  return message
    .replace(/\r?\n$/, "")
    .replace(/[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

/** The printed line: `instance zone | time message`, or one JSON object {time, instance, zone?, release?, message}. */
export function formatEvent(event: LogEvent, placement: StreamPlacement | undefined, json: boolean): string {
  const time = new Date(event.time).toISOString();
  const message = event.message.replace(/\r?\n$/, "");
  if (json)
    return JSON.stringify({
      time,
      instance: event.stream,
      ...(placement?.zone ? { zone: placement.zone } : {}),
      ...(placement?.release ? { release: placement.release } : {}),
      message,
    });
  return `${event.stream}${placement?.zone ? ` ${placement.zone}` : ""} | ${time} ${printable(message)}`;
}
