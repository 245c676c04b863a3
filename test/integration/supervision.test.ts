// Process supervision by the init, in real QEMU boots of examples/crash-loop (a Node app that
// exits with status 1 right after starting): each exit is logged, the app is restarted after
// 1 s, 2 s, ... and after restarts.maxQuickExits quick exits the VM powers itself off, so QEMU
// exits on its own with status 0 (pass/fail by exit status, then the console says why). With
// restarts.onCrashLoop: restart it keeps restarting instead, and still shuts down cleanly.
import { cpSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { bake } from "../../src/bake/bake.js";
import { ImageStore } from "../../src/image/store.js";
import { LocalVm } from "../../src/providers/qemu.js";
import { quiet, repo, sharedHome } from "./harness.js";

const home = sharedHome();
const started: LocalVm[] = [];

afterEach(async () => {
  for (const vm of started.splice(0)) {
    await vm.shutdown(10_000);
    await vm.cleanup();
  }
});

async function bootCrashLoop(dir: string): Promise<LocalVm> {
  const { image } = await bake(dir, {}, home, quiet);
  const vm = await LocalVm.start({ image: await new ImageStore(home).resolve(image.ref), home, firmware: "bios", forwards: [], env: {} });
  started.push(vm);
  return vm;
}

/** Console lines as [milliseconds since epoch, text] for the timestamped ones. */
function stamped(console: string): { at: number; text: string }[] {
  return console
    .replace(/\r/g, "")
    .split("\n")
    .flatMap((line) => {
      const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (.*)$/.exec(line);
      return m ? [{ at: Date.parse(m[1]!), text: m[2]! }] : [];
    });
}

describe.sequential("supervision", () => {
  it("restarts a crashing app with backoff, then powers off after maxQuickExits (3) quick exits", async () => {
    const vm = await bootCrashLoop(path.join(repo, "examples", "crash-loop"));
    const ended = await Promise.race([vm.exited, new Promise<string>((r) => setTimeout(() => r("timeout"), 180_000))]);
    // The guest powered itself off: QEMU exited cleanly without anyone pressing a button.
    expect(ended, await vm.consoleTail(40)).toBe("QEMU exited (status 0)");

    const lines = stamped(await vm.consoleTail(1000));
    const starts = lines.filter((l) => l.text.startsWith("kiln-init: starting app: /usr/bin/node app.js"));
    const exits = lines.filter((l) => /^kiln-init: app exited with status 1 after \d+s \(quick exits in a row: \d of 3\)$/.test(l.text));
    expect(starts).toHaveLength(3);
    expect(exits).toHaveLength(3);
    for (const run of [1, 2, 3]) {
      expect(lines.map((l) => l.text)).toContain(`crash-loop: run ${run}, cannot reach the database, exiting`);
      expect(lines.map((l) => l.text)).toContain(`crash-loop: run ${run} failed: ECONNREFUSED (exit status 1)`);
    }
    const texts = lines.map((l) => l.text);
    expect(texts).toContain("kiln-init: restarting the app in 1s");
    expect(texts).toContain("kiln-init: restarting the app in 2s");
    expect(texts.at(-1)).toBe("kiln-init: app keeps crashing: powering off so the instance gets replaced");
    // Backoff: 1 s after the first exit, 2 s after the second.
    expect(starts[1]!.at - exits[0]!.at).toBeGreaterThanOrEqual(1000);
    expect(starts[2]!.at - exits[1]!.at).toBeGreaterThanOrEqual(2000);
  });

  it("with restarts.onCrashLoop: restart, keeps restarting past maxQuickExits and still shuts down cleanly", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "kiln-crash-restart-"));
    cpSync(path.join(repo, "examples", "crash-loop"), dir, { recursive: true });
    writeFileSync(
      path.join(dir, "kiln.yml"),
      "name: crash-loop-restart\nrestarts:\n  maxQuickExits: 2\n  window: 30\n  onCrashLoop: restart\n",
    );
    const vm = await bootCrashLoop(dir);
    const deadline = Date.now() + 180_000;
    while (!(await vm.consoleTail(200)).includes("crash-loop: run 4,") && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 500));
    const texts = stamped(await vm.consoleTail(1000)).map((l) => l.text);
    expect(texts).toContain("kiln-init: app keeps crashing: restarting it anyway (restarts.onCrashLoop: restart)");
    expect(texts).toContain("crash-loop: run 4, cannot reach the database, exiting");
    expect(texts).not.toContain("kiln-init: app keeps crashing: powering off so the instance gets replaced");
    // The power button interrupts the backoff sleep: no waiting for the next restart.
    const pressed = Date.now();
    expect(await vm.shutdown(20_000)).toBe("clean");
    expect(Date.now() - pressed).toBeLessThan(15_000);
    expect(await vm.consoleTail(5)).toMatch(/shutdown requested[\s\S]*powering off/);
  });
});
