/**
 * The minimal kernel's configuration: fragments (kernel-configs/minimal*.config) laid over
 * `make tinyconfig`, and the check that `make olddefconfig` kept every line. Pure: text in,
 * text and problems out.
 */
import { InputError } from "../errors.js";
import { parseKernelConfig } from "../kmod/kconfig.js";

export interface FragmentLine {
  readonly option: string;
  /** As Kconfig writes it: y, n, a number, or a double-quoted string. */
  readonly value: string;
  /** file:line, for messages. */
  readonly where: string;
}

const LINE = /^(CONFIG_[A-Z0-9_]+)=(y|n|-?\d+|0x[0-9a-fA-F]+|"[^"\\]*")$/;

/** Every non-comment line must be `CONFIG_NAME=value`; anything else is a mistake worth naming. */
export function parseConfigFragment(text: string, file: string): FragmentLine[] {
  const lines: FragmentLine[] = [];
  const problems: string[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const m = LINE.exec(line);
    if (!m) problems.push(`${file}:${i + 1}: '${line.slice(0, 80)}' is not CONFIG_NAME=y|n|number|"string"`);
    else lines.push({ option: m[1]!, value: m[2]!, where: `${file}:${i + 1}` });
  });
  if (problems.length > 0) {
    throw new InputError(`kernel configuration fragment has lines kiln cannot use:\n${problems.map((p) => `  - ${p}`).join("\n")}`, {
      hint: "fix the fragment in kernel-configs/ (one CONFIG_NAME=value per line, # for comments)",
    });
  }
  return lines;
}

/** The lines as Kconfig reads them; appended to tinyconfig's .config, a later line wins. */
export function renderFragment(lines: readonly FragmentLine[]): string {
  return `${lines.map((l) => (l.value === "n" ? `# ${l.option} is not set` : `${l.option}=${l.value}`)).join("\n")}\n`;
}

/**
 * Lines the final .config does not honour. olddefconfig silently drops a setting whose
 * dependencies are off, so without this check a kernel could be built without a driver.
 */
export function unmetLines(lines: readonly FragmentLine[], finalConfig: string): string[] {
  const built = parseKernelConfig(finalConfig);
  const last = new Map<string, FragmentLine>();
  for (const l of lines) last.set(l.option, l);
  const unmet: string[] = [];
  for (const l of last.values()) {
    const got = built.get(l.option) ?? "n";
    if (got === l.value) continue;
    unmet.push(
      built.has(l.option) || l.value === "n"
        ? `${l.option}=${l.value} (${l.where}): the build has ${l.option}=${got}`
        : `${l.option}=${l.value} (${l.where}): the build left it unset (an option it depends on is off, or no such option in this kernel)`,
    );
  }
  return unmet;
}
