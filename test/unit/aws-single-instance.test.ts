// Pure parts of the AWS targets: history kept in tags, and the single-instance health gate
// (consecutive passes, reset on a failure, the last answer in the failure detail).
import { describe, expect, it } from "vitest";
import type { HistoryEntry } from "../../src/deploy/types.js";
import { appendHistory, historyFromTags } from "../../src/providers/aws/history.js";
import { gateHealthy, type ProbeResult } from "../../src/providers/aws/instance-health.js";

const entry = (n: number): HistoryEntry => ({
  release: `shop-prod-${n}`,
  image: { ref: `shop:${n}.0.0`, digest: `sha256:${String(n).padStart(64, "0")}` },
  result: "live",
  at: `2025-01-01T00:00:${String(n % 60).padStart(2, "0")}.000Z`,
});

function withEntries(count: number, extra: Record<string, string> = {}): Record<string, string> {
  let tags: Record<string, string> = { "kiln:app": "shop", "kiln:env": "prod", ...extra };
  for (let n = 1; n <= count; n++) {
    const { set, remove } = appendHistory(tags, entry(n), 40);
    tags = { ...tags, ...set };
    for (const key of remove) delete tags[key];
  }
  return tags;
}

describe("history in tags", () => {
  it("round-trips entries in order and ignores other tags", () => {
    const tags = withEntries(3, { "kiln:lock": "someone#1#ab 99", Name: "x" });
    expect(historyFromTags(tags)).toEqual([entry(1), entry(2), entry(3)]);
  });

  it("keeps the newest 40 entries (EC2 and ALB resources hold 50 tags)", () => {
    const tags = withEntries(45);
    const history = historyFromTags(tags);
    expect(history).toHaveLength(40);
    expect(history[0]!.release).toBe("shop-prod-6");
    expect(history.at(-1)!.release).toBe("shop-prod-45");
    expect(Object.keys(tags)).toHaveLength(42);
  });

  it("numbers after the newest key, so dropping old ones never reuses a number", () => {
    const { set } = appendHistory({ "kiln:h:000007": "live t d r x", "kiln:h:000003": "live t d r y" }, entry(9), 40);
    expect(Object.keys(set)).toEqual(["kiln:h:000008"]);
  });
});

function scripted(answers: ProbeResult[]) {
  let clock = 0;
  let calls = 0;
  return {
    check: async () => {
      calls++;
      return answers.shift() ?? { ok: false, detail: "HTTP 503" };
    },
    options: (threshold: number, deadline: number) => ({
      threshold,
      intervalMs: 1000,
      deadline,
      now: () => clock,
      sleep: async (ms: number) => {
        clock += ms;
      },
    }),
    calls: () => calls,
  };
}

describe("the single-instance health gate", () => {
  const ok = { ok: true, detail: "HTTP 200" };

  it("passes after `threshold` good answers in a row", async () => {
    const s = scripted([{ ok: false, detail: "ECONNREFUSED" }, ok, ok]);
    expect(await gateHealthy(s.check, s.options(2, 60_000))).toMatchObject({ healthy: true });
    expect(s.calls()).toBe(3);
  });

  it("starts counting again after a failure", async () => {
    const s = scripted([ok, { ok: false, detail: "HTTP 500" }, ok, ok, ok]);
    expect(await gateHealthy(s.check, s.options(3, 60_000))).toMatchObject({ healthy: true });
    expect(s.calls()).toBe(5);
  });

  it("fails at the deadline with the last answer", async () => {
    const s = scripted([ok, { ok: false, detail: "no answer within 5s" }]);
    const result = await gateHealthy(s.check, s.options(2, 2_000));
    expect(result.healthy).toBe(false);
    expect(result.detail).toBe("0 of 2 checks in a row passed; last answer: no answer within 5s");
  });
});
