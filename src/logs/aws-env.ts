/**
 * kiln logs --env for an AWS environment: the group /kiln/<app>/<env> read as one time-ordered
 * view, each line prefixed with its instance (the stream) and the instance's zone; following
 * polls for new events until Ctrl-C.
 */
import type { AwsClients } from "../aws/clients.js";
import { instanceZones } from "../aws/ec2-instances.js";
import { AwsError } from "../aws/errors.js";
import { readLogEvents } from "../aws/logs.js";
import { formatEvent, type LogEvent, matchesFilter, SeenEvents, type StreamPlacement, takeOrdered } from "./events.js";

/**
 * How far back each poll reads from the newest event seen. The guest ships in batches stamped
 * with each line's own time, so a batch can land after newer lines of another instance; reading
 * a little earlier (and dropping what was printed) shows such lines instead of losing them.
 */
export const FOLLOW_LOOKBACK_MS = 30_000;
export const FOLLOW_INTERVAL_MS = 2000;

export interface AwsEnvLogOptions {
  readonly clients: AwsClients;
  readonly group: string;
  /** Epoch milliseconds to read from. */
  readonly since: number;
  readonly follow: boolean;
  readonly filter?: string;
  readonly json: boolean;
  /** --release: only its instances' streams, and lines name it. */
  readonly release?: { readonly id: string; readonly instances: readonly string[] };
  readonly missingHint: string;
  readonly signal: AbortSignal;
  readonly onLine: (line: string) => void;
  /** Told once when zones cannot be looked up (lines still print, without zones). */
  readonly onWarning?: (text: string) => void;
  readonly intervalMs?: number;
  readonly pageSize?: number;
}

const INSTANCE_ID = /^i-[0-9a-f]{8,17}$/;

/** Prints the environment's events; returns how many were printed. */
export async function showAwsEnvLogs(options: AwsEnvLogOptions): Promise<number> {
  const seen = new SeenEvents();
  const placements = new Map<string, StreamPlacement>();
  let start = options.since;
  let newest = options.since;
  let printed = 0;
  const print = async (events: readonly LogEvent[]) => {
    await placeStreams(options, placements, events);
    for (const e of events) {
      options.onLine(formatEvent(e, placements.get(e.stream), options.json));
      printed++;
    }
  };
  for (;;) {
    let held: LogEvent[] = [];
    try {
      for await (const page of readLogEvents(options.clients, {
        group: options.group,
        startTime: start,
        signal: options.signal,
        missingHint: options.missingHint,
        ...(options.release ? { streams: options.release.instances } : {}),
        ...(options.pageSize ? { pageSize: options.pageSize } : {}),
      })) {
        // Every event read moves the next poll's start, printed or filtered out: a --filter that
        // matches nothing must not make each poll read the whole --since window again.
        for (const e of page.events) if (e.time > newest) newest = e.time;
        const fresh = page.events.filter((e) => matchesFilter(e.message, options.filter) && seen.admit(e));
        const taken = takeOrdered(held, fresh, page.last);
        held = taken.held;
        await print(taken.ready);
      }
    } catch (error) {
      // Ctrl-C while a request is out: stop quietly, as between polls.
      if (options.signal.aborted) break;
      throw error;
    }
    if (!options.follow || options.signal.aborted) break;
    await sleep(options.intervalMs ?? FOLLOW_INTERVAL_MS, options.signal);
    if (options.signal.aborted) break;
    start = Math.max(options.since, newest - FOLLOW_LOOKBACK_MS);
    seen.forget(start);
  }
  return printed;
}

/** Zones of the streams not placed yet, in one DescribeInstances per batch; a gone instance stays zoneless. */
async function placeStreams(options: AwsEnvLogOptions, placements: Map<string, StreamPlacement>, events: readonly LogEvent[]) {
  const unknown = [...new Set(events.map((e) => e.stream))].filter((s) => !placements.has(s));
  if (unknown.length === 0) return;
  const ids = unknown.filter((s) => INSTANCE_ID.test(s));
  let zones = new Map<string, string>();
  if (ids.length) {
    try {
      zones = await instanceZones(options.clients, ids);
    } catch (error) {
      // The lines matter more than their zones: without ec2:DescribeInstances they print without them.
      if (!(error instanceof AwsError && /AccessDenied|UnauthorizedOperation/.test(error.code))) throw error;
      options.onWarning?.(`${error.message}; lines are shown without zones${error.hint ? ` (${error.hint})` : ""}`);
    }
  }
  for (const stream of unknown) {
    const zone = zones.get(stream);
    placements.set(stream, {
      ...(zone ? { zone } : {}),
      ...(options.release ? { release: options.release.id } : {}),
    });
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}
