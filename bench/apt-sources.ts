/**
 * The host's configured Debian mirror, read from its apt sources at run time: the bench builds
 * the usual-way image from the same mirror the host uses, and the repository names no mirror.
 * Both formats are read: one-line `deb URI SUITE COMPONENT…` (sources.list, *.list) and deb822
 * stanzas (*.sources: Types/URIs/Suites/Components, stanzas separated by blank lines).
 */

export interface AptSource {
  readonly uri: string;
  readonly suites: readonly string[];
  readonly components: readonly string[];
}

/** The `deb` (binary) entries of a one-line sources.list text; `deb-src` and comments are skipped. */
export function parseSourcesList(text: string): AptSource[] {
  const sources: AptSource[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.replace(/#.*/, "").trim();
    if (!line) continue;
    // Options in brackets (`deb [arch=amd64 signed-by=…] URI …`) are not needed to find the mirror.
    const words = line.replace(/\[[^\]]*\]/, " ").split(/\s+/);
    if (words[0] !== "deb" || words.length < 3) continue;
    sources.push({ uri: words[1]!, suites: [words[2]!], components: words.slice(3) });
  }
  return sources;
}

/** The binary entries of a deb822 .sources text; `Enabled: no` stanzas are skipped. */
export function parseDeb822Sources(text: string): AptSource[] {
  const sources: AptSource[] = [];
  const withoutComments = text
    .split("\n")
    .filter((l) => !l.trimStart().startsWith("#"))
    .join("\n");
  for (const stanza of withoutComments.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    let last: string | undefined;
    for (const line of stanza.split("\n")) {
      if (/^\s/.test(line) && last) {
        fields.set(last, `${fields.get(last)} ${line.trim()}`);
        continue;
      }
      const match = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
      if (!match) continue;
      last = match[1]!.toLowerCase();
      fields.set(last, match[2]!.trim());
    }
    const words = (key: string) => (fields.get(key) ?? "").split(/\s+/).filter(Boolean);
    if (!words("types").includes("deb")) continue;
    if ((fields.get("enabled") ?? "yes").toLowerCase() === "no") continue;
    for (const uri of words("uris")) sources.push({ uri, suites: words("suites"), components: words("components") });
  }
  return sources;
}

/** The mirror that serves `suite` with the main component, or undefined when no source does. */
export function pickMirror(sources: readonly AptSource[], suite: string): string | undefined {
  const found = sources.find((s) => s.suites.includes(suite) && s.components.includes("main") && /^https?:\/\//.test(s.uri));
  return found?.uri;
}
