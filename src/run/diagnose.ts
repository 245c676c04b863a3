/**
 * Why a VM's app never became healthy, read from its console (pure): the init says when the app
 * starts and exits ("kiln-init: starting app: …", "kiln-init: app exited with status N …"), and
 * the app's own lines say what it tried. The message follows that evidence; the hint about
 * listening on 0.0.0.0 is only for an app that runs while its port stays closed.
 */
import { isAppLine, splitConsole } from "./console-lines.js";

const STAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z /;
const STARTING = /kiln-init: starting app: /;
const EXITED = /kiln-init: app exited with status (\d+)/;
const CRASH_LOOP_OFF = /kiln-init: app keeps crashing: powering off/;
const FATAL = /kiln-init: FATAL: (.*)$/;
// errno's name (Node, Python: "EROFS") or strerror's words (C, Java: "Read-only file system").
const READ_ONLY = /\bEROFS\b|\b[Rr]ead-only file system\b/;

export type StartDiagnosis =
  | { readonly kind: "boot-failed"; readonly detail: string }
  | { readonly kind: "not-started"; readonly lastLine: string | undefined }
  | { readonly kind: "read-only"; readonly line: string; readonly exitStatus: number | undefined; readonly lastLines: readonly string[] }
  | {
      readonly kind: "exited";
      readonly exitStatus: number;
      readonly exits: number;
      readonly poweredOff: boolean;
      readonly lastLines: readonly string[];
    }
  | { readonly kind: "answers-badly"; readonly httpStatus: number }
  | { readonly kind: "port-closed" };

function lastIndexOf(lines: readonly string[], pattern: RegExp): number {
  for (let i = lines.length - 1; i >= 0; i--) if (pattern.test(lines[i]!)) return i;
  return -1;
}

function withoutStamp(line: string): string {
  return line.replace(STAMP, "");
}

/**
 * Classifies a start failure. `httpStatus` is the health check's last answer, if any: an app
 * that answered listens where it should, whatever its console says.
 */
export function diagnoseStart(consoleText: string, httpStatus?: number): StartDiagnosis {
  const lines = splitConsole(consoleText.endsWith("\n") ? consoleText : `${consoleText}\n`).lines.filter((l) => l.trim() !== "");
  const fatal = lines.map((l) => FATAL.exec(withoutStamp(l))).find((m) => m);
  if (fatal) return { kind: "boot-failed", detail: fatal[1]! };
  const lastStart = lastIndexOf(lines, STARTING);
  if (lastStart < 0) return { kind: "not-started", lastLine: lines.at(-1) };
  if (httpStatus !== undefined) return { kind: "answers-badly", httpStatus };
  const exits = lines.filter((l) => EXITED.test(l));
  const lastExit = lastIndexOf(lines, EXITED);
  const readOnlyIn = (from: number, to?: number) =>
    lines
      .slice(from, to)
      .filter((l) => isAppLine(l))
      .find((l) => READ_ONLY.test(l));
  if (lastExit < lastStart) {
    // The app runs now (started again after any earlier exit): its current run is the evidence.
    const readOnly = readOnlyIn(lastStart + 1);
    if (readOnly) return { kind: "read-only", line: withoutStamp(readOnly), exitStatus: undefined, lastLines: [] };
    return { kind: "port-closed" };
  }
  // The app's lines of the run the last exit status belongs to.
  const runStart = lastIndexOf(lines.slice(0, lastExit), STARTING);
  const lastLines = lines
    .slice(runStart + 1, lastExit)
    .filter((l) => isAppLine(l))
    .slice(-15)
    .map(withoutStamp);
  const exitStatus = Number(EXITED.exec(lines[lastExit]!)![1]);
  const readOnly = readOnlyIn(0);
  if (readOnly) return { kind: "read-only", line: withoutStamp(readOnly), exitStatus, lastLines };
  return { kind: "exited", exitStatus, exits: exits.length, poweredOff: lines.some((l) => CRASH_LOOP_OFF.test(l)), lastLines };
}

export interface StartFailureReport {
  readonly message: string;
  readonly hint: string;
}

/** The words for a diagnosis (after "REF never became healthy: "): what happened, with the app's last lines, and what to do. */
export function describeStartFailure(
  diagnosis: StartDiagnosis,
  context: { readonly port: number | undefined; readonly healthPath: string; readonly consoleFile: string },
): StartFailureReport {
  const port = context.port ?? "PORT";
  const full = `the full console: ${context.consoleFile} (or kiln logs)`;
  const quote = (lines: readonly string[]) => (lines.length > 0 ? `\n--- the app's last lines ---\n${lines.join("\n")}` : "");
  switch (diagnosis.kind) {
    case "boot-failed":
      return {
        message: `the VM did not boot: ${diagnosis.detail}`,
        hint: `the image's init stopped before starting the app; ${full}`,
      };
    case "not-started":
      return {
        message: `the VM never started the app${diagnosis.lastLine ? ` (the console's last line: ${diagnosis.lastLine})` : ""}`,
        hint: `the VM did not get as far as the app: give it more time with --health-timeout, or read ${full}`,
      };
    case "read-only":
      return {
        message:
          "the app tried to write to a read-only file system" +
          `${diagnosis.exitStatus !== undefined ? ` and exited with status ${diagnosis.exitStatus}` : ""}: ` +
          `${diagnosis.line}${quote(diagnosis.lastLines)}`,
        hint:
          "/app (the app's files) and the whole root are read-only in a kiln image: write under /tmp (the app's $HOME unless " +
          `env: sets HOME), a RAM disk emptied at every boot, and keep lasting data in a database or object store; ${full}`,
      };
    case "exited": {
      const times =
        diagnosis.exits > 1 ? ` (${diagnosis.exits} times${diagnosis.poweredOff ? "; the init then powered the VM off" : ""})` : "";
      return {
        message: `the app exited with status ${diagnosis.exitStatus}${times}${quote(diagnosis.lastLines)}`,
        hint:
          `the app stopped on its own before answering ${context.healthPath}: fix what its last lines say ` +
          `(a missing setting? pass it with -e NAME=value); ${full}`,
      };
    }
    case "answers-badly":
      return {
        message: `the app answers, but ${context.healthPath} gave HTTP ${diagnosis.httpStatus}`,
        hint: `the health check needs a 2xx or 3xx answer: fix healthcheck.path in kiln.yml or the app's handler; ${full}`,
      };
    case "port-closed":
      return {
        message: `the app is running but nothing answers on port ${port}`,
        hint:
          `check that the app listens on 0.0.0.0:${port} (not 127.0.0.1 or localhost, which the forwarded port cannot reach) ` +
          `and answers ${context.healthPath}; ${full}`,
      };
  }
}

/** Whether the init had to kill the app after stopTimeout during the last shutdown (the console says so). */
export function appKilledAtStop(consoleText: string): boolean {
  const at = consoleText.lastIndexOf("kiln-init: shutdown requested");
  return at >= 0 && /kiln-init: app did not stop in \d+s: killing it/.test(consoleText.slice(at));
}
