/** Progress on stderr as timed steps; results go to stdout, so --json output stays clean. */
export interface Progress {
  step<T>(label: string, work: () => Promise<T>, describe?: (result: T) => string): Promise<T>;
  info(message: string): void;
}

export function stderrProgress(options: { quiet?: boolean } = {}): Progress {
  const write = (text: string) => {
    if (!options.quiet) process.stderr.write(text);
  };
  return {
    async step(label, work, describe) {
      const started = performance.now();
      try {
        const result = await work();
        const detail = describe ? describe(result) : "";
        write(`  ${label.padEnd(34)} ${formatSeconds(performance.now() - started)}${detail ? `  ${detail}` : ""}\n`);
        return result;
      } catch (error) {
        write(`  ${label.padEnd(34)} failed after ${formatSeconds(performance.now() - started)}\n`);
        throw error;
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
