/** `--canary 10%` and `--canary-for 5m` from the command line into CanarySettings, with errors that say what to type. */
import { InputError } from "../errors.js";
import type { CanarySettings } from "./plan.js";

/** "30s", "5m", "1h" or a bare number of minutes → seconds. */
export function parseDuration(text: string, what: string): number {
  const match = /^(\d+(?:\.\d+)?)(s|m|h)?$/.exec(text.trim());
  if (!match)
    throw new InputError(`${what}: '${text}' is not a duration`, { hint: "write it as 90s, 5m or 1h (a bare number means minutes)" });
  const seconds = Number(match[1]) * ({ s: 1, m: 60, h: 3600 }[match[2] ?? "m"] ?? 60);
  if (seconds < 1 || seconds > 24 * 3600) throw new InputError(`${what}: '${text}' must be between 1s and 24h`);
  return Math.round(seconds);
}

/**
 * The canary share is at most 50 %: a canary is a minority of the traffic, and the split must
 * leave the current release as the one the load balancer mostly serves (so a re-run after an
 * interruption still sees it as live).
 */
export function parseCanary(percent: string, duration = "5m", names = { percent: "--canary", duration: "--canary-for" }): CanarySettings {
  const match = /^(\d+)%?$/.exec(percent.trim());
  const value = match ? Number(match[1]) : NaN;
  if (!(value >= 1 && value <= 50))
    throw new InputError(`${names.percent}: '${percent}' must be a percentage from 1% to 50%`, {
      hint: "for example --canary 10% --canary-for 5m",
    });
  return { percent: value, seconds: parseDuration(duration, names.duration) };
}
