/**
 * The canary's error-rate rule, shared by every deploy target (HAProxy counters locally,
 * CloudWatch's ALB metrics on AWS). Pure.
 */

/** Requests a release answered in the canary window, and how many of them were errors. */
export interface RequestCounts {
  readonly requests: number;
  readonly errors: number;
}

/** How far the canary's error rate may exceed the current release's: one percentage point. */
const TOLERANCE = 0.01;

/**
 * The canary passes while it answered no errors, or its share of error answers is at most one
 * percentage point over the current release's. No requests yet counts as no errors.
 */
export function compareErrorRates(canary: RequestCounts, current: RequestCounts): { ok: boolean; detail: string } {
  const rate = (c: RequestCounts) => (c.requests > 0 ? c.errors / c.requests : 0);
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  const detail = `canary answered ${canary.requests} requests with ${canary.errors} errors (${pct(rate(canary))}); current release ${pct(rate(current))}`;
  return { ok: canary.errors === 0 || rate(canary) <= rate(current) + TOLERANCE, detail };
}

/** Adds up counts (several target groups or servers of one side of the split). */
export function sumCounts(counts: readonly RequestCounts[]): RequestCounts {
  return { requests: counts.reduce((n, c) => n + c.requests, 0), errors: counts.reduce((n, c) => n + c.errors, 0) };
}
