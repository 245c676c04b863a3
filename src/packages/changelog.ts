/**
 * CVE identifiers fixed by a Debian package update, read from the package's own changelog
 * (/usr/share/doc/<pkg>/changelog.Debian.gz in the .deb). This works offline once the newer
 * .deb is downloaded, which a rebake needs anyway; `apt-get changelog` would need the
 * changelog servers. Security uploads name their CVEs there by convention.
 */
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { gunzipSync } from "node:zlib";
import { compareDebianVersions } from "./debversion.js";

export interface ChangelogEntry {
  readonly source: string;
  readonly version: string;
  readonly distribution: string;
  readonly text: string;
}

/** Splits a Debian changelog into entries ("pkg (version) dist; urgency=…" headers). */
export function parseChangelog(text: string): ChangelogEntry[] {
  const entries: ChangelogEntry[] = [];
  let current: { source: string; version: string; distribution: string; lines: string[] } | undefined;
  for (const line of text.split("\n")) {
    const header = /^(\S+) \(([^)\s]+)\) ([^;]*);/.exec(line);
    if (header) {
      if (current)
        entries.push({
          source: current.source,
          version: current.version,
          distribution: current.distribution,
          text: current.lines.join("\n"),
        });
      current = { source: header[1]!, version: header[2]!, distribution: header[3]!.trim(), lines: [] };
    } else current?.lines.push(line);
  }
  if (current)
    entries.push({ source: current.source, version: current.version, distribution: current.distribution, text: current.lines.join("\n") });
  return entries;
}

/** CVE ids mentioned in entries newer than `since` (up to and including `upTo`), sorted, unique. */
export function cvesSince(entries: readonly ChangelogEntry[], since: string, upTo?: string): string[] {
  const found = new Set<string>();
  for (const entry of entries) {
    if (compareDebianVersions(entry.version, since) <= 0) continue;
    if (upTo !== undefined && compareDebianVersions(entry.version, upTo) > 0) continue;
    for (const m of entry.text.matchAll(/CVE-\d{4}-\d{4,}/g)) found.add(m[0]);
  }
  return [...found].sort();
}

/** Every changelog.Debian*.gz of a package in its unpacked tree (binNMUs add a per-arch one). */
export async function readPackageChangelogs(tree: string, name: string): Promise<ChangelogEntry[]> {
  const dir = path.join(tree, "usr", "share", "doc", name);
  const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => /^changelog\.Debian(\.[a-z0-9]+)?\.gz$/.test(f)).sort();
  const entries: ChangelogEntry[] = [];
  for (const file of files) entries.push(...parseChangelog(gunzipSync(await readFile(path.join(dir, file))).toString("utf8")));
  return entries;
}
