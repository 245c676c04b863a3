// kiln-syslog-tls, the image's syslog-over-TLS shipper (RFC 5425), run on the host as a bake
// builds it: records written into its FIFO (kiln-log's shipper format) must reach a verified TLS
// server as octet-counted RFC 5424 frames; a server whose certificate leads to another CA or
// names another host gets nothing; a restarted server gets the lines written meanwhile.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chmodSync, closeSync, constants, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import type { AddressInfo, Socket } from "node:net";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBakeContext, resolveDebian } from "../../src/bake/context.js";
import { buildSyslogTlsClient, loadSystemRoots } from "../../src/bake/syslog-tls.js";
import { bake } from "../../src/bake/bake.js";
import { ImageStore } from "../../src/image/store.js";
import { LocalVm } from "../../src/providers/qemu.js";
import { waitHealthy } from "../../src/run/health.js";
import { findFreePort } from "../../src/run/ports.js";
import { openSandbox } from "../../src/sandbox.js";
import { issue, makeCa, type Issued } from "../fixtures/tls/pki.js";
import { httpGet, quiet, repo, sharedHome } from "./harness.js";

const RFC5424 = /^<(\d+)>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (\S+) (\S+) - - - (.*)$/s;

interface SyslogServer {
  port: number;
  frames: string[];
  /** Bytes after the last whole frame, and connections whose handshake completed. */
  leftover: () => number;
  handshakes: () => number;
  close: () => Promise<void>;
}

