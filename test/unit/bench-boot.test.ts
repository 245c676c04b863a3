import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, test } from "vitest";
import { parseDeb822Sources, parseSourcesList, pickMirror } from "../../bench/apt-sources.js";
import { alternatingOrder, formatRatio, formatTable, median, refusalReason, smallestPassing } from "../../bench/stats.js";
import { hostMirror, mountsUnder } from "../../bench/usual-way.js";
import { InputError } from "../../src/errors.js";

// Mirror addresses here are made-up names under .example, never a real registry.
const DEB822 = `Types: deb
# a comment between fields
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
`;

describe("apt sources", () => {
  test("deb822 stanzas: every URI with its suites and components", () => {
    expect(parseDeb822Sources(DEB822)).toEqual([
      { uri: "http://mirror.example/debian", suites: ["bookworm", "bookworm-updates"], components: ["main"] },
      { uri: "http://mirror.example/debian-security", suites: ["bookworm-security"], components: ["main"] },
    ]);
  });

  test("deb822: source-only and disabled stanzas are skipped; continuation lines extend a field", () => {
    const text = `Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\nComponents: main\n
Types: deb\nEnabled: no\nURIs: http://off.example/debian\nSuites: bookworm\nComponents: main\n
Types: deb\nURIs: http://a.example/debian\n http://b.example/debian\nSuites: bookworm\nComponents: main contrib\n`;
    expect(parseDeb822Sources(text).map((s) => s.uri)).toEqual(["http://a.example/debian", "http://b.example/debian"]);
  });

  test("one-line format: options in brackets, comments and deb-src lines", () => {
    const text = [
      "# deb http://commented.example/debian bookworm main",
      "deb-src http://src.example/debian bookworm main",
      "deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main contrib # trailing",
      "deb http://mirror.example/debian-security bookworm-security main",
    ].join("\n");
    expect(parseSourcesList(text)).toEqual([
      { uri: "http://mirror.example/debian", suites: ["bookworm"], components: ["main", "contrib"] },
      { uri: "http://mirror.example/debian-security", suites: ["bookworm-security"], components: ["main"] },
    ]);
  });

  test("the mirror serves the suite's main component over http(s)", () => {
    const sources = [
      { uri: "http://security.example/debian-security", suites: ["bookworm-security"], components: ["main"] },
      { uri: "file:/srv/local", suites: ["bookworm"], components: ["main"] },
      { uri: "http://contrib.example/debian", suites: ["bookworm"], components: ["contrib"] },
      { uri: "https://mirror.example/debian", suites: ["bookworm"], components: ["main"] },
    ];
    expect(pickMirror(sources, "bookworm")).toBe("https://mirror.example/debian");
    expect(pickMirror(sources, "trixie")).toBeUndefined();
  });

  test("hostMirror reads sources.list and sources.list.d; none for bookworm is an InputError", async () => {
    const etc = mkdtempSync(path.join(os.tmpdir(), "kiln-test-apt-"));
    try {
      mkdirSync(path.join(etc, "sources.list.d"));
      writeFileSync(path.join(etc, "sources.list.d", "other.list.disabled"), "deb http://ignored.example/debian bookworm main\n");
      await expect(hostMirror(etc)).rejects.toThrow(InputError);
      writeFileSync(path.join(etc, "sources.list.d", "debian.sources"), DEB822);
      expect(await hostMirror(etc)).toBe("http://mirror.example/debian");
      writeFileSync(path.join(etc, "sources.list"), "deb http://first.example/debian bookworm main\n");
      expect(await hostMirror(etc)).toBe("http://first.example/debian");
    } finally {
      rmSync(etc, { recursive: true, force: true });
    }
  });
});

