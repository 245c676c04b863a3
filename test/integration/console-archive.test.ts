// `kiln logs` outlives VMs (issue 18, item 9), through the real CLI on VM directories written the
// way LocalVm writes them. A VM "runs" while its pid's command line says qemu-system: here a
// `sleep` started under that name, so no guest has to boot; a stopped VM has a dead pid.
import { spawn, type ChildProcess } from "node:child_process";
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { cli, freshHome, repo } from "./harness.js";
import type { KilnHome } from "../../src/home.js";

const sleepers: ChildProcess[] = [];
afterEach(() => {
  for (const s of sleepers.splice(0)) s.kill("SIGKILL");
});

/** A process whose command line starts with qemu-system (what `kiln ps` takes for a live VM). */
function fakeQemu(): ChildProcess {
  const child = spawn("sleep", ["600"], { argv0: "qemu-system-x86_64", stdio: "ignore" });
  sleepers.push(child);
  return child;
}

const DEAD_PID = 2 ** 22 + 17; // above pid_max's default: no such process

function writeVm(home: KilnHome, vm: { id: string; name?: string; image?: string; pid?: number; owner?: string; console: string }): string {
  const dir = path.join(home.vms, vm.id);
  mkdirSync(dir, { recursive: true });
  const record = {
    id: vm.id,
    name: vm.name ?? `hello-${vm.id}`,
    image: vm.image ?? "hello:1.0.0",
    digest: `sha256:${"ab".repeat(32)}`,
    pid: vm.pid ?? DEAD_PID,
    forwards: [],
    firmware: "bios",
    accelerator: "tcg",
    startedAt: "2026-11-29T10:00:00.000Z",
    ...(vm.owner ? { owner: vm.owner } : {}),
  };
  writeFileSync(path.join(dir, "vm.json"), JSON.stringify(record));
  writeFileSync(path.join(dir, "console.log"), vm.console);
  writeFileSync(path.join(dir, "user-data"), "SECRET=1\n");
  return dir;
}

const kiln = (home: KilnHome, args: string[]) => cli(args, { KILN_HOME: home.root });

const CONSOLE = [
  "[    0.512000] Linux version 6.1.0-56-cloud-amd64",
  "kiln-init: starting app: ./server --listen 8080",
  "2026-11-29T10:00:03.100Z listening on 8080",
  "2026-11-29T10:00:09.900Z kiln-init: shutdown requested: stopping the app",
  "",
].join("\n");

describe("kiln logs on stopped VMs", () => {
  it("reads the kept console of a VM that stopped, says it stopped and when, and keeps no user-data", async () => {
    const home = freshHome();
    const dir = writeVm(home, { id: "a1b2c3d4", console: CONSOLE });
    const shown = await kiln(home, ["logs", "a1b2c3d4"]);
    expect(shown.stderr).toMatch(/a1b2c3d4 .*has stopped .*2026-/);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain("listening on 8080");
    expect(shown.stdout).not.toContain("Linux version");
    expect(existsSync(dir)).toBe(false); // the VM directory (seed drive, user-data) is gone
    // Still there the next time.
    expect((await kiln(home, ["logs", "a1b2c3d4", "--all"])).stdout).toContain("Linux version");
  });

  it("takes an id prefix, an image ref (the newest VM of it), and lists the candidates of an ambiguous prefix", async () => {
    const home = freshHome();
    writeVm(home, { id: "cafe0001", image: "shop:1.0.0", console: "2026-11-29T10:00:01.000Z first\n" });
    writeVm(home, { id: "cafe0002", image: "shop:2.0.0", console: "2026-11-29T10:00:02.000Z second\n" });
    const running = fakeQemu();
    writeVm(home, { id: "beef0003", image: "shop:2.0.0", pid: running.pid!, console: "2026-11-29T11:00:00.000Z third\n" });
    expect((await kiln(home, ["logs", "cafe0001"])).stdout).toContain("first");
    const prefix = await kiln(home, ["logs", "cafe000"]);
    expect(prefix.code).not.toBe(0);
    expect(prefix.stderr).toMatch(/cafe000.*matches 2 VMs/);
    expect(prefix.stderr).toContain("cafe0001");
    expect(prefix.stderr).toContain("cafe0002");
    expect((await kiln(home, ["logs", "cafe0002"])).stdout).toContain("second");
    expect((await kiln(home, ["logs", "beef"])).stdout).toContain("third");
    // An image ref: the running VM of it before the stopped one.
    expect((await kiln(home, ["logs", "shop:2.0.0"])).stdout).toContain("third");
    expect((await kiln(home, ["logs", "shop:1.0.0"])).stdout).toContain("first");
    const none = await kiln(home, ["logs", "nothing"]);
    expect(none.code).not.toBe(0);
    expect(none.stderr).toMatch(/no VM.*nothing/);
  });
});

