/** Progress on stderr as timed steps; results go to stdout, so --json output stays clean. */
export interface Progress {
  step<T>(label: string, work: () => Promise<T>, describe?: (result: T) => string): Promise<T>;
  info(message: string): void;
  /** A counter of items a running step has done, shown in its "still running" lines. */
  counter?(label: string): () => void;
}

/** The counter of `label`'s items, or a no-op when the progress shows none. */
export function countFiles(progress: Progress, label: string): () => void {
  return progress.counter?.(label) ?? (() => {});
}

/** A stage that runs longer than this prints a line this often, so a big bake never looks hung. */
const HEARTBEAT_MS = 3000;

export interface ProgressOptions {
  readonly quiet?: boolean;
  readonly heartbeatMs?: number;
  /** Where lines go (stderr unless a test captures them). */
  readonly write?: (text: string) => void;
}

export function stderrProgress(options: ProgressOptions = {}): Progress {
  const write = (text: string) => {
    if (!options.quiet) (options.write ?? ((t: string) => process.stderr.write(t)))(text);
  };
  const counts = new Map<string, number>();
  return {
    counter(label) {
      counts.set(label, 0);
      return () => counts.set(label, (counts.get(label) ?? 0) + 1);
    },
    async step(label, work, describe) {
      const started = performance.now();
      const heartbeat = setInterval(() => {
        const n = counts.get(label);
        const done = n === undefined ? "" : `, ${n} files`;
        write(`  ${label.padEnd(34)} … ${formatSeconds(performance.now() - started)}${done}\n`);
      }, options.heartbeatMs ?? HEARTBEAT_MS);
      heartbeat.unref();
      try {
        const result = await work();
        const detail = describe ? describe(result) : "";
        write(`  ${label.padEnd(34)} ${formatSeconds(performance.now() - started)}${detail ? `  ${detail}` : ""}\n`);
        return result;
      } catch (error) {
        write(`  ${label.padEnd(34)} failed after ${formatSeconds(performance.now() - started)}\n`);
        throw error;
      } finally {
        clearInterval(heartbeat);
        counts.delete(label);
      }
    },
    info(message) {
      write(`${message}\n`);
    },
  };
}

export function formatSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)}s`;
}

export function formatBytes(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${bytes} B`;
}
