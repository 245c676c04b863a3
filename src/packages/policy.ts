/**
 * `apt-cache policy NAME` as data: the candidate apt would install and every version the
 * configured sources offer, with the suite each comes from. The suite is what tells a
 * security update (bookworm-security) from a point-release one (bookworm, bookworm-updates).
 */

export interface PolicyOrigin {
  readonly priority: number;
  /** Archive URI without the suite, e.g. http://127.0.0.1:8080; "/var/lib/dpkg/status" for the installed copy. */
  readonly uri: string;
  readonly suite: string | undefined;
  readonly component: string | undefined;
}

export interface PolicyVersion {
  readonly version: string;
  readonly origins: readonly PolicyOrigin[];
}

export interface AptPolicy {
  readonly name: string;
  readonly candidate: string | undefined;
  readonly versions: readonly PolicyVersion[];
}

/** Parses the output of `apt-cache policy` for one package. */
export function parsePolicy(text: string): AptPolicy {
  const lines = text.split("\n");
  const name = (lines.find((l) => /^\S.*:$/.test(l)) ?? "").replace(/:$/, "");
  const candidate = /^\s*Candidate:\s*(\S+)/m.exec(text)?.[1];
  const versions: { version: string; origins: PolicyOrigin[] }[] = [];
  let inTable = false;
  for (const line of lines) {
    if (/^\s*Version table:/.test(line)) {
      inTable = true;
      continue;
    }
    if (!inTable) continue;
    // " *** 1:1.35.0-4 500" (installed) or "     1:1.35.0-4 500": a version row.
    const row = /^ (?:\*\*\*| {3}) (\S+) (-?\d+)\s*$/.exec(line);
    if (row) {
      versions.push({ version: row[1]!, origins: [] });
      continue;
    }
    // "        500 http://host/debian bookworm/main amd64 Packages": an origin row.
    const origin = /^\s+(-?\d+) (\S+)(?: (\S+))?/.exec(line);
    if (origin && versions.length > 0) {
      const dist = origin[3];
      const slash = dist?.lastIndexOf("/") ?? -1;
      versions.at(-1)!.origins.push({
        priority: Number(origin[1]),
        uri: origin[2]!,
        suite: dist === undefined ? undefined : slash > 0 ? dist.slice(0, slash) : dist,
        component: dist !== undefined && slash > 0 ? dist.slice(slash + 1) : undefined,
      });
    }
  }
  return { name, candidate: candidate === "(none)" ? undefined : candidate, versions };
}

/** Suites that carry security fixes: Debian's `<codename>-security` (and the older `<codename>/updates`). */
export function isSecuritySuite(suite: string | undefined): boolean {
  return suite !== undefined && (/-security$/.test(suite) || /\/updates$/.test(suite));
}

/** The archive origins of a version (not the local dpkg status). */
export function archiveOrigins(version: PolicyVersion | undefined): PolicyOrigin[] {
  return (version?.origins ?? []).filter((o) => o.suite !== undefined);
}

/** "debian:<suite>/<component>" for the lock, from the first archive origin of a version. */
export function sourceOf(version: PolicyVersion | undefined): string {
  const origin = archiveOrigins(version)[0];
  return origin ? `debian:${origin.suite}/${origin.component ?? "main"}` : "debian";
}
