// Which kept consoles of stopped VMs to drop (pure), and merging several consoles in time order.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import {
  archiveConsole,
  consolesToDrop,
  consoleShowsFailure,
  listStoppedConsoles,
  MAX_CONSOLE_BYTES,
  retireVmDir,
} from "../../src/run/console-archive.js";
import { mergeConsoles } from "../../src/run/console-merge.js";

const at = (minute: number) => `2026-11-29T10:${String(minute).padStart(2, "0")}:00.000Z`;
const entry = (id: string, minute: number, failed = false, bytes = 1000) => ({ id, stoppedAt: at(minute), failed, bytes });
const limits = { keepStopped: 3, keepFailed: 2, maxTotalBytes: 1_000_000 };

describe("consolesToDrop", () => {
  it("keeps the newest N, and failed runs beyond them up to their own limit", () => {
    const entries = [
      entry("a", 1, true),
      entry("b", 2),
      entry("c", 3, true),
      entry("d", 4, true),
      entry("e", 5),
      entry("f", 6),
      entry("g", 7),
    ];
    // Newest three: g, f, e. Failed beyond them, newest first: d, c (b is not failed; a is the third failed).
    expect(consolesToDrop(entries, limits).sort()).toEqual(["a", "b"]);
  });

  it("drops the oldest successful consoles first when over the size bound, never the newest", () => {
    const entries = [entry("old-ok", 1, false, 600_000), entry("old-failed", 2, true, 600_000), entry("new", 3, false, 600_000)];
    expect(consolesToDrop(entries, { ...limits, maxTotalBytes: 1_300_000 })).toEqual(["old-ok"]);
    expect(consolesToDrop(entries, { ...limits, maxTotalBytes: 100 }).sort()).toEqual(["old-failed", "old-ok"]);
    expect(consolesToDrop([entry("huge", 1, false, 10_000_000)], limits)).toEqual([]);
  });

  it("a crash loop's power-off and an init failure mark a run as failed", () => {
    expect(
      consoleShowsFailure("2026-11-29T10:00:00.000Z kiln-init: app keeps crashing: powering off so the instance gets replaced\n"),
    ).toBe(true);
    expect(consoleShowsFailure("kiln-init: FATAL: cannot mount system partition /dev/vda2\n")).toBe(true);
    expect(consoleShowsFailure("2026-11-29T10:00:00.000Z kiln-init: powering off\n")).toBe(false);
  });
});

describe("mergeConsoles", () => {
  it("orders by timestamp across consoles and keeps unstamped lines after their console's previous line", () => {
    const merged = mergeConsoles([
      { label: "a", lines: ["[    0.1] kernel", `${at(1)} a1`, "a-unstamped", `${at(3)} a3`] },
      { label: "b", lines: [`${at(2)} b2`, `${at(4)} b4`] },
    ]);
    expect(merged.lines).toEqual([
      "a | [    0.1] kernel",
      `a | ${at(1)} a1`,
      "a | a-unstamped",
      `b | ${at(2)} b2`,
      `a | ${at(3)} a3`,
      `b | ${at(4)} b4`,
    ]);
    expect(merged.lastKeys.get("b")).toBe(at(4));
  });

  it("never reorders one console's lines, even when its clock steps back", () => {
    const merged = mergeConsoles([
      { label: "a", lines: [`${at(5)} first`, `${at(2)} second`] },
      { label: "b", lines: [`${at(3)} b`] },
    ]);
    expect(merged.lines).toEqual([`b | ${at(3)} b`, `a | ${at(5)} first`, `a | ${at(2)} second`]);
  });

  it("a follow round continues from the previous round's time", () => {
    const merged = mergeConsoles([
      { label: "a", lines: ["no stamp"], since: at(9) },
      { label: "b", lines: [`${at(8)} b`], since: at(7) },
    ]);
    expect(merged.lines).toEqual([`b | ${at(8)} b`, "a | no stamp"]);
  });
});

describe("retireVmDir", () => {
  function vmDir(console: string | Buffer) {
    const root = mkdtempSync(path.join(os.tmpdir(), "kiln-archive-"));
    const dir = path.join(root, "vms", "0a1b2c3d");
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, "vm.json"), JSON.stringify({ id: "0a1b2c3d", name: "shop-0a1b2c3d", image: "shop:1.0.0" }));
    writeFileSync(path.join(dir, "user-data"), "SECRET=1\n");
    writeFileSync(path.join(dir, "console.log"), console);
    return { home: { root }, dir };
  }

  it("keeps the console (owner only) with how the VM ended, and removes the VM's directory", async () => {
    const { home, dir } = vmDir("2026-11-29T10:00:00.000Z hello\n");
    const kept = await retireVmDir(home, dir, { how: "app-killed", stoppedAt: new Date("2026-11-29T10:01:00Z") });
    expect(existsSync(dir)).toBe(false);
    expect(readFileSync(kept!, "utf8")).toContain("hello");
    expect(statSync(kept!).mode & 0o077).toBe(0);
    expect(await listStoppedConsoles(home)).toMatchObject([
      { id: "0a1b2c3d", image: "shop:1.0.0", how: "app-killed", failed: false, stoppedAt: "2026-11-29T10:01:00.000Z" },
    ]);
    // A kiln that comes second (the run that watched it fail) gets the same file and marks the failure.
    mkdirSync(dir, { recursive: true });
    expect(await archiveConsole(home, dir, { how: "clean", failed: true, reason: "exited" })).toBe(kept);
    expect(await listStoppedConsoles(home)).toMatchObject([{ failed: true, reason: "exited" }]);
  });

  it("keeps only the last MAX_CONSOLE_BYTES of a huge console, from a line start, and says so", async () => {
    const line = `${"x".repeat(99)}\n`;
    const { home, dir } = vmDir(Buffer.from(`first\n${line.repeat(MAX_CONSOLE_BYTES / 100 + 10)}last\n`));
    const text = readFileSync((await retireVmDir(home, dir, { how: "clean" }))!, "utf8");
    expect(text).toMatch(/^\[kiln: the first \d+ bytes of this console were not kept\]\nx{99}\n/);
    expect(text.endsWith("last\n")).toBe(true);
    expect(text.length).toBeLessThanOrEqual(MAX_CONSOLE_BYTES + 100);
  });
});