describe("kiln logs --env", () => {
  function appDir(envs: string): string {
    const dir = mkdtempSync(path.join(os.tmpdir(), "kiln-logs-env-"));
    writeFileSync(path.join(dir, "kiln.yml"), `name: shop\nbaker: native\ncmd: ./server\nport: 8080\nenvironments:\n${envs}`);
    return dir;
  }

  it("merges a local environment's instances in time order, each line prefixed with its instance, and follows with -f", async () => {
    const home = freshHome();
    const app = appDir("  dev:\n    target: local\n    port: 18080\n");
    const a = fakeQemu();
    const b = fakeQemu();
    writeVm(home, {
      id: "aaaa0001",
      name: "r1-0",
      owner: "env:shop/dev",
      pid: a.pid!,
      console: "kiln-init: starting app\n2026-11-29T10:00:01.000Z a one\n2026-11-29T10:00:03.000Z a three\n",
    });
    writeVm(home, {
      id: "bbbb0002",
      name: "r1-1",
      owner: "env:shop/dev",
      pid: b.pid!,
      console: "2026-11-29T10:00:02.000Z b two\n2026-11-29T10:00:04.000Z b four\n",
    });
    writeVm(home, { id: "cccc0003", name: "other", owner: "env:shop/test", pid: fakeQemu().pid!, console: "2026-11-29T10:00:00.000Z x\n" });
    const merged = await kiln(home, ["logs", "--env", "dev", "--config", app]);
    expect(merged.code, merged.stderr).toBe(0);
    expect(merged.stdout.trim().split("\n")).toEqual([
      "r1-0 | 2026-11-29T10:00:01.000Z a one",
      "r1-1 | 2026-11-29T10:00:02.000Z b two",
      "r1-0 | 2026-11-29T10:00:03.000Z a three",
      "r1-1 | 2026-11-29T10:00:04.000Z b four",
    ]);
    // The flags an AWS environment takes work on the local merge too.
    const since = await kiln(home, ["logs", "--env", "dev", "--config", app, "--since", "2026-11-29T10:00:02.500Z", "--filter", "b "]);
    expect(since.code, since.stderr).toBe(0);
    expect(since.stdout).toBe("r1-1 | 2026-11-29T10:00:04.000Z b four\n");
    const json = await kiln(home, ["logs", "--env", "dev", "--config", app, "--json", "--filter", "three"]);
    expect(
      json.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l)),
    ).toEqual([{ time: "2026-11-29T10:00:03.000Z", instance: "r1-0", message: "a three" }]);
    const release = await kiln(home, ["logs", "--env", "dev", "--config", app, "--release", "r1"]);
    expect(release.code).toBe(2);
    expect(release.stderr).toMatch(/--release applies to AWS environments; dev is local/);

    let stdout = "";
    const follow = spawn(process.execPath, [path.join(repo, "bin", "kiln.js"), "logs", "--env", "dev", "--config", app, "-f"], {
      env: { ...process.env, KILN_HOME: home.root },
      stdio: ["ignore", "pipe", "pipe"],
    });
    follow.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    const exited = new Promise<number | null>((resolve) => follow.on("close", resolve));
    const until = async (check: () => boolean) => {
      const deadline = Date.now() + 15_000;
      while (!check() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    };
    await until(() => stdout.includes("b four"));
    appendFileSync(path.join(home.vms, "bbbb0002", "console.log"), "2026-11-29T10:00:05.000Z b five\n");
    await until(() => stdout.includes("b five"));
    expect(stdout).toContain("r1-1 | 2026-11-29T10:00:05.000Z b five");
    a.kill("SIGKILL");
    b.kill("SIGKILL");
    expect(await exited).toBe(0); // -f ends when the environment's instances have stopped
  });

  it("refuses the --env flags without --env, and --all for an AWS environment", async () => {
    const home = freshHome();
    const app = appDir("  prod:\n    target: aws\n    region: eu-west-1\n");
    const single = await kiln(home, ["logs", "aaaa0001", "--since", "10m", "--json"]);
    expect(single.code).toBe(2);
    expect(single.stderr).toMatch(/--since, --json apply to kiln logs --env only/);
    const all = await kiln(home, ["logs", "--env", "prod", "--config", app, "--all"]);
    expect(all.code).toBe(2);
    expect(all.stderr).toMatch(/--all applies to consoles/);
  });
});

describe("kiln stop keeps the console", () => {
  it("a VM stopped with kiln stop can be read afterwards", async () => {
    const home = freshHome();
    const vm = fakeQemu();
    writeVm(home, { id: "dddd0004", pid: vm.pid!, console: CONSOLE });
    const stopped = await kiln(home, ["stop", "dddd0004", "--timeout", "1"]);
    expect(stopped.code, stopped.stderr).toBe(0);
    const shown = await kiln(home, ["logs", "dddd0004"]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain("listening on 8080");
    expect(readFileSync(path.join(home.root, "consoles", "dddd0004", "console.log"), "utf8")).toContain("Linux version");
  });
});