describe("mountsUnder", () => {
  // Recorded shape of /proc/mounts while debootstrap installs into a tree (paths made up).
  const mounts = [
    "/dev/vda / ext4 rw,relatime 0 0",
    "proc /var/tmp/bench/tree/proc proc rw,relatime 0 0",
    "sysfs /var/tmp/bench/tree/sys sysfs rw,relatime 0 0",
    "/dev /var/tmp/bench/tree-other/dev none rw,bind 0 0",
    "tmpfs /tmp/with\\040space/tree/dev tmpfs rw 0 0",
  ].join("\n");

  test("mount points inside the tree, not a sibling that shares its prefix", () => {
    expect(mountsUnder(mounts, "/var/tmp/bench/tree")).toEqual(["/var/tmp/bench/tree/proc", "/var/tmp/bench/tree/sys"]);
    expect(mountsUnder(mounts, "/var/tmp/bench/tree/")).toEqual(["/var/tmp/bench/tree/proc", "/var/tmp/bench/tree/sys"]);
    expect(mountsUnder(mounts, "/var/tmp/bench")).toEqual([
      "/var/tmp/bench/tree/proc",
      "/var/tmp/bench/tree/sys",
      "/var/tmp/bench/tree-other/dev",
    ]);
    expect(mountsUnder(mounts, "/tmp/elsewhere")).toEqual([]);
  });

  test("octal escapes of /proc/mounts are decoded", () => {
    expect(mountsUnder(mounts, "/tmp/with space")).toEqual(["/tmp/with space/tree/dev"]);
  });
});

describe("median", () => {
  test("odd and even counts, order-independent; NaN ignored; empty is NaN", () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([Number.NaN, 5, 7])).toBe(6);
    expect(median([])).toBeNaN();
  });
});

describe("smallestPassing", () => {
  const threshold = (t: number) => async (m: number) => m >= t;

  test("finds the threshold to within one step, probing far fewer values than a scan", async () => {
    for (const t of [33, 64, 100, 200, 511]) {
      const { value, probes } = await smallestPassing(32, 512, 16, threshold(t));
      expect(value).toBeGreaterThanOrEqual(t);
      expect(value - 16).toBeLessThan(t);
      expect(probes.length).toBeLessThanOrEqual(7);
      expect(probes.every((p) => p.passed === p.value >= t)).toBe(true);
    }
  });

  test("the low end passing is answered by one probe; never passing returns the known-good high end unprobed", async () => {
    expect(await smallestPassing(32, 512, 16, threshold(1))).toEqual({ value: 32, probes: [{ value: 32, passed: true }] });
    const never = await smallestPassing(32, 512, 16, threshold(10_000));
    expect(never.value).toBe(512);
    expect(never.probes.some((p) => p.value === 512)).toBe(false);
  });

  test("refuses an empty range or a zero step", async () => {
    await expect(smallestPassing(512, 512, 16, threshold(1))).rejects.toThrow(/low < high/);
    await expect(smallestPassing(32, 512, 0, threshold(1))).rejects.toThrow(/step > 0/);
  });
});

describe("ratios and the table", () => {
  test("usual over kiln: one decimal under 10, none above; missing or zero values show a dash", () => {
    expect(formatRatio(70, 14)).toBe("5.0×");
    expect(formatRatio(300, 12)).toBe("25×");
    expect(formatRatio(undefined, 3)).toBe("–");
    expect(formatRatio(5, 0)).toBe("–");
    expect(formatRatio(Number.NaN, 3)).toBe("–");
  });

  test("columns are as wide as their widest cell; the first is left-aligned, the rest right-aligned", () => {
    expect(
      formatTable(
        ["", "kiln", "usual"],
        [
          ["boot, s", "14.20", "70.10"],
          ["gzip, MiB", "14.5", "180.0"],
        ],
      ).split("\n"),
    ).toEqual(["            kiln  usual", "---------  -----  -----", "boot, s    14.20  70.10", "gzip, MiB   14.5  180.0"]);
  });

  test("boots alternate image by image, every round in the same order", () => {
    expect(alternatingOrder(["a", "b", "c"], 2)).toEqual(["a", "b", "c", "a", "b", "c"]);
  });
});

describe("refusalReason", () => {
  test("the error line above commander's help, not the help's last line", () => {
    const tail = "error: unknown option '--kernel'\nUsage: kiln bake [options] [dir]\n  -h, --help           display help for command";
    expect(refusalReason(tail)).toBe("error: unknown option '--kernel'");
    expect(refusalReason("Usage: kiln bake [options] [dir]\n  -h, --help           display help for command")).toBe(
      "kiln printed its usage: the option is unknown to this kiln",
    );
    expect(refusalReason("something odd\nlast words\n")).toBe("last words");
    expect(refusalReason("")).toBe("no reason given");
  });
});
