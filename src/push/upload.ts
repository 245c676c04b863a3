/**
 * The block upload engine: many PutSnapshotBlock calls in flight (bounded), each retried with
 * exponential backoff and full jitter when the error is transient, under two budgets: retries per
 * block, and retries of the whole upload (a persistent outage stops early instead of retrying
 * every block in turn). A block write is idempotent (same index, same bytes, same checksum), so
 * retrying one is always safe. Right after StartSnapshot the snapshot may not be visible yet
 * ("does not exist"): the first block goes alone and waits that out before the others start.
 * Pure apart from the injected read/put/sleep, so it is unit-tested.
 */
import { KilnError } from "../errors.js";

export interface UploadOptions {
  readonly indexes: readonly number[];
  readonly read: (index: number) => Promise<Buffer>;
  readonly checksum: (data: Buffer) => string;
  readonly put: (index: number, data: Buffer, checksum: string) => Promise<void>;
  /** Errors worth another attempt (throttling, 5xx, dropped connections). */
  readonly isRetryable: (error: unknown) => boolean;
  /** "The snapshot does not exist" right after it was started: retried on the first block for up to visibilityWaitMs. */
  readonly isNotYetVisible?: (error: unknown) => boolean;
  readonly visibilityWaitMs?: number;
  readonly concurrency: number;
  /** Retries of one block. */
  readonly maxRetries: number;
  /** Retries of all blocks together; default 20 + one per block. */
  readonly retryBudget?: number;
  readonly baseDelayMs?: number;
  readonly maxDelayMs?: number;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly random?: () => number;
  /** Called after each block is stored. */
  readonly onBlock?: (index: number, checksum: string, bytes: number) => void;
  readonly signal?: AbortSignal;
}

export interface UploadStats {
  readonly checksums: Map<number, string>;
  readonly bytes: number;
  readonly retries: number;
  readonly maxInFlight: number;
}

export class UploadInterrupted extends KilnError {
  override readonly exitCode = 130;
}

/** Transient errors outlasted a retry budget; `last` is the final error, `stored` the blocks written. */
export class RetriesExhausted extends KilnError {
  override readonly exitCode = 7;
  constructor(
    message: string,
    readonly last: unknown,
    readonly retries: number,
    readonly stored: number,
  ) {
    super(message, { cause: last });
  }
}

function describe(error: unknown): string {
  const e = error as { name?: string; message?: string };
  return `${e.name ?? "Error"}: ${e.message ?? String(error)}`;
}

export async function uploadBlocks(options: UploadOptions): Promise<UploadStats> {
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const random = options.random ?? Math.random;
  const base = options.baseDelayMs ?? 100;
  const cap = options.maxDelayMs ?? 10_000;
  const budget = options.retryBudget ?? 20 + options.indexes.length;
  const notYetVisible = options.isNotYetVisible ?? (() => false);
  const checksums = new Map<number, string>();
  let next = 0;
  let bytes = 0;
  let retries = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  let failure: unknown;

  // Full jitter: spreads 64 workers' retries instead of synchronising them.
  const backoff = (attempt: number) => Math.round(random() * Math.min(cap, base * 2 ** attempt));
  const exhausted = (index: number, why: string, error: unknown) =>
    new RetriesExhausted(
      `block ${index}: ${why} (${retries} retries in all); last error ${describe(error)}`,
      error,
      retries,
      checksums.size,
    );

  async function sendWithRetries(index: number, data: Buffer, checksum: string): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await options.put(index, data, checksum);
        return;
      } catch (error) {
        if (!options.isRetryable(error) && !notYetVisible(error)) throw error;
        // Another block already failed: stop rather than spend retries on a lost cause.
        if (failure !== undefined) throw error;
        if (attempt >= options.maxRetries) throw exhausted(index, `gave up after ${attempt + 1} attempts`, error);
        if (retries >= budget) throw exhausted(index, `the upload's retry budget of ${budget} is spent`, error);
        retries++;
        await sleep(backoff(attempt));
      }
    }
  }

  /** The first block alone: waits (bounded) for a just-started snapshot to accept writes. */
  async function sendFirst(index: number): Promise<void> {
    const data = await options.read(index);
    const checksum = options.checksum(data);
    const limit = options.visibilityWaitMs ?? 120_000;
    let waited = 0;
    let transient = 0;
    for (let attempt = 0; ; attempt++) {
      try {
        await options.put(index, data, checksum);
        break;
      } catch (error) {
        const visibility = notYetVisible(error);
        if (!visibility && !options.isRetryable(error)) throw error;
        if (!visibility && transient++ >= options.maxRetries) throw exhausted(index, `gave up after ${transient} failed attempts`, error);
        if (visibility && waited >= limit) throw exhausted(index, `the snapshot was still not visible after ${waited} ms`, error);
        retries++;
        // Capped low: visibility comes within seconds, and a long sleep after it only delays the whole upload.
        const delay = Math.max(1, backoff(Math.min(attempt, 4)));
        waited += delay;
        await sleep(delay);
      }
    }
    checksums.set(index, checksum);
    bytes += data.length;
    options.onBlock?.(index, checksum, data.length);
  }

  async function worker(): Promise<void> {
    while (failure === undefined && next < options.indexes.length) {
      if (options.signal?.aborted) throw new UploadInterrupted("upload interrupted");
      const index = options.indexes[next++]!;
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      try {
        const data = await options.read(index);
        const checksum = options.checksum(data);
        await sendWithRetries(index, data, checksum);
        checksums.set(index, checksum);
        bytes += data.length;
        options.onBlock?.(index, checksum, data.length);
      } catch (error) {
        failure ??= error;
      } finally {
        inFlight--;
      }
    }
  }

  if (options.isNotYetVisible && options.indexes.length > 0) {
    if (options.signal?.aborted) throw new UploadInterrupted("upload interrupted");
    maxInFlight = 1;
    await sendFirst(options.indexes[next++]!);
  }
  const left = options.indexes.length - next;
  const workers = Array.from({ length: Math.max(1, Math.min(options.concurrency, left)) }, () => worker());
  const results = await Promise.allSettled(workers);
  const interrupted = results.find((r) => r.status === "rejected");
  if (failure !== undefined) throw failure;
  if (interrupted) throw (interrupted as PromiseRejectedResult).reason;
  return { checksums, bytes, retries, maxInFlight };
}
