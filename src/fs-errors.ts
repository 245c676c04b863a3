/**
 * File system failures caused by what the user handed kiln (an unreadable file, a path too
 * long for the kernel, a link loop) become InputErrors naming the file, instead of
 * "unexpected error" and a stack trace.
 */
import { InputError } from "./errors.js";

const EXPLAINED: Readonly<Record<string, { what: string; hint: string }>> = {
  EACCES: {
    what: "cannot be read (permission denied)",
    hint: "make it readable by the user running kiln (chmod a+r, or a+rx for a directory), or remove it",
  },
  EPERM: { what: "cannot be read (operation not permitted)", hint: "check its permissions and attributes (lsattr), or remove it" },
  ENAMETOOLONG: {
    what: "has a path too long for the file system (over 4095 bytes, or a name over 255)",
    hint: "shorten the directory names, or move the deep tree out of the app",
  },
  ELOOP: { what: "is a symbolic link loop", hint: "fix or remove the link" },
};

/** The InputError for a file system error on a user's file, or undefined when it is not one of those. */
export function fsInputError(error: unknown, context?: string): InputError | undefined {
  const e = error as NodeJS.ErrnoException | undefined;
  if (!e || typeof e.code !== "string" || !(e.code in EXPLAINED)) return undefined;
  const { what, hint } = EXPLAINED[e.code]!;
  const file = typeof e.path === "string" ? e.path : undefined;
  const subject = context ?? (file !== undefined ? shorten(file) : "a file");
  return new InputError(`${subject} ${what}`, { hint, cause: error });
}

/** An over-long path is shown by its start and end; the middle is what made it too long. */
function shorten(file: string): string {
  return file.length > 240 ? `${file.slice(0, 120)}…${file.slice(-100)}` : file;
}
