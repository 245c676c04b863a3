/**
 * How many cases each property test tries: KILN_FUZZ_RUNS (npm run fuzz sets a large number),
 * else a bound that keeps `npm test` fast. fast-check prints the seed of a failing run, so a
 * finding can be replayed.
 */
export function fuzzRuns(fallback = 200): number {
  const wanted = Number(process.env.KILN_FUZZ_RUNS);
  return Number.isInteger(wanted) && wanted > 0 ? wanted : fallback;
}
