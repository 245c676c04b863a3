// kiln logs --env, the pure parts: --since, time order with ties, paging hold-back, follow dedup,
// --filter, printed lines (text and JSON), the local merge's --since/--filter/--json, and what a
// denied or missing FilterLogEvents says.
import { describe, expect, it } from "vitest";
import { translateAwsError } from "../../src/aws/errors.js";
import { InputError } from "../../src/errors.js";
import { formatEvent, type LogEvent, matchesFilter, orderEvents, printable, SeenEvents, takeOrdered } from "../../src/logs/events.js";
import { parseSince } from "../../src/logs/since.js";
import { keepMerged, mergeConsoles, mergedJson } from "../../src/run/console-merge.js";

const NOW = Date.parse("2026-11-29T20:00:00.000Z");
const ev = (time: number, stream: string, id: string, message = `${stream}-${id}`): LogEvent => ({ time, stream, id, message });

describe("parseSince", () => {
  it("takes durations back from now", () => {
    expect(parseSince("30s", NOW)).toBe(NOW - 30_000);
    expect(parseSince("10m", NOW)).toBe(NOW - 600_000);
    expect(parseSince("2h", NOW)).toBe(NOW - 7_200_000);
    expect(parseSince("1d", NOW)).toBe(NOW - 86_400_000);
    expect(parseSince("0s", NOW)).toBe(NOW);
    expect(parseSince("999999999d", NOW)).toBe(0);
  });

  it("takes ISO times with their zone, and plain dates as UTC", () => {
    expect(parseSince("2026-11-29T19:00:00Z", NOW)).toBe(NOW - 3_600_000);
    expect(parseSince("2026-11-29T19:00:00.250Z", NOW)).toBe(NOW - 3_600_000 + 250);
    expect(parseSince("2026-11-29T20:00:00+01:00", NOW)).toBe(NOW - 3_600_000);
    expect(parseSince("2026-11-29T19:30-00:30", NOW)).toBe(NOW);
    expect(parseSince("2026-11-29", NOW)).toBe(Date.parse("2026-11-29T00:00:00Z"));
  });

  it("refuses everything else with an example", () => {
    for (const bad of [
      "",
      "10",
      "10 m",
      "10min",
      "-5m",
      "1w",
      "yesterday",
      "2026-11-29T19:00:00",
      "2026-02-31",
      "2026-02-30T10:00Z",
      "now",
    ]) {
      let caught: unknown;
      try {
        parseSince(bad, NOW);
      } catch (error) {
        caught = error;
      }
      expect(caught, bad).toBeInstanceOf(InputError);
      expect((caught as InputError).message).toBe(`--since '${bad}': not a duration or a time`);
      expect((caught as InputError).hint).toMatch(/30s, 10m, 2h, 1d.*2026-11-29T20:00:00Z/);
    }
  });
});

describe("ordering and paging", () => {
  it("orders by time, equal times by stream, and keeps one stream's order within a millisecond", () => {
    const events = [ev(5, "i-b", "1"), ev(5, "i-a", "9"), ev(3, "i-b", "2"), ev(5, "i-a", "3"), ev(1, "i-c", "4")];
    expect(orderEvents(events).map((e) => e.message)).toEqual(["i-c-4", "i-b-2", "i-a-9", "i-a-3", "i-b-1"]);
    // Same answer whatever order the events arrive in.
    expect(orderEvents([...events].reverse()).map((e) => `${e.time}${e.stream}`)).toEqual(["1i-c", "3i-b", "5i-a", "5i-a", "5i-b"]);
  });

  it("holds a page's last millisecond until the next page, and lets everything go on the last", () => {
    const first = takeOrdered([], [ev(1, "i-b", "1"), ev(2, "i-b", "2")], false);
    expect(first.ready.map((e) => e.id)).toEqual(["1"]);
    expect(first.held.map((e) => e.id)).toEqual(["2"]);
    // The next page has the same millisecond from a stream that sorts first.
    const second = takeOrdered(first.held, [ev(2, "i-a", "3"), ev(4, "i-a", "4")], false);
    expect(second.ready.map((e) => e.id)).toEqual(["3", "2"]);
    const last = takeOrdered(second.held, [], true);
    expect(last.ready.map((e) => e.id)).toEqual(["4"]);
    expect(last.held).toEqual([]);
    expect(takeOrdered([], [], false)).toEqual({ ready: [], held: [] });
  });

  it("admits an event once while following, and forgets what the next read cannot reach", () => {
    const seen = new SeenEvents();
    expect(seen.admit(ev(10, "i-a", "1"))).toBe(true);
    expect(seen.admit(ev(10, "i-a", "1"))).toBe(false);
    // Event ids are per stream as far as kiln knows: the same id in another stream is another event.
    expect(seen.admit(ev(10, "i-b", "1"))).toBe(true);
    expect(seen.admit(ev(20, "i-a", "2"))).toBe(true);
    seen.forget(15);
    expect(seen.size).toBe(1);
    expect(seen.admit(ev(20, "i-a", "2"))).toBe(false);
  });
});

