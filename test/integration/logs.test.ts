// Logs: kiln-log (the init's console logger, compiled the way bakes compile it) on a real
// pseudo-terminal; a QEMU boot whose app and init lines reach a TCP syslog listener on the host
// as RFC 5424 with octet counting, and `kiln logs` (plain and -f) on that running VM; and
// `kiln logs --instance` through EC2 GetConsoleOutput against moto (which returns a fixed,
// non-kiln console text: nothing in it is an app line).
import { execFileSync, spawn } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, writeSync, constants } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { RunInstancesCommand } from "@aws-sdk/client-ec2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FREESTANDING_FLAGS } from "../../src/bake/freestanding.js";
import { createAwsClients } from "../../src/aws/clients.js";
import { getConsoleOutput } from "../../src/aws/ec2.js";
import { bake } from "../../src/bake/bake.js";
import { ImageStore } from "../../src/image/store.js";
import { LocalVm } from "../../src/providers/qemu.js";
import { isAppLine, newConsoleLines } from "../../src/run/console-lines.js";
import { waitHealthy } from "../../src/run/health.js";
import { findFreePort } from "../../src/run/ports.js";
import { cli, httpGet, quiet, repo, sharedHome } from "./harness.js";
import { startMoto, useEmulatorCredentials, type Moto } from "./moto.js";

const home = sharedHome();
const STAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z /;
const RFC5424 = /^<(\d+)>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (\S+) (\S+) - - - (.*)$/s;

