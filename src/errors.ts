/**
 * Every failure a user can act on is a KilnError: a message that says what went wrong,
 * and a hint that says what to do about it. The CLI prints both and exits with `exitCode`.
 * Stack traces are only shown with --debug.
 */
export class KilnError extends Error {
  readonly hint: string | undefined;
  readonly exitCode: number = 1;

  constructor(message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.hint = options.hint;
  }
}

/** The user's input (kiln.yml, flags, app directory) is wrong. */
export class InputError extends KilnError {
  override readonly exitCode = 2;
}

/** A kiln.yml or flag set with one or more problems; all of them are listed at once. */
export class SpecError extends InputError {
  readonly problems: readonly string[];
  /** The file (or app directory) the problems are about. */
  readonly source: string;

  constructor(source: string, problems: readonly string[], hint?: string) {
    super(
      `${source} has ${problems.length} problem${problems.length === 1 ? "" : "s"}:\n${problems.map((p) => `  - ${p}`).join("\n")}`,
      hint === undefined ? {} : { hint },
    );
    this.problems = problems;
    this.source = source;
  }
}

/** A program kiln needs is not installed. */
export class ToolMissingError extends KilnError {
  override readonly exitCode = 3;
  readonly tool: string;
  readonly debianPackage: string;

  constructor(tool: string, debianPackage: string) {
    super(`${tool} is not installed`, { hint: `install it with: apt-get install ${debianPackage}` });
    this.tool = tool;
    this.debianPackage = debianPackage;
  }
}

/** A subprocess failed; the message starts with its command line and ends with its stderr tail. */
export class CommandFailedError extends KilnError {
  override readonly exitCode = 4;
  readonly command: string;
  readonly stderrTail: string;

  constructor(command: string, reason: string, stderrTail: string, hint?: string) {
    super(`${command}\n  ${reason}${stderrTail ? `\n${indent(stderrTail)}` : ""}`, hint === undefined ? {} : { hint });
    this.command = command;
    this.stderrTail = stderrTail;
  }
}

/** The image booted but the app never answered its health check. */
export class UnhealthyError extends KilnError {
  override readonly exitCode = 5;
}

export class NotFoundError extends KilnError {
  override readonly exitCode = 6;
}

function indent(text: string): string {
  return text
    .split("\n")
    .map((line) => `  | ${line}`)
    .join("\n");
}
