/** How many runs a property test makes: bounded in `npm test`, raised with KILN_FUZZ_RUNS for long runs. */
export function fuzzRuns(fallback = 200): number {
  const wanted = Number(process.env.KILN_FUZZ_RUNS);
  return Number.isInteger(wanted) && wanted > 0 ? wanted : fallback;
}

/** Long runs need a longer per-test timeout than vitest's default. */
export function fuzzTimeoutMs(runs: number, perRunMs: number): number {
  return Math.max(30_000, runs * perRunMs);
}