/** A TLS syslog server (RFC 5425) presenting `cert`; it splits octet-counted frames strictly. */
async function syslogServer(cert: Issued, port = 0, frames: string[] = []): Promise<SyslogServer> {
  const sockets = new Set<Socket>();
  let pending = Buffer.alloc(0);
  let handshakes = 0;
  const server = tls.createServer({ key: readFileSync(cert.key), cert: readFileSync(cert.cert) }, (socket) => {
    handshakes++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    pending = Buffer.alloc(0);
    socket.on("data", (data: Buffer) => {
      pending = Buffer.concat([pending, data]);
      for (;;) {
        const space = pending.indexOf(0x20);
        if (space < 0) break;
        const head = pending.subarray(0, space).toString("latin1");
        if (!/^[1-9]\d*$/.test(head)) throw new Error(`not an octet count: ${JSON.stringify(head)}`);
        const length = Number(head);
        if (pending.length < space + 1 + length) break;
        frames.push(pending.subarray(space + 1, space + 1 + length).toString("utf8"));
        pending = pending.subarray(space + 1 + length);
      }
    });
  });
  server.on("tlsClientError", () => undefined);
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    frames,
    leftover: () => pending.length,
    handshakes: () => handshakes,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

async function until(check: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!check() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return check();
}

function parse(frame: string): { pri: number; time: string; host: string; app: string; msg: string } | undefined {
  const m = RFC5424.exec(frame);
  return m ? { pri: Number(m[1]), time: m[2]!, host: m[3]!, app: m[4]!, msg: m[5]! } : undefined;
}

describe.sequential("kiln-syslog-tls ships records over verified TLS", () => {
  let dir: string;
  let shipper: string;
  let root: Issued;
  let good: Issued;
  let busybox: string;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "kiln-syslog-tls-"));
    const sandbox = await openSandbox({ enabled: true, warn: () => undefined });
    const ctx = createBakeContext(sharedHome(), dir, undefined, quiet, sandbox);
    shipper = path.join(dir, "kiln-syslog-tls");
    writeFileSync(shipper, await buildSyslogTlsClient(ctx));
    chmodSync(shipper, 0o755);
    writeFileSync(path.join(dir, "ca-bundle.pem"), (await loadSystemRoots(ctx)).pem);
    root = await makeCa(dir, "syslog-test-root");
    good = await issue(dir, "good", { dnsName: "logs.kiln.test", issuer: root });
    busybox = path.join(await ctx.apt.unpack(await resolveDebian(ctx, "busybox-static")), "bin", "busybox");
  }, 180_000);

  afterAll(() => {
    for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  /** Starts the shipper on a new FIFO; returns a writer for it (opened once the shipper reads it). */
  async function start(port: number, ca: string, name = "logs.kiln.test") {
    const fifo = path.join(dir, `fifo-${children.length}`);
    execFileSync("mkfifo", ["-m", "0600", fifo]);
    const child = spawn(shipper, [fifo, `${name}:${port}`, "127.0.0.1", ca, "i-0123456789abcdef0"], { stdio: ["ignore", "pipe", "pipe"] });
    children.push(child);
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    let fd = -1;
    // A FIFO opened for writing without blocking needs its reader (ENXIO until then), as in kiln-log.
    await until(() => {
      try {
        if (fd < 0) fd = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
        return true;
      } catch {
        return false;
      }
    }, 5000);
    expect(fd, stderr).toBeGreaterThanOrEqual(0);
    return {
      write: (text: string) => writeSync(fd, text),
      close: () => closeSync(fd),
      stderr: () => stderr,
      exited,
    };
  }

  it("sends each record as an RFC 5424 frame with its own time, severity and app-name; exits when the FIFO closes", async () => {
    const server = await syslogServer(good);
    const feed = await start(server.port, root.cert);
    feed.write("1735689599123 6 myapp hello world\n");
    feed.write("1735689600000 3 myapp bad thing\n1735689600001 6 kiln-init starting app: ./server\n");
    feed.write("1735689600002 4 kiln-log 3 lines dropped: the log shipper fell behind\n");
    feed.write("not a record\n1735689600003 9 myapp severity out of range\n");
    feed.write("1735689600004 6 myapp \n1735689600005 7 myapp héllo  two spaces\n");
    feed.write(`1735689600006 6 myapp ${"x".repeat(5000)}\n`);
    expect(await until(() => server.frames.length >= 7, 20_000), feed.stderr()).toBe(true);
    feed.close();
    expect(await feed.exited).toBe(0);
    expect(server.frames.map(parse)).toEqual([
      { pri: 14, time: "2024-12-31T23:59:59.123Z", host: "i-0123456789abcdef0", app: "myapp", msg: "hello world" },
      { pri: 11, time: "2025-01-01T00:00:00.000Z", host: "i-0123456789abcdef0", app: "myapp", msg: "bad thing" },
      { pri: 14, time: "2025-01-01T00:00:00.001Z", host: "i-0123456789abcdef0", app: "kiln-init", msg: "starting app: ./server" },
      {
        pri: 12,
        time: "2025-01-01T00:00:00.002Z",
        host: "i-0123456789abcdef0",
        app: "kiln-log",
        msg: "3 lines dropped: the log shipper fell behind",
      },
      { pri: 14, time: "2025-01-01T00:00:00.004Z", host: "i-0123456789abcdef0", app: "myapp", msg: "" },
      { pri: 15, time: "2025-01-01T00:00:00.005Z", host: "i-0123456789abcdef0", app: "myapp", msg: "héllo  two spaces" },
      { pri: 14, time: "2025-01-01T00:00:00.006Z", host: "i-0123456789abcdef0", app: "myapp", msg: "x".repeat(5000) },
    ]);
    expect(server.leftover()).toBe(0);
    expect(feed.stderr()).toMatch(/skipping records not in the form/);
    await server.close();
  }, 60_000);

  it("refuses a server whose chain leads to another CA, or whose certificate names another host: nothing is sent", async () => {
    const stranger = await makeCa(dir, "stranger-root");
    const cases = [
      { cert: await issue(dir, "strangers", { dnsName: "logs.kiln.test", issuer: stranger }), reason: /certificate not trusted/ },
      { cert: await issue(dir, "other-name", { dnsName: "other.kiln.test", issuer: root }), reason: /certificate name mismatch/ },
    ];
    for (const { cert, reason } of cases) {
      const server = await syslogServer(cert);
      const feed = await start(server.port, root.cert);
      feed.write("1735689599123 6 myapp a secret line\n");
      expect(await until(() => reason.test(feed.stderr()), 20_000), feed.stderr()).toBe(true);
      expect(feed.stderr()).toMatch(new RegExp(`^kiln-syslog-tls: logs\\.kiln\\.test:${server.port}: .*; retrying in 1 s$`, "m"));
      expect(server.handshakes()).toBe(0);
      expect(server.frames).toEqual([]);
      expect(server.leftover()).toBe(0);
      feed.close();
      expect(await feed.exited).toBe(0);
      await server.close();
    }
  }, 60_000);

  it("trusts the baked system roots (not a private CA), and --check explains a bad KILN_SYSLOG_CA", async () => {
    const bundle = path.join(dir, "ca-bundle.pem");
    const check = (file: string) => {
      try {
        return { code: 0, out: execFileSync(shipper, ["--check", file], { stdio: ["ignore", "pipe", "pipe"] }).toString() };
      } catch (error) {
        const e = error as { status: number; stderr: Buffer };
        return { code: e.status, out: e.stderr.toString() };
      }
    };
    expect(check(bundle).code).toBe(0);
    writeFileSync(path.join(dir, "not-pem.pem"), "hello\n");
    expect(check(path.join(dir, "not-pem.pem"))).toEqual({ code: 2, out: expect.stringMatching(/not-pem\.pem: holds no PEM certificate/) });
    const server = await syslogServer(good);
    const feed = await start(server.port, bundle);
    expect(await until(() => /certificate not trusted/.test(feed.stderr()), 20_000), feed.stderr()).toBe(true);
    feed.close();
    await feed.exited;
    await server.close();
  }, 60_000);

  it("keeps lines written while the server is away and delivers them when it is back, on a new connection", async () => {
    const first = await syslogServer(good);
    const port = first.port;
    const feed = await start(port, root.cert);
    feed.write("1735689600000 6 myapp before the restart\n");
    expect(await until(() => first.frames.length === 1, 20_000), feed.stderr()).toBe(true);
    await first.close();
    expect(await until(() => /: connection lost: /.test(feed.stderr()), 10_000), feed.stderr()).toBe(true);
    feed.write("1735689600001 6 myapp while away 1\n");
    feed.write("1735689600002 6 myapp while away 2\n");
    // Refused at least once while nothing listens: the lines wait in the queue.
    expect(await until(() => /connection refused/.test(feed.stderr()), 10_000), feed.stderr()).toBe(true);
    const frames: string[] = [];
    const second = await syslogServer(good, port, frames);
    feed.write("1735689600003 6 myapp after the restart\n");
    expect(await until(() => frames.length >= 3, 30_000), feed.stderr()).toBe(true);
    expect(frames.map((f) => parse(f)?.msg)).toEqual(["while away 1", "while away 2", "after the restart"]);
    expect(feed.stderr()).toMatch(/connected again/);
    feed.close();
    expect(await feed.exited).toBe(0);
    await second.close();
  }, 90_000);

  it("never blocks the writer: with the server away it queues, then the FIFO fills and writes fail at once; all queued lines arrive", async () => {
    // A port that was just free: nothing listens until the second server below.
    const away = await syslogServer(good);
    const port = away.port;
    await away.close();
    const feed = await start(port, root.cert);
    const record = (i: number) => `1735689600000 6 myapp line ${String(i).padStart(6, "0")} ${"y".repeat(100)}\n`;
    let written = 0;
    const began = Date.now();
    for (;;) {
      try {
        feed.write(record(written));
        written++;
      } catch (error) {
        expect((error as NodeJS.ErrnoException).code).toBe("EAGAIN");
        // The shipper may still take a chunk out of the FIFO: a full FIFO stays full once its queue is.
        await new Promise((r) => setTimeout(r, 300));
        try {
          feed.write(record(written));
          written++;
        } catch {
          break;
        }
      }
    }
    const blockedMs = Date.now() - began;
    const queuedBytes = written * record(0).length;
    // The 64 KiB pipe and the 256 KiB queue (whose frames are longer than the records), not an unbounded buffer.
    expect(queuedBytes).toBeGreaterThan(200 * 1024);
    expect(queuedBytes).toBeLessThan(400 * 1024);
    const frames: string[] = [];
    const server = await syslogServer(good, port, frames);
    expect(await until(() => frames.length >= written, 30_000), `${frames.length} of ${written}: ${feed.stderr()}`).toBe(true);
    expect(frames.map((f) => parse(f)?.msg.slice(0, 11))).toEqual(
      Array.from({ length: written }, (_, i) => `line ${String(i).padStart(6, "0")}`),
    );
    feed.close();
    expect(await feed.exited).toBe(0);
    await server.close();
    expect(blockedMs).toBeLessThan(10_000);
  }, 90_000);

  it("the init decodes KILN_SYSLOG_CA (base64 of the PEM, or PEM with \\n) and refuses one that is not a CA file", () => {
    // The init's own function, run by the image's busybox with kiln-syslog-tls on its PATH.
    const init = readFileSync(path.join(repo, "templates", "init", "init"), "utf8");
    const fn = /^syslog_tls_trust\(\) \{[\s\S]*?^\}$/m.exec(init)?.[0];
    expect(fn).toBeDefined();
    const run = path.join(dir, "run");
    execFileSync("mkdir", ["-p", run, path.join(dir, "bin")]);
    execFileSync("cp", [shipper, path.join(dir, "bin", "kiln-syslog-tls")]);
    const script = `${fn!.replaceAll("/run/kiln/", `${run}/`)}\nget_env() { printf '%s' "$CA_VALUE"; }\nsyslog_tls_trust`;
    const trust = (value: string) => {
      const env = { PATH: `${path.join(dir, "bin")}:${process.env.PATH}`, CA_VALUE: value };
      try {
        return {
          ok: true,
          out: execFileSync(busybox, ["sh", "-c", script], { env, stdio: ["ignore", "pipe", "pipe"] })
            .toString()
            .trim(),
        };
      } catch (error) {
        return { ok: false, out: (error as { stderr: Buffer }).stderr.toString().trim() };
      }
    };
    const pem = readFileSync(root.cert, "utf8");
    expect(trust("")).toEqual({ ok: true, out: "/etc/kiln/ca-bundle.pem" });
    for (const value of [Buffer.from(pem).toString("base64"), pem.trimEnd().replaceAll("\n", "\\n")]) {
      expect(trust(value)).toEqual({ ok: true, out: path.join(run, "syslog-ca.pem") });
      expect(readFileSync(path.join(run, "syslog-ca.pem"), "utf8").trim()).toBe(pem.trim());
    }
    expect(trust("not base64!")).toEqual({ ok: false, out: "KILN_SYSLOG_CA is neither PEM text nor base64 of a PEM file" });
    expect(trust(Buffer.from("hello\n").toString("base64"))).toEqual({ ok: false, out: "KILN_SYSLOG_CA: holds no PEM certificate" });
  });
});