/** A TCP syslog listener that splits RFC 6587 octet-counted frames. */
async function tcpSyslog(): Promise<{ port: number; frames: string[]; close: () => Promise<void> }> {
  const frames: string[] = [];
  const server = net.createServer((socket) => {
    let pending = Buffer.alloc(0);
    socket.on("data", (data: Buffer) => {
      pending = Buffer.concat([pending, data]);
      for (;;) {
        const space = pending.indexOf(0x20);
        if (space < 0) break;
        const length = Number(pending.subarray(0, space).toString());
        if (pending.length < space + 1 + length) break;
        frames.push(pending.subarray(space + 1, space + 1 + length).toString("utf8"));
        pending = pending.subarray(space + 1 + length);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { port: (server.address() as net.AddressInfo).port, frames, close: () => new Promise((r) => server.close(() => r())) };
}

function parseFrame(frame: string): { pri: number; host: string; app: string; msg: string } | undefined {
  const m = RFC5424.exec(frame);
  return m ? { pri: Number(m[1]), host: m[3]!, app: m[4]!, msg: m[5]! } : undefined;
}

async function until(check: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
}

describe("kiln-log on a pseudo-terminal", () => {
  it("timestamps lines, keeps order, maps <N> to severity, splits long lines, and ships RFC 5424 over TCP", async () => {
    const work = mkdtempSync(path.join(os.tmpdir(), "kiln-log-"));
    const binary = path.join(work, "kiln-log");
    execFileSync("gcc", [...FREESTANDING_FLAGS, "-o", binary, path.join(repo, "templates", "init", "kiln-log.c")]);
    const syslog = await tcpSyslog();
    const ttyFile = path.join(work, "app.tty");
    const child = spawn(binary, [ttyFile, "myapp", "host-1", "tcp", "127.0.0.1", String(syslog.port)], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    await until(() => existsSync(ttyFile), 5000);
    const tty = readFileSync(ttyFile, "utf8").trim();
    expect(tty).toMatch(/^\/dev\/pts\/\d+$/);

    const fd = openSync(tty, constants.O_WRONLY | constants.O_NOCTTY);
    writeSync(fd, "hello\n<3>bad thing\r\nkiln-init: starting app: ./server\n");
    writeSync(fd, `${"x".repeat(5000)}\n`);
    writeSync(fd, "partial");
    await new Promise((r) => setTimeout(r, 900));
    writeSync(fd, " rest\n");
    closeSync(fd);
    // The last writer closed the terminal: kiln-log prints what is left and exits.
    expect(await exited).toBe(0);

    const lines = stdout.split("\n").filter(Boolean);
    expect(lines.every((l) => STAMP.test(l))).toBe(true);
    expect(lines.map((l) => l.replace(STAMP, ""))).toEqual([
      "hello",
      "bad thing",
      "kiln-init: starting app: ./server",
      "x".repeat(4096),
      "x".repeat(904),
      "partial",
      " rest",
    ]);

    await until(() => syslog.frames.length >= 7, 5000);
    const frames = syslog.frames.map(parseFrame);
    expect(frames).toEqual([
      { pri: 14, host: "host-1", app: "myapp", msg: "hello" },
      { pri: 11, host: "host-1", app: "myapp", msg: "bad thing" },
      { pri: 14, host: "host-1", app: "kiln-init", msg: "starting app: ./server" },
      { pri: 14, host: "host-1", app: "myapp", msg: "x".repeat(4096) },
      { pri: 14, host: "host-1", app: "myapp", msg: "x".repeat(904) },
      { pri: 14, host: "host-1", app: "myapp", msg: "partial" },
      { pri: 14, host: "host-1", app: "myapp", msg: " rest" },
    ]);
    await syslog.close();
  });
});

describe("console lines", () => {
  const console = [
    "[    0.000000] Linux version 6.1.0-56-cloud-amd64",
    "kiln-init: applied boot-time configuration from seed drive",
    "2025-01-31T12:00:00.100Z kiln-init: starting app: /usr/bin/node server.js",
    "2025-01-31T12:00:01.250Z hello-node listening on 8080",
    "[   12.345678] reboot: Power down",
    "SeaBIOS (version 1.16.2-debian-1.16.2-1)",
  ];

  it("app lines: the init's and the kernel's are dropped; on EC2 only timestamped app lines count", () => {
    expect(console.filter((l) => isAppLine(l))).toEqual([
      "2025-01-31T12:00:01.250Z hello-node listening on 8080",
      "SeaBIOS (version 1.16.2-debian-1.16.2-1)",
    ]);
    expect(console.filter((l) => isAppLine(l, { stampedOnly: true }))).toEqual(["2025-01-31T12:00:01.250Z hello-node listening on 8080"]);
    // An image whose init printed app output without timestamps still shows it locally.
    expect(isAppLine("hello-node listening on 8080")).toBe(true);
  });

  it("new lines of a sliding console window", () => {
    expect(newConsoleLines([], ["a", "b"])).toEqual(["a", "b"]);
    expect(newConsoleLines(["a", "b"], ["a", "b"])).toEqual([]);
    expect(newConsoleLines(["a", "b", "c"], ["b", "c", "d", "e"])).toEqual(["d", "e"]);
    expect(newConsoleLines(["x", "y"], ["p", "q"])).toEqual(["p", "q"]);
    expect(newConsoleLines(["a", "b", "a"], ["a", "b", "a", "c"])).toEqual(["c"]);
  });
});

describe.sequential("logs of a local VM: console, TCP syslog, kiln logs", () => {
  let vm: LocalVm | undefined;
  afterAll(async () => {
    if (vm) {
      await vm.shutdown(20_000);
      await vm.cleanup();
    }
  });

  it("timestamps app output on the console, ships it to tcp://10.0.2.2, and kiln logs shows only the app's lines", async () => {
    const syslog = await tcpSyslog();
    const { image } = await bake(path.join(repo, "test", "fixtures", "imds", "env-app"), {}, home, quiet);
    const port = await findFreePort();
    vm = await LocalVm.start({
      image: await new ImageStore(home).resolve(image.ref),
      home,
      firmware: "bios",
      forwards: [{ hostAddress: "127.0.0.1", hostPort: port, guestPort: 8080 }],
      // No port in the URL: tcp defaults to 601, so give it explicitly; 10.0.2.2 is the host in QEMU's user network.
      env: { KILN_SYSLOG: `tcp://10.0.2.2:${syslog.port}`, GREETING: "syslog" },
    });
    const health = await waitHealthy(`http://127.0.0.1:${port}/healthz`, 180_000, vm.exited, vm.startedAtMs);
    expect(health.healthy, await vm.consoleTail(40)).toBe(true);
    const answer = JSON.parse((await httpGet(`http://127.0.0.1:${port}/log`)).body) as { env: Record<string, string> };
    // The seed drive's meta-data names the instance: the VM's id from kiln ps.
    expect(answer.env).toMatchObject({ GREETING: "syslog", KILN_ENV: "dev", KILN_INSTANCE_ID: vm.record.id });

    await until(() => syslog.frames.some((f) => f.includes("an error on stderr")), 20_000);
    const frames = syslog.frames.map(parseFrame);
    expect(frames.every(Boolean), syslog.frames.join("\n")).toBe(true);
    expect(frames).toContainEqual({ pri: 14, host: vm.record.id, app: "env-app", msg: "env-app listening on 8080" });
    expect(frames).toContainEqual({ pri: 11, host: vm.record.id, app: "env-app", msg: "env-app: an error on stderr" });
    expect(frames).toContainEqual(expect.objectContaining({ app: "kiln-init", msg: expect.stringMatching(/^starting app: /) }));

    const env = { KILN_HOME: home.root };
    const logs = await cli(["logs", vm.record.id], env);
    expect(logs.code, logs.stderr).toBe(0);
    const shown = logs.stdout.split("\n").filter(Boolean);
    expect(shown.length).toBeGreaterThanOrEqual(3);
    expect(shown.every((l) => STAMP.test(l) && !l.includes("kiln-init:"))).toBe(true);
    expect(shown.map((l) => l.replace(STAMP, ""))).toEqual(
      expect.arrayContaining(["env-app listening on 8080", "env-app: request to /log on stdout", "env-app: an error on stderr"]),
    );
    const all = await cli(["logs", vm.record.id, "--all"], env);
    expect(all.stdout).toMatch(/kiln-init: starting app: \/usr\/bin\/node server\.js/);
    expect(all.stdout).toMatch(/^kiln-init: network eth0: /m);

    // Follow mode: keeps printing until the VM stops, then exits by itself.
    const follower = spawn(process.execPath, [path.join(repo, "bin", "kiln.js"), "logs", "-f", vm.record.id, "--all"], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let followed = "";
    let followErr = "";
    follower.stdout.on("data", (d: Buffer) => (followed += d.toString()));
    follower.stderr.on("data", (d: Buffer) => (followErr += d.toString()));
    const followerExit = new Promise<number | null>((resolve) => follower.on("close", resolve));
    await until(() => followed.includes("env-app listening on 8080"), 30_000);
    expect(await vm.shutdown(30_000)).toBe("clean");
    expect(await followerExit, followErr).toBe(0);
    expect(followed).toMatch(/kiln-init: shutdown requested[\s\S]*kiln-init: powering off/);
    await syslog.close();
  });
});

describe.sequential("kiln logs --instance (EC2 GetConsoleOutput, moto)", () => {
  let moto: Moto;
  let instanceId = "";
  const region = "us-east-1";
  beforeAll(async () => {
    moto = await startMoto();
    useEmulatorCredentials();
    const clients = createAwsClients({ region, endpoint: moto.endpoint, maxAttempts: 1 });
    const out = await clients.ec2.send(
      new RunInstancesCommand({ ImageId: "ami-12c6146b", MinCount: 1, MaxCount: 1, InstanceType: "t3.micro" }),
    );
    instanceId = out.Instances![0]!.InstanceId!;
  }, 60_000);
  afterAll(async () => moto?.stop());

  it("asks for the live console output of the instance and decodes it", async () => {
    const calls: { op: string; input: Record<string, unknown> }[] = [];
    const clients = createAwsClients({
      region,
      endpoint: moto.endpoint,
      maxAttempts: 1,
      onRequest: (op, input) => calls.push({ op, input }),
    });
    const { text } = await getConsoleOutput(clients, instanceId, true);
    expect(calls).toEqual([{ op: "GetConsoleOutput", input: { InstanceId: instanceId, Latest: true } }]);
    expect(text).toMatch(/^Linux version 2\.6\.16-xenU/);
  });

  it("shows only app lines by default (none in moto's text), everything with --all, and says what went wrong for an unknown instance", async () => {
    const env = {
      AWS_ENDPOINT_URL: moto.endpoint,
      AWS_ACCESS_KEY_ID: "testing",
      AWS_SECRET_ACCESS_KEY: "testing",
      AWS_SESSION_TOKEN: "testing",
      KILN_HOME: home.root,
    };
    const filtered = await cli(["logs", "--instance", instanceId, "--region", region], env);
    expect(filtered.code, filtered.stderr).toBe(0);
    expect(filtered.stdout).toBe("");
    expect(filtered.stderr).toMatch(new RegExp(`no app lines in ${instanceId}'s console \\(10 lines in all; --all shows them\\)`));
    const all = await cli(["logs", "--instance", instanceId, "--region", region, "--all"], env);
    expect(all.code, all.stderr).toBe(0);
    expect(all.stdout.split("\n")[0]).toMatch(/^Linux version 2\.6\.16-xenU/);
    expect(all.stdout).toMatch(/Kernel command line: root=\/dev\/sda1 ro 4/);
    const unknown = await cli(["logs", "--instance", "i-0000000000000dead", "--region", region], env);
    expect(unknown.code).toBe(7);
    expect(unknown.stderr).toMatch(/GetConsoleOutput on i-0000000000000dead failed/);
    const bad = await cli(["logs", "--instance", "web-1", "--region", region], env);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/not an EC2 instance id/);
  });
});
