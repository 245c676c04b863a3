/** Waits until the app answers its health check over HTTP (2xx or 3xx), or gives up. */
import http from "node:http";

export type HealthOutcome =
  | { healthy: true; status: number; afterMs: number }
  | { healthy: false; reason: string; afterMs: number; lastStatus?: number };

export function probeHttp(url: string, timeoutMs: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const request = http.get(url, { timeout: timeoutMs, agent: false }, (response) => {
      response.resume();
      resolve(response.statusCode);
    });
    request.on("timeout", () => request.destroy());
    request.on("error", () => resolve(undefined));
  });
}

/**
 * Polls `url` until it answers 2xx/3xx, `stop` resolves (the VM died), or `timeoutMs` passes.
 * Polling is the only way to learn when a guest's app starts listening.
 */
export async function waitHealthy(
  url: string,
  timeoutMs: number,
  stop: Promise<string>,
  startedAt = performance.now(),
): Promise<HealthOutcome> {
  let stopped: string | undefined;
  void stop.then((reason) => (stopped = reason));
  let last = "no answer yet";
  let lastStatus: number | undefined;
  while (performance.now() - startedAt < timeoutMs) {
    if (stopped !== undefined)
      return {
        healthy: false,
        reason: stopped,
        afterMs: performance.now() - startedAt,
        ...(lastStatus !== undefined ? { lastStatus } : {}),
      };
    const status = await probeHttp(url, 2000);
    if (status !== undefined && status >= 200 && status < 400) return { healthy: true, status, afterMs: performance.now() - startedAt };
    if (status !== undefined) {
      last = `last answer: HTTP ${status}`;
      lastStatus = status;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    healthy: false,
    reason: `no healthy answer from ${url} within ${Math.round(timeoutMs / 1000)}s (${last})`,
    afterMs: performance.now() - startedAt,
    ...(lastStatus !== undefined ? { lastStatus } : {}),
  };
}