describe("filter and printed lines", () => {
  it("--filter matches the text as typed, anywhere, case-sensitive", () => {
    expect(matchesFilter('GET /a "quoted" [x]', '"quoted" [x]')).toBe(true);
    expect(matchesFilter("UNAUTHORIZED", "AUTHORIZED")).toBe(true);
    expect(matchesFilter("error", "ERROR")).toBe(false);
    expect(matchesFilter("anything", undefined)).toBe(true);
  });

  it("prints instance, zone, time and the message; a gone instance by its id alone", () => {
    const e = ev(Date.parse("2026-11-29T20:00:00.123Z"), "i-0abc12345678", "1", "hello\n");
    expect(formatEvent(e, { zone: "eu-west-1a" }, false)).toBe("i-0abc12345678 eu-west-1a | 2026-11-29T20:00:00.123Z hello");
    expect(formatEvent(e, {}, false)).toBe("i-0abc12345678 | 2026-11-29T20:00:00.123Z hello");
    expect(JSON.parse(formatEvent(e, { zone: "eu-west-1a", release: "web-prod-r1" }, true))).toEqual({
      time: "2026-11-29T20:00:00.123Z",
      instance: "i-0abc12345678",
      zone: "eu-west-1a",
      release: "web-prod-r1",
      message: "hello",
    });
    expect(JSON.parse(formatEvent(e, undefined, true))).toEqual({
      time: "2026-11-29T20:00:00.123Z",
      instance: "i-0abc12345678",
      message: "hello",
    });
  });

  it("shows a log line's control characters instead of sending them to the terminal", () => {
    expect(printable("red \u001b[31mtext\u0007\r\n")).toBe("red \\x1b[31mtext\\x07");
    expect(printable("a\nb\tc")).toBe("a\\x0ab\tc");
    expect(JSON.parse(formatEvent(ev(0, "i-a", "1", "\u001b[2J"), {}, true)).message).toBe("\u001b[2J");
  });
});

describe("local merge: --since, --filter, --json", () => {
  const merged = mergeConsoles([
    { label: "web-1", lines: ["[    0.1] kernel line", "2026-11-29T20:00:01.000Z app started", "no stamp after it"] },
    { label: "web-2", lines: ["2026-11-29T19:59:59.000Z app early"] },
  ]);

  it("keeps lines at or after --since by their time (an unstamped line by the stamp before it; none before any stamp)", () => {
    const kept = merged.entries.filter((e) => keepMerged(e, "2026-11-29T20:00:00.000Z", undefined)).map((e) => e.line);
    expect(kept).toEqual(["2026-11-29T20:00:01.000Z app started", "no stamp after it"]);
    expect(merged.entries.filter((e) => keepMerged(e, undefined, "app")).map((e) => e.label)).toEqual(["web-2", "web-1"]);
  });

  it("prints JSON lines like an AWS environment's, without a zone", () => {
    expect(merged.entries.map(mergedJson).map((l) => JSON.parse(l))).toEqual([
      { instance: "web-1", message: "[    0.1] kernel line" },
      { time: "2026-11-29T19:59:59.000Z", instance: "web-2", message: "app early" },
      { time: "2026-11-29T20:00:01.000Z", instance: "web-1", message: "app started" },
      { time: "2026-11-29T20:00:01.000Z", instance: "web-1", message: "no stamp after it" },
    ]);
  });
});

describe("FilterLogEvents errors", () => {
  it("a denied read names the missing permission", () => {
    const denied = Object.assign(new Error("User is not authorized to perform: logs:FilterLogEvents"), {
      name: "AccessDeniedException",
      $metadata: { httpStatusCode: 400 },
    });
    const error = translateAwsError(denied, "FilterLogEvents", "log group /kiln/web/prod", "logs");
    expect(error.message).toMatch(/^AWS FilterLogEvents on log group \/kiln\/web\/prod failed: AccessDeniedException/);
    expect((error as InputError).hint).toMatch(/lack permission logs:FilterLogEvents on log group \/kiln\/web\/prod/);
  });
});
