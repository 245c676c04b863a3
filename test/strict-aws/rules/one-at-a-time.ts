/**
 * Runs `work` for one key at a time (per rule): AWS decides "is this name or token taken, then
 * create" as one step, while moto's threaded server checks and inserts without a lock. A request
 * racing another for the same key waits for it, then sees its result.
 */
import type { RuleContext } from "../layer.js";
import type { AwsResponse } from "../protocol.js";

export function oneAtATime(ctx: RuleContext, rule: string, key: string, work: () => Promise<AwsResponse>): Promise<AwsResponse> {
  const queues = ctx.state(`${rule}/queues`, () => new Map<string, Promise<unknown>>());
  const mine = (queues.get(key) ?? Promise.resolve()).then(work, work);
  queues.set(
    key,
    mine.catch(() => undefined),
  );
  return mine;
}
