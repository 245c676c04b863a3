/**
 * Bounded retries for AWS's documented eventual consistency, the one place kiln waits without
 * an SDK waiter. Two cases:
 * - IAM ("Troubleshoot IAM: Changes that I make are not always immediately visible",
 *   https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency):
 *   a new instance profile is refused by RunInstances and CreateAutoScalingGroup for seconds.
 * - EC2 ("Eventual consistency in the Amazon EC2 API",
 *   https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html): a resource just
 *   created may answer Invalid*.NotFound to the next call that names it; AWS asks for retries
 *   with exponential backoff.
 * Only the named errors are retried, with exponential backoff and a time budget; anything else,
 * or the same error after the budget, is thrown as it came.
 */

export interface RetryBudget {
  /** Total time to keep retrying, ms. */
  readonly budgetMs: number;
  /** First delay, doubled after each retry up to maxDelayMs. */
  readonly firstDelayMs: number;
  readonly maxDelayMs: number;
}

/** A new instance profile: seconds usually, up to minutes at worst (Terraform waits 2 min). */
export const IAM_PROPAGATION: RetryBudget = { budgetMs: 120_000, firstDelayMs: 1000, maxDelayMs: 10_000 };
/** A new EC2 resource's id: AWS suggests starting with a couple of seconds and backing off. */
export const EC2_PROPAGATION: RetryBudget = { budgetMs: 60_000, firstDelayMs: 500, maxDelayMs: 8000 };

export interface ErrorShape {
  readonly name?: string;
  readonly code?: string;
  readonly message?: string;
}

const codeOf = (error: unknown) => (error as ErrorShape).code ?? (error as ErrorShape).name ?? "";

/** RunInstances (InvalidParameterValue) and CreateAutoScalingGroup (ValidationError) refusing a profile IAM has not spread yet. */
export function isInstanceProfilePropagation(error: unknown): boolean {
  const code = codeOf(error);
  return (
    (code === "InvalidParameterValue" || code === "ValidationError") &&
    /Invalid IAM Instance Profile/i.test(String((error as ErrorShape).message))
  );
}

/** EC2's "does not exist" codes for ids that were just returned by a create. */
const NOT_FOUND = /^Invalid(Group|InstanceID|AMIID|LaunchTemplateId|AllocationID|Snapshot|Volume)\.NotFound$/;

export function isNotYetVisible(error: unknown): boolean {
  return NOT_FOUND.test(codeOf(error));
}

/**
 * Runs `call`, and again after a growing delay while it fails with an error `retryable` accepts
 * and the budget lasts. `onRetry` hears each retry (progress, tests).
 */
export async function retryEventualConsistency<T>(
  call: () => Promise<T>,
  retryable: (error: unknown) => boolean,
  budget: RetryBudget,
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void,
): Promise<T> {
  const deadline = Date.now() + budget.budgetMs;
  let delay = budget.firstDelayMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (!retryable(error) || Date.now() + delay > deadline) throw error;
      onRetry?.(error, attempt, delay);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(budget.maxDelayMs, delay * 2);
    }
  }
}
