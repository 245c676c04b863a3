/**
 * Splits a start command ("node server.js --port 8080") into argv without a shell: the image
 * has no shell, so anything that needs one (pipes, &&, $VARS, redirects) is refused with a
 * message that says how to write it instead.
 */
export function splitCommand(command: string): { argv: string[] } | { problem: string } {
  const argv: string[] = [];
  let current = "";
  let inWord = false;
  let quote: "'" | '"' | undefined;
  for (let i = 0; i < command.length; i++) {
    const c = command[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
      else if (quote === '"' && (c === "$" || c === "`"))
        return {
          problem: `uses the shell feature '${c}' inside double quotes, but kiln images have no shell; write the value itself, or put it under env: and read it in the app`,
        };
      else if (c === "\\" && quote === '"' && i + 1 < command.length) current += command[++i];
      else current += c;
      continue;
    }
    if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === "\\" && i + 1 < command.length) {
      current += command[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) argv.push(current);
      current = "";
      inWord = false;
    } else if ("|&;<>()`$*?".includes(c)) {
      return { problem: `uses the shell feature '${c}', but kiln images have no shell; give a plain program and its arguments` };
    } else {
      current += c;
      inWord = true;
    }
  }
  if (quote) return { problem: `has an unterminated ${quote} quote` };
  if (inWord) argv.push(current);
  if (argv.length === 0) return { problem: "is empty" };
  if (/^[A-Za-z_][A-Za-z0-9_]*=/.test(argv[0]!)) {
    return { problem: "starts with a VAR=value assignment; put environment variables under env: in kiln.yml" };
  }
  return { argv };
}
