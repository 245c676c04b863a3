/** The last lines of a serial console capture, without the carriage returns consoles write. */
export function consoleTailOf(text: string, lines = 20): string {
  return text.replace(/\r/g, "").trimEnd().split("\n").slice(-lines).join("\n");
}
