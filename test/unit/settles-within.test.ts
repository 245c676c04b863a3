// settlesWithin clears its timer once the work settles: an armed timer keeps kiln's process
// alive (issue 14: `kiln run` waited out a 20 s grace timer after its VM had stopped).
import { describe, expect, it } from "vitest";
import { settlesWithin } from "../../src/settles-within.js";

const armedTimers = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;

describe("settlesWithin", () => {
  it("returns the value and leaves no timer armed when the work settles first", async () => {
    const before = armedTimers();
    expect(await settlesWithin(Promise.resolve(7), 60_000)).toEqual({ settled: true, value: 7 });
    expect(armedTimers()).toBe(before);
  });

  it("clears the timer when the work rejects, and passes the rejection on", async () => {
    const before = armedTimers();
    await expect(settlesWithin(Promise.reject(new Error("gone")), 60_000)).rejects.toThrow("gone");
    expect(armedTimers()).toBe(before);
  });

  it("says not settled when the time runs out first", async () => {
    const never = new Promise<number>(() => undefined);
    expect(await settlesWithin(never, 10)).toEqual({ settled: false });
  });
});
