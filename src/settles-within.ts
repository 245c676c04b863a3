/**
 * Waits for `work` to settle, or for `ms` to pass, whichever comes first. The timer is cleared as
 * soon as `work` settles: a bare Promise.race against setTimeout leaves the timer armed, and an
 * armed timer keeps Node (and so kiln) running until it fires (issue 14: `kiln run` sat out the
 * whole 20 s power-button grace period after its VM had already stopped).
 */
export async function settlesWithin<T>(work: Promise<T>, ms: number): Promise<{ settled: true; value: T } | { settled: false }> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<{ settled: false }>((resolve) => {
    timer = setTimeout(() => resolve({ settled: false }), ms);
  });
  try {
    return await Promise.race([work.then((value) => ({ settled: true as const, value })), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}