// The init hands kiln-log `--fifo PATH` (issue 17's shipper contract); until kiln-log takes it, a boot cannot ship.
const kilnLogTakesFifo = readFileSync(path.join(repo, "templates", "init", "kiln-log.c"), "utf8").includes("--fifo");

describe.skipIf(!kilnLogTakesFifo).sequential("a booted image ships to tls://10.0.2.2 trusting KILN_SYSLOG_CA", () => {
  let vm: LocalVm | undefined;
  let dir: string;
  afterAll(async () => {
    if (vm) {
      await vm.shutdown(20_000);
      await vm.cleanup();
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("delivers the app's and the init's lines as RFC 5424 over verified TLS", async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "kiln-syslog-tls-boot-"));
    const root = await makeCa(dir, "boot-root");
    // 10.0.2.2 is the host in QEMU's user network; BearSSL matches DNS names only, so the certificate names it as one.
    const server = await syslogServer(await issue(dir, "host", { dnsName: "10.0.2.2", issuer: root }));
    const home = sharedHome();
    const { image } = await bake(path.join(repo, "test", "fixtures", "imds", "env-app"), {}, home, quiet);
    const port = await findFreePort();
    vm = await LocalVm.start({
      image: await new ImageStore(home).resolve(image.ref),
      home,
      firmware: "bios",
      forwards: [{ hostAddress: "127.0.0.1", hostPort: port, guestPort: 8080 }],
      env: { KILN_SYSLOG: `tls://10.0.2.2:${server.port}`, KILN_SYSLOG_CA: readFileSync(root.cert).toString("base64") },
    });
    const health = await waitHealthy(`http://127.0.0.1:${port}/healthz`, 180_000, vm.exited, vm.startedAtMs);
    expect(health.healthy, await vm.consoleTail(40)).toBe(true);
    await httpGet(`http://127.0.0.1:${port}/log`);
    const arrived = await until(() => server.frames.some((f) => f.includes("an error on stderr")), 30_000);
    expect(arrived, `${server.frames.join("\n")}\n${await vm.consoleTail(40)}`).toBe(true);
    const frames = server.frames.map(parse);
    expect(frames.every(Boolean), server.frames.join("\n")).toBe(true);
    expect(frames).toContainEqual(
      expect.objectContaining({ pri: 14, host: vm.record.id, app: "env-app", msg: "env-app listening on 8080" }),
    );
    expect(frames).toContainEqual(
      expect.objectContaining({ pri: 11, host: vm.record.id, app: "env-app", msg: "env-app: an error on stderr" }),
    );
    expect(frames).toContainEqual(expect.objectContaining({ app: "kiln-init", msg: expect.stringMatching(/^starting app: /) }));
    expect(await vm.consoleTail(200)).toMatch(
      /shipping logs to tls:\/\/10\.0\.2\.2:\d+ \(TLS to 10\.0\.2\.2:\d+, certificate for 10\.0\.2\.2 from KILN_SYSLOG_CA/,
    );
    await server.close();
  }, 400_000);
});
