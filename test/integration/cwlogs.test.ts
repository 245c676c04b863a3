// The guest's CloudWatch Logs path, run on the host as bakes build it (no QEMU): kiln-log on a
// real pseudo-terminal writes records into a FIFO, kiln-cwlogs reads them and ships them with
// PutLogEvents to moto through a small HTTP proxy the test controls (stopped for 30 s, answering
// ThrottlingException, refusing old credentials), signed with credentials from a fake IMDSv2
// that rotates them. Events are read back from moto with the SDK. The SigV4 signature is checked
// against the SDK's own signer. Figures (lines/s, RSS, CPU, delay) are printed for the notes.
import { type ChildProcess, spawn } from "node:child_process";
import { createHash, createHmac } from "node:crypto";
import { closeSync, constants, existsSync, openSync, readFileSync, writeSync } from "node:fs";
import { chmod, mkdtemp, open, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import os from "node:os";
import path from "node:path";
import {
  CloudWatchLogsClient,
  CreateLogGroupCommand,
  CreateLogStreamCommand,
  GetLogEventsCommand,
  type OutputLogEvent,
} from "@aws-sdk/client-cloudwatch-logs";
import { SignatureV4 } from "@smithy/signature-v4";
import type { SourceData } from "@smithy/types";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBakeContext } from "../../src/bake/context.js";
import { FREESTANDING_FLAGS } from "../../src/bake/freestanding.js";
import { buildLogShipper } from "../../src/bake/https-client.js";
import { run } from "../../src/exec.js";
import { openSandbox } from "../../src/sandbox.js";
import { quiet, repo, sharedHome } from "./harness.js";
import { issue, makeCa, startTlsServer } from "../fixtures/tls/pki.js";
import { startMoto, type Moto } from "./moto.js";

const GROUP = "/kiln/cwtest/prod";
const REGION = "us-east-1";

