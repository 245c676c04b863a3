/**
 * A bounded retry with exponential backoff and full jitter for one idempotent AWS call of a push
 * (StartSnapshot with its ClientToken, CompleteSnapshot): AWS asks clients to retry 5xx and
 * throttling answers ("Error retries", Amazon EBS User Guide). Non-transient errors pass at once.
 */
import { RetriesExhausted } from "./upload.js";

export interface RetryPolicy {
  readonly attempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly random?: () => number;
}

export async function retryTransient<T>(
  what: string,
  call: () => Promise<T>,
  isRetryable: (error: unknown) => boolean,
  policy: RetryPolicy,
  onRetry?: () => void,
): Promise<T> {
  const sleep = policy.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const random = policy.random ?? Math.random;
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (!isRetryable(error)) throw error;
      if (attempt >= policy.attempts) {
        const detail = error instanceof Error ? error.message : String(error);
        throw new RetriesExhausted(`${what} kept failing after ${attempt} attempts: ${detail}`, error, attempt - 1, 0);
      }
      onRetry?.();
      await sleep(Math.round(random() * Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1))));
    }
  }
}
