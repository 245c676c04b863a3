/**
 * The block upload engine: many PutSnapshotBlock calls in flight (bounded), each retried with
 * exponential backoff and jitter when AWS throttles or has a transient failure, any other error
 * stops the upload. Pure apart from the injected read/put/sleep, so it is unit-tested.
 */
import { KilnError } from "../errors.js";

export interface UploadOptions {
  readonly indexes: readonly number[];
  readonly read: (index: number) => Promise<Buffer>;
  readonly checksum: (data: Buffer) => string;
  readonly put: (index: number, data: Buffer, checksum: string) => Promise<void>;
  readonly isRetryable: (error: unknown) => boolean;
  readonly concurrency: number;
  readonly maxRetries: number;
  readonly baseDelayMs?: number;
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

export async function uploadBlocks(options: UploadOptions): Promise<UploadStats> {
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const random = options.random ?? Math.random;
  const base = options.baseDelayMs ?? 100;
  const checksums = new Map<number, string>();
  let next = 0;
  let bytes = 0;
  let retries = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  let failure: unknown;

  async function sendWithRetries(index: number, data: Buffer, checksum: string): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await options.put(index, data, checksum);
        return;
      } catch (error) {
        if (attempt >= options.maxRetries || !options.isRetryable(error)) throw error;
        retries++;
        // Full jitter: spreads 64 workers' retries instead of synchronising them.
        await sleep(Math.round(random() * Math.min(10_000, base * 2 ** attempt)));
      }
    }
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

  const workers = Array.from({ length: Math.max(1, Math.min(options.concurrency, options.indexes.length)) }, () => worker());
  const results = await Promise.allSettled(workers);
  const interrupted = results.find((r) => r.status === "rejected");
  if (failure !== undefined) throw failure;
  if (interrupted) throw (interrupted as PromiseRejectedResult).reason;
  return { checksums, bytes, retries, maxInFlight };
}