async function until(check: () => boolean | Promise<boolean>, ms: number, what: string, context = () => ""): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${context()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** An IMDSv2 whose role credentials the test replaces, with the Expiration it chooses. */
function startFakeImds() {
  const state = { key: "AKIDFIRST0000000", expiresInMs: 3600_000, tokenGets: 0, credentialGets: 0 };
  const tokens = new Set<string>();
  const server = http.createServer((req, res) => {
    req.resume();
    const answer = (status: number, body = "") => {
      res.writeHead(status, { "content-length": Buffer.byteLength(body) });
      res.end(body);
    };
    if (req.method === "PUT" && req.url === "/latest/api/token") {
      if (!req.headers["x-aws-ec2-metadata-token-ttl-seconds"]) return answer(400);
      const token = `token-${tokens.size}`;
      tokens.add(token);
      state.tokenGets++;
      return answer(200, token);
    }
    if (!tokens.has(String(req.headers["x-aws-ec2-metadata-token"]))) return answer(401);
    if (req.url === "/latest/meta-data/iam/security-credentials/") return answer(200, "kiln-app-role");
    if (req.url === "/latest/meta-data/iam/security-credentials/kiln-app-role") {
      state.credentialGets++;
      const expiration = new Date(Date.now() + state.expiresInMs).toISOString().replace(/\.\d+Z$/, "Z");
      const body = { Code: "Success", Type: "AWS-HMAC", AccessKeyId: state.key, SecretAccessKey: `secret-of-${state.key}` };
      return answer(200, JSON.stringify({ ...body, Token: `session-${state.key}`, Expiration: expiration }, null, 2));
    }
    answer(404);
  });
  return { server, state };
}

interface Seen {
  readonly at: number;
  readonly target: string;
  readonly keyId: string;
  readonly status: number;
  readonly events: number;
}

/**
 * An HTTP proxy in front of moto that records each call (target, access key id, status, event
 * count), can refuse calls (throttling, expired keys), and can be stopped and started again on
 * the same port (connections refused meanwhile).
 */
function startProxy(upstream: string) {
  const seen: Seen[] = [];
  const control = { throttle: 0, refuseKey: "" };
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const target = String(req.headers["x-amz-target"] ?? "");
      const keyId = /Credential=([^/]+)\//.exec(String(req.headers.authorization ?? ""))?.[1] ?? "";
      const events = target.endsWith("PutLogEvents") ? (JSON.parse(body.toString()).logEvents?.length ?? 0) : 0;
      const refuse = (status: number, type: string) => {
        seen.push({ at: Date.now(), target, keyId, status, events });
        const text = JSON.stringify({ __type: type, message: type });
        res.writeHead(status, { "content-type": "application/x-amz-json-1.1", "content-length": text.length });
        res.end(text);
      };
      if (control.refuseKey && keyId === control.refuseKey) return refuse(400, "ExpiredTokenException");
      if (control.throttle > 0 && target.endsWith("PutLogEvents")) {
        control.throttle--;
        return refuse(400, "ThrottlingException");
      }
      const forward = http.request(`${upstream}/`, { method: "POST", headers: req.headers }, (answer) => {
        const parts: Buffer[] = [];
        answer.on("data", (c: Buffer) => parts.push(c));
        answer.on("end", () => {
          seen.push({ at: Date.now(), target, keyId, status: answer.statusCode ?? 0, events });
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          res.end(Buffer.concat(parts));
        });
      });
      forward.end(body);
    });
  });
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  let port = 0;
  return {
    seen,
    control,
    get port() {
      return port;
    },
    async start(): Promise<void> {
      await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
      port = (server.address() as AddressInfo).port;
    },
    async stop(): Promise<void> {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}

/** kiln-log on a pseudo-terminal with one FIFO output: write() puts lines on the terminal. */
async function startKilnLog(binary: string, dir: string, fifo: string) {
  const ttyFile = path.join(dir, `app-${Date.now()}.tty`);
  const child = spawn(binary, [ttyFile, "cwapp", "i-host", "--fifo", fifo], { stdio: ["ignore", "pipe", "inherit"] });
  let console = "";
  child.stdout?.on("data", (d: Buffer) => (console += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
  await until(() => existsSync(ttyFile), 5000, "kiln-log's terminal");
  const fd = openSync(readFileSync(ttyFile, "utf8").trim(), constants.O_WRONLY | constants.O_NOCTTY);
  return {
    /** Writes to the terminal; returns how long the write took (it must never wait on shipping). */
    write(text: string | Buffer): number {
      const started = performance.now();
      writeSync(fd, typeof text === "string" ? Buffer.from(text) : text);
      return performance.now() - started;
    },
    console: () => console,
    async close(): Promise<number | null> {
      closeSync(fd);
      return exited;
    },
  };
}

describe.sequential("kiln-cwlogs ships kiln-log's lines to CloudWatch Logs", () => {
  let dir: string;
  let shipperBinary: string;
  let kilnLog: string;
  let moto: Moto;
  let logs: CloudWatchLogsClient;
  const imds = startFakeImds();
  let proxy: ReturnType<typeof startProxy>;
  const shippers: ChildProcess[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "kiln-cwlogs-"));
    const sandbox = await openSandbox({ enabled: true, warn: () => undefined });
    const ctx = createBakeContext(sharedHome(), dir, undefined, quiet, sandbox);
    shipperBinary = path.join(dir, "kiln-cwlogs");
    await writeFile(shipperBinary, await buildLogShipper(ctx));
    await chmod(shipperBinary, 0o755);
    kilnLog = path.join(dir, "kiln-log");
    await run(["gcc", ...FREESTANDING_FLAGS, "-o", kilnLog, path.join(repo, "templates", "init", "kiln-log.c")]);
    moto = await startMoto({ strict: false });
    logs = new CloudWatchLogsClient({
      region: REGION,
      endpoint: moto.upstream,
      credentials: { accessKeyId: "testing", secretAccessKey: "testing" },
    });
    await logs.send(new CreateLogGroupCommand({ logGroupName: GROUP }));
    await new Promise<void>((resolve) => imds.server.listen(0, "127.0.0.1", resolve));
    proxy = startProxy(moto.upstream);
    await proxy.start();
  }, 180_000);

  afterAll(async () => {
    for (const s of shippers) s.kill("SIGKILL");
    await proxy?.stop().catch(() => undefined);
    await new Promise((r) => imds.server.close(r));
    await moto?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** Starts a shipper for STREAM reading FIFO; resolves once the FIFO exists. */
  async function startShipper(
    stream: string,
    tls?: { endpoint: string; caFile: string },
  ): Promise<{ fifo: string; child: ChildProcess; stderr: () => string }> {
    const fifo = path.join(dir, `${stream}.fifo`);
    const imdsPort = (imds.server.address() as AddressInfo).port;
    const endpoint = tls?.endpoint ?? `http://127.0.0.1:${proxy.port}`;
    const args = [fifo, REGION, GROUP, stream, endpoint, "127.0.0.1", tls?.caFile ?? "-", `127.0.0.1:${imdsPort}`];
    const child = spawn(shipperBinary, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    shippers.push(child);
    await until(() => existsSync(fifo), 5000, "the shipper's FIFO");
    return { fifo, child, stderr: () => stderr };
  }

  async function eventsOf(stream: string): Promise<OutputLogEvent[]> {
    const all: OutputLogEvent[] = [];
    let token: string | undefined;
    for (;;) {
      const page = await logs
        .send(new GetLogEventsCommand({ logGroupName: GROUP, logStreamName: stream, startFromHead: true, nextToken: token }))
        .catch((e: Error) => (e.name === "ResourceNotFoundException" ? undefined : Promise.reject(e)));
      if (!page) return all;
      all.push(...(page.events ?? []));
      if (!page.events?.length || page.nextForwardToken === token) return all;
      token = page.nextForwardToken;
    }
  }

  it("creates the stream and delivers lines in order with their exact text (UTF-8, quotes, control characters)", async () => {
    const shipper = await startShipper("i-0text");
    const log = await startKilnLog(kilnLog, dir, shipper.fifo);
    const texts = [
      "plain line",
      'quotes " and \\ backslashes \\" and {"json":true}',
      "unicode: héllo wörld ☃ 日本語 😀",
      "control: \x01 \x1b[31mred\x1b[0m tab\there",
      "kiln-init: starting app: ./server",
    ];
    const started = Date.now();
    for (const t of texts) log.write(`${t}\n`);
    log.write(Buffer.from([0x62, 0x61, 0x64, 0xff, 0xc3, 0x28, 0x20, 0xed, 0xa0, 0x80, 0x0a])); // invalid UTF-8
    await until(async () => (await eventsOf("i-0text")).length >= 6, 20_000, "six events in moto");
    const delay = Date.now() - started;
    const events = await eventsOf("i-0text");
    expect(events.map((e) => e.message)).toEqual([
      ...texts.slice(0, 4),
      "kiln-init: starting app: ./server",
      "bad\ufffd\ufffd( \ufffd\ufffd\ufffd",
    ]);
    const times = events.map((e) => e.timestamp ?? 0);
    expect([...times].sort((a, b) => a - b)).toEqual(times);
    expect(Math.abs(times[0]! - started)).toBeLessThan(5000);
    // The console is unchanged: every line there too.
    expect(log.console()).toContain("unicode: héllo wörld ☃ 日本語 😀");
    expect(proxy.seen.find((s) => s.target.endsWith("CreateLogStream"))).toBeDefined();
    console.log(`figure: delay from write to visible in moto (first batch, stream created): ${delay} ms`);
    expect(await log.close()).toBe(0);
  }, 60_000);

  it("sends a line longer than a FIFO record (4 KiB) whole, as consecutive events", async () => {
    const shipper = await startShipper("i-0long");
    const log = await startKilnLog(kilnLog, dir, shipper.fifo);
    const long = "é".repeat(2040); // 4080 bytes: one kiln-log line, more than a record's text room
    log.write(`${long}\n`);
    await until(async () => (await eventsOf("i-0long")).length >= 2, 20_000, "the long line's events");
    const messages = (await eventsOf("i-0long")).map((e) => e.message ?? "");
    expect(messages.join("")).toBe(long);
    expect(messages.every((m) => !m.includes("\ufffd"))).toBe(true); // cut between characters
    expect(await log.close()).toBe(0);
  }, 60_000);

  it("backs off on ThrottlingException, then delivers", async () => {
    await logs.send(new CreateLogStreamCommand({ logGroupName: GROUP, logStreamName: "i-0throttle" }));
    const shipper = await startShipper("i-0throttle");
    const log = await startKilnLog(kilnLog, dir, shipper.fifo);
    const before = proxy.seen.length;
    proxy.control.throttle = 3;
    log.write("after throttling\n");
    await until(async () => (await eventsOf("i-0throttle")).length >= 1, 30_000, "the event after throttling");
    const calls = proxy.seen.slice(before).filter((s) => s.target.endsWith("PutLogEvents"));
    expect(calls.map((c) => c.status)).toEqual([400, 400, 400, 200]);
    const gaps = calls.slice(1).map((c, i) => c.at - calls[i]!.at);
    // Backoff doubles (jitter keeps each wait within half to all of its step): the third wait is the longest.
    expect(gaps[2]!).toBeGreaterThan(gaps[0]!);
    expect(gaps[0]!).toBeGreaterThanOrEqual(100);
    expect(shipper.stderr()).toMatch(/cannot deliver logs to CloudWatch Logs \(throttled\)/);
    expect(shipper.stderr()).toMatch(/delivering again, after 3 failed attempts/);
    expect(await log.close()).toBe(0);
  }, 60_000);

  it("uses rotated credentials: fetched again before expiry, and after the service refuses the old ones", async () => {
    imds.state.key = "AKIDROTATE100000";
    imds.state.expiresInMs = 5 * 60_000 + 4000; // inside the 5-minute margin in 4 s
    const shipper = await startShipper("i-0rotate");
    const log = await startKilnLog(kilnLog, dir, shipper.fifo);
    log.write("with the first keys\n");
    await until(async () => (await eventsOf("i-0rotate")).length >= 1, 20_000, "the first event");
    imds.state.key = "AKIDROTATE200000";
    imds.state.expiresInMs = 3600_000;
    await new Promise((r) => setTimeout(r, 4500));
    log.write("with the second keys\n");
    await until(async () => (await eventsOf("i-0rotate")).length >= 2, 20_000, "the second event");
    const keys = () => proxy.seen.filter((s) => s.target.endsWith("PutLogEvents") && s.status === 200).map((s) => s.keyId);
    expect(keys().slice(-2)).toEqual(["AKIDROTATE100000", "AKIDROTATE200000"]);

    // Keys revoked before their Expiration: the refusal makes the shipper ask IMDS again.
    imds.state.key = "AKIDROTATE300000";
    proxy.control.refuseKey = "AKIDROTATE200000";
    log.write("with the third keys\n");
    await until(async () => (await eventsOf("i-0rotate")).length >= 3, 30_000, "the third event");
    proxy.control.refuseKey = "";
    expect(keys().at(-1)).toBe("AKIDROTATE300000");
    expect((await eventsOf("i-0rotate")).map((e) => e.message)).toEqual([
      "with the first keys",
      "with the second keys",
      "with the third keys",
    ]);
    expect(await log.close()).toBe(0);
  }, 90_000);

  it("rides out the endpoint down for 30 s: the app's writes never wait, lines after the buffer are dropped and counted", async () => {
    const stream = "i-0outage";
    const shipper = await startShipper(stream);
    const log = await startKilnLog(kilnLog, dir, shipper.fifo);
    log.write("before the outage\n");
    await until(async () => (await eventsOf(stream)).length >= 1, 20_000, "the first event");
    // ~1 KiB lines, 150 a second: 30 s of them is 4.5 MiB, more than the FIFO (1 MiB) and a batch hold.
    const filler = "y".repeat(1000);
    let written = 0;
    const writeFor = async (ms: number): Promise<number[]> => {
      const took: number[] = [];
      const ends = Date.now() + ms;
      while (Date.now() < ends) {
        for (let i = 0; i < 15; i++) took.push(log.write(`line ${++written} ${filler}\n`));
        await new Promise((r) => setTimeout(r, 100));
      }
      return took.sort((a, b) => a - b);
    };
    const baseline = await writeFor(3000);
    await proxy.stop();
    const outageMs = Number(process.env.KILN_TEST_OUTAGE_MS ?? 30_000);
    const during = await writeFor(outageMs);
    const median = (xs: number[]) => xs[Math.floor(xs.length / 2)]!;
    const p99 = (xs: number[]) => xs[Math.floor(xs.length * 0.99)]!;
    await proxy.start();
    // The app writes nothing more: every line must still be accounted for, the drop count included.
    // Delivery is at least once: a request the outage cuts after the endpoint took it is sent
    // again, so its lines may arrive twice (PutLogEvents has no idempotency token). A line
    // counts once, where it first arrived.
    let duplicates = 0;
    const account = (events: OutputLogEvent[]) => {
      const seen = new Set<number>();
      const all = events
        .map((e) => /^line (\d+) /.exec(e.message ?? "")?.[1])
        .filter(Boolean)
        .map(Number);
      const numbered = all.filter((n) => !seen.has(n) && seen.add(n));
      duplicates = all.length - numbered.length;
      const dropNotes = events.filter((e) => e.message?.startsWith("kiln-log: "));
      const note = /^kiln-log: (\d+) lines dropped: the log shipper fell behind$/;
      const dropped = dropNotes.reduce((n, e) => n + Number(note.exec(e.message!)![1]), 0);
      return { numbered, dropNotes, dropped };
    };
    await until(
      async () => {
        const { numbered, dropped } = account(await eventsOf(stream));
        return numbered.length + dropped === written;
      },
      60_000,
      "every line delivered or counted as dropped",
      () => `${shipper.stderr()}\n${JSON.stringify(proxy.seen.slice(-8))}\n${log.console().slice(-300)}`,
    );
    log.write("after the outage\n");
    await until(
      async () => (await eventsOf(stream)).some((e) => e.message === "after the outage"),
      30_000,
      "the line written after the outage",
      () => `${shipper.stderr()}\n${JSON.stringify(proxy.seen.slice(-8))}\n${log.console().slice(-300)}`,
    );
    const { numbered, dropNotes, dropped } = account(await eventsOf(stream));
    // Nothing lost silently: every line either arrived, in order, or is counted in a drop record.
    expect([...numbered].sort((a, b) => a - b)).toEqual(numbered);
    // At most the one batch in flight when the endpoint went away arrives twice.
    expect(duplicates).toBeLessThanOrEqual(10_000);
    expect(dropNotes.length).toBeGreaterThan(0);
    expect(numbered.length + dropped).toBe(written);
    // Why delivery stopped is said once per outage: the first failure may be the request the
    // outage cut short, or a refused connection. (The app's write times are a figure, printed below,
    // not an assertion: timings belong to benchmarks.)
    expect(shipper.stderr()).toMatch(
      /cannot deliver logs to CloudWatch Logs \((connection refused|no (HTTP )?answer from the endpoint|timed out)\)/,
    );
    console.log(
      `figure: ${outageMs / 1000} s outage, ${written} lines of 1 KiB written: ${numbered.length} delivered (${duplicates} twice), ${dropped} dropped and counted; ` +
        `terminal write median/p99 ${median(baseline).toFixed(3)}/${p99(baseline).toFixed(2)} ms before, ` +
        `${median(during).toFixed(3)}/${p99(during).toFixed(2)} ms during the outage`,
    );
    expect(await log.close()).toBe(0);
  }, 180_000);

  it("ships over TLS verified against its CA file, and sends nothing to a server whose certificate does not chain to it", async () => {
    const root = await makeCa(dir, "cw-root");
    const stranger = await makeCa(dir, "cw-stranger");
    const good = await startTlsServer(await issue(dir, "cw-good", { dnsName: "logs.kiln.test", issuer: root }), {
      forwardTo: Number(new URL(moto.upstream).port),
    });
    const forged = await startTlsServer(await issue(dir, "cw-forged", { dnsName: "logs.kiln.test", issuer: stranger }), {
      forwardTo: Number(new URL(moto.upstream).port),
    });
    try {
      const trusted = await startShipper("i-0tls", { endpoint: `https://logs.kiln.test:${good.port}`, caFile: root.cert });
      const refused = await startShipper("i-0forged", { endpoint: `https://logs.kiln.test:${forged.port}`, caFile: root.cert });
      for (const fifo of [trusted.fifo, refused.fifo]) {
        const log = await startKilnLog(kilnLog, dir, fifo);
        log.write("over TLS\n");
        expect(await log.close()).toBe(0);
      }
      await until(async () => (await eventsOf("i-0tls")).length >= 1, 20_000, "the event sent over TLS", trusted.stderr);
      expect((await eventsOf("i-0tls")).map((e) => e.message)).toEqual(["over TLS"]);
      expect(good.received()).toContain("X-Amz-Target: Logs_20140328.PutLogEvents"); // what the TLS front decrypted
      await until(() => /cannot deliver logs/.test(refused.stderr()), 20_000, "the refusal");
      expect(refused.stderr()).toMatch(/cannot deliver logs to CloudWatch Logs \(TLS: certificate not trusted/);
      expect(await eventsOf("i-0forged")).toEqual([]);
      expect(forged.received()).toBe(""); // refused during the handshake: not one byte of a request
    } finally {
      await good.close();
      await forged.close();
    }
  }, 90_000);

  it("kiln-log keeps the console going when the shipper dies, and when a FIFO has no reader or does not exist", async () => {
    const shipper = await startShipper("i-0dies");
    const lonely = path.join(dir, "no-reader.fifo");
    await run(["mkfifo", lonely]);
    const child = spawn(kilnLog, [path.join(dir, "dies.tty"), "cwapp", "i-host", "--fifo", shipper.fifo, "--fifo", lonely], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    await until(() => existsSync(path.join(dir, "dies.tty")), 5000, "kiln-log's terminal");
    const fd = openSync(readFileSync(path.join(dir, "dies.tty"), "utf8").trim(), constants.O_WRONLY | constants.O_NOCTTY);
    writeSync(fd, "before the shipper dies\n");
    await until(async () => (await eventsOf("i-0dies")).length >= 1, 20_000, "the first event");
    shipper.child.kill("SIGKILL");
    await new Promise((r) => shipper.child.once("exit", r));
    for (let i = 1; i <= 50; i++) writeSync(fd, `after ${i}\n`);
    closeSync(fd);
    expect(await exited).toBe(0); // not killed by SIGPIPE, not stuck on a FIFO without a reader
    expect(out).toContain("after 50");
    const missing = spawn(kilnLog, [
      path.join(dir, "x.tty"),
      "a",
      "h",
      "--fifo",
      path.join(dir, "absent.fifo"),
      "--fifo",
      "/",
      "--fifo",
      "z",
    ]);
    expect(await new Promise((resolve) => missing.on("exit", resolve))).toBe(1); // a third --fifo is a usage error
  }, 60_000);

  it("on SIGTERM (powering off) ships what it holds at once and exits", async () => {
    const shipper = await startShipper("i-0stop");
    const log = await startKilnLog(kilnLog, dir, shipper.fifo);
    log.write("the last words\n");
    expect(await log.close()).toBe(0); // kiln-log has written everything to the FIFO
    const exited = new Promise<number | null>((resolve) => shipper.child.on("exit", (code) => resolve(code)));
    shipper.child.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect((await eventsOf("i-0stop")).map((e) => e.message)).toEqual(["the last words"]);
  }, 60_000);

  it("ships lines fast and cheaply (figures)", async () => {
    const stream = "i-0bench";
    const shipper = await startShipper(stream);
    const count = 50_000;
    const before = proxy.seen.length;
    // Written from libuv's thread pool: a blocking write on this thread would stall the proxy and IMDS too.
    const fifo = await open(shipper.fifo, "w");
    const started = Date.now();
    const text = "GET /api/items/42 200 3.1ms user=alice trace=0f3c9a1e5b7d4c2a";
    let chunk = "";
    for (let i = 1; i <= count; i++) {
      chunk += `${Date.now()} 6 bench ${text} ${i}\n`;
      if (i % 500 === 0) {
        await fifo.write(chunk);
        chunk = "";
      }
    }
    await fifo.close();
    const shipped = () =>
      proxy.seen
        .slice(before)
        .filter((s) => s.status === 200)
        .reduce((n, s) => n + s.events, 0);
    await until(() => shipped() >= count, 120_000, "every bench line accepted");
    const seconds = (Date.now() - started) / 1000;
    const status = readFileSync(`/proc/${shipper.child.pid}/status`, "utf8");
    const rssKiB = Number(/VmHWM:\s+(\d+)/.exec(status)![1]);
    const stat = readFileSync(`/proc/${shipper.child.pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    const cpuSeconds = (Number(stat[11]) + Number(stat[12])) / 100; // clock ticks (USER_HZ = 100)
    expect(rssKiB).toBeLessThan(8 * 1024);
    console.log(
      `figure: ${count} lines shipped in ${seconds.toFixed(1)} s (${Math.round(count / seconds)} lines/s, moto included); ` +
        `shipper peak RSS ${rssKiB} KiB, CPU ${cpuSeconds.toFixed(2)} s`,
    );
  }, 180_000);
});

function bytesOf(data: SourceData): Buffer {
  if (typeof data === "string") return Buffer.from(data);
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data);
}

describe("kiln-cwlogs signs like the SDK", () => {
  it("computes the same SigV4 Authorization header as @smithy/signature-v4 for a fixed request", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "kiln-cwlogs-sign-"));
    try {
      const sandbox = await openSandbox({ enabled: true, warn: () => undefined });
      const binary = path.join(dir, "kiln-cwlogs");
      await writeFile(binary, await buildLogShipper(createBakeContext(sharedHome(), dir, undefined, quiet, sandbox)));
      await chmod(binary, 0o755);
      class Sha256 {
        private readonly h;
        constructor(secret?: SourceData) {
          this.h = secret ? createHmac("sha256", bytesOf(secret)) : createHash("sha256");
        }
        update(data: SourceData): void {
          this.h.update(bytesOf(data));
        }
        async digest(): Promise<Uint8Array> {
          return new Uint8Array(this.h.digest());
        }
      }
      const body = '{"logGroupName":"/kiln/a/prod","logStreamName":"i-0abc","logEvents":[{"timestamp":1,"message":"h\\u00e9 \\"x\\""}]}';
      for (const [host, token] of [
        ["logs.eu-west-1.amazonaws.com", "FQoGZXIvYXdzEJr//////////wEaDOKEN+/=="],
        ["127.0.0.1:4566", undefined],
      ] as const) {
        const signer = new SignatureV4({
          service: "logs",
          region: "eu-west-1",
          sha256: Sha256,
          applyChecksum: false,
          credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", sessionToken: token },
        });
        const signed = await signer.sign(
          {
            method: "POST",
            protocol: "https:",
            hostname: host,
            path: "/",
            query: {},
            headers: { host, "content-type": "application/x-amz-json-1.1", "x-amz-target": "Logs_20140328.PutLogEvents" },
            body,
          },
          { signingDate: new Date("2026-03-01T12:34:56Z") },
        );
        const ours = await run(
          [
            binary,
            "sign",
            "eu-west-1",
            host,
            "20260301T123456Z",
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            token ?? "-",
            "Logs_20140328.PutLogEvents",
          ],
          { input: body },
        );
        expect(ours.stdout.trim()).toBe(signed.headers.authorization);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
