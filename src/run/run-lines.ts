/**
 * The two lines a foreground `kiln run` prints on stderr that scripts and `npm run bench` read:
 * the app is healthy, and the VM has stopped (after which kiln exits at once). Their wording is
 * an interface: the formatters and the parser live together so they change together.
 *
 * Timing Ctrl-C to exit (the bench): start `kiln run REF --quiet`, read stderr line by line until
 * parseRunLine says "healthy", send SIGINT, and time until the process exits; the "stopped" line
 * comes just before the exit (test/integration/run-exit.test.ts holds kiln to that).
 */
import { formatSeconds } from "../progress.js";

/** How a VM ended, in words (kiln run and kiln logs say it the same way). */
const STOP_WORDS: Record<string, string> = {
  clean: "clean",
  "app-killed": "the app did not stop within its stopTimeout and was killed",
  killed: "the VM was killed",
  "already-stopped": "it powered itself off",
  "stopped-unwatched": "found stopped",
};

export function describeStop(how: string): string {
  return STOP_WORDS[how] ?? how;
}

/** `kiln: hello:1.0 is healthy at http://127.0.0.1:8080/ after 6.42s (boot to healthy)` */
export function healthyLine(ref: string, url: string, afterMs: number): string {
  return `kiln: ${ref} is healthy at ${url} after ${formatSeconds(afterMs)} (boot to healthy)\n`;
}

/** `kiln: VM stopped (clean); its console stays readable: kiln logs 1a2b3c4d` */
export function stoppedLine(how: string, keptId?: string): string {
  return `kiln: VM stopped (${describeStop(how)})${keptId ? `; its console stays readable: kiln logs ${keptId}` : ""}\n`;
}

export type RunLine =
  | { readonly kind: "healthy"; readonly ref: string; readonly url: string; readonly bootToHealthySeconds: number }
  | { readonly kind: "stopped"; readonly how: string };

const HEALTHY = /^kiln: (\S+) is healthy at (\S+) after (\d+(?:\.\d+)?)s \(boot to healthy\)$/;
const STOPPED = /^kiln: VM stopped \((.*?)\)(?:;|$)/;

/**
 * Reads one stderr line of `kiln run`: the healthy line, the stopped line (`how` as RunEnding:
 * clean, app-killed, killed, already-stopped), or undefined for every other line.
 */
export function parseRunLine(line: string): RunLine | undefined {
  const text = line.replace(/\r?\n$/, "");
  const healthy = HEALTHY.exec(text);
  if (healthy) return { kind: "healthy", ref: healthy[1]!, url: healthy[2]!, bootToHealthySeconds: Number(healthy[3]) };
  const stopped = STOPPED.exec(text);
  if (!stopped) return undefined;
  const how = Object.entries(STOP_WORDS).find(([, words]) => words === stopped[1])?.[0] ?? stopped[1]!;
  return { kind: "stopped", how };
}
