/**
 * The strictness layer: an HTTP proxy in front of moto that enforces the documented AWS rules
 * moto skips (each rule in rules/ cites its AWS documentation page) and injects seeded faults.
 * Tests point the real SDK clients at `endpoint`; moto stays the engine behind it.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { type AwsRequest, type AwsResponse, awsError, internalQuery, parseAwsRequest } from "./protocol.js";

export interface RuleContext {
  /** Sends a request on to moto as it is. */
  forward(request: AwsRequest): Promise<AwsResponse>;
  /** Asks moto itself (query protocols: ec2, elasticloadbalancing, autoscaling, iam); returns the XML. */
  query(service: string, region: string, params: Record<string, string>): Promise<string>;
  /** Milliseconds, as the layer's clock sees them (tests may move it forward). */
  now(): number;
  /** State a rule keeps between requests, by rule name; cleared by reset(). */
  state<T>(rule: string, init: () => T): T;
}

export interface StrictRule {
  readonly name: string;
  /** Where AWS documents the behaviour: page title and address. */
  readonly source: string;
  /** Refuse a request (an AWS error answer), or let it through (undefined). */
  before?(request: AwsRequest, ctx: RuleContext): Promise<AwsResponse | undefined> | AwsResponse | undefined;
  /** Wrap the rest of the handling (e.g. serialise requests moto does not handle atomically). */
  around?(request: AwsRequest, ctx: RuleContext, next: () => Promise<AwsResponse>): Promise<AwsResponse>;
  /** Rewrite moto's answer (e.g. target health states moto does not model). */
  after?(request: AwsRequest, response: AwsResponse, ctx: RuleContext): Promise<AwsResponse> | AwsResponse;
}

/**
 * "drop": the connection closes before the request reaches moto. "lost": moto carries the
 * request out, then the connection closes before the answer arrives (a timeout after AWS did
 * the work): a retried create must not make a second resource (ClientToken, or a name AWS keeps
 * unique). Not in the default kinds: tests ask for it.
 */
export type FaultKind = "throttle" | "500" | "503" | "drop" | "lost";

export interface FaultOptions {
  /** Fraction of matching requests that get a fault, 0..1. */
  readonly rate: number;
  readonly seed: number;
  readonly kinds?: readonly FaultKind[];
  /** Only these services (SigV4 scope names); all when unset. */
  readonly services?: readonly string[];
}

export interface CallRecord {
  readonly service: string;
  readonly action: string;
  readonly status: number;
  readonly refusedBy?: string;
  readonly fault?: FaultKind;
}

export interface StrictLayer {
  readonly endpoint: string;
  readonly calls: CallRecord[];
  setFaults(faults: FaultOptions | undefined): void;
  /** Moves the layer's clock forward (eventual-consistency windows) without sleeping. */
  advance(ms: number): void;
  reset(): void;
  stop(): Promise<void>;
}

/** mulberry32: a small seeded generator, so a fault run can be replayed from its seed. */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function readBody(message: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    message.on("data", (c: Buffer) => chunks.push(c));
    message.on("end", () => resolve(Buffer.concat(chunks)));
    message.on("error", reject);
  });
}

function send(upstream: URL, method: string, url: string, headers: Record<string, string>, body: Buffer): Promise<AwsResponse> {
  return new Promise((resolve, reject) => {
    const out = httpRequest(
      { host: upstream.hostname, port: upstream.port, method, path: url, headers: { ...headers, host: upstream.host } },
      (res) => {
        readBody(res).then((data) => {
          const resHeaders: Record<string, string> = {};
          for (const [k, v] of Object.entries(res.headers)) if (typeof v === "string") resHeaders[k] = v;
          resolve({ status: res.statusCode ?? 500, headers: resHeaders, body: data });
        }, reject);
      },
    );
    out.on("error", reject);
    out.end(body);
  });
}

function faultAnswer(request: AwsRequest, kind: Exclude<FaultKind, "drop">): AwsResponse {
  if (kind === "throttle") {
    // EC2 throttles with RequestLimitExceeded (503); the query and JSON services with Throttling(Exception) (400).
    if (request.service === "ec2") return awsError(request, 503, "RequestLimitExceeded", "Request limit exceeded.");
    return awsError(request, 400, request.service === "ebs" ? "ThrottlingException" : "Throttling", "Rate exceeded");
  }
  if (kind === "500") return awsError(request, 500, "InternalError", "An internal error has occurred");
  return awsError(request, 503, "ServiceUnavailable", "Service is unavailable");
}

export async function startStrictLayer(
  upstreamEndpoint: string,
  options: { rules?: readonly StrictRule[]; faults?: FaultOptions } = {},
): Promise<StrictLayer> {
  const upstream = new URL(upstreamEndpoint);
  const rules = options.rules ?? [];
  const calls: CallRecord[] = [];
  let faults = options.faults;
  let random = seededRandom(faults?.seed ?? 1);
  let offset = 0;
  let states = new Map<string, unknown>();

  const ctx: RuleContext = {
    forward: (r) => send(upstream, r.method, r.url, r.headers as Record<string, string>, r.body),
    async query(service, region, params) {
      const q = internalQuery(service, region, params);
      const res = await send(upstream, "POST", "/", q.headers, q.body);
      return res.body.toString("utf8");
    },
    now: () => Date.now() + offset,
    state<T>(rule: string, init: () => T): T {
      if (!states.has(rule)) states.set(rule, init());
      return states.get(rule) as T;
    },
  };

  async function handle(request: AwsRequest): Promise<{ response?: AwsResponse; record: CallRecord }> {
    const base = { service: request.service, action: request.action };
    if (faults && request.action !== "unknown" && (!faults.services || faults.services.includes(request.service))) {
      if (random() < faults.rate) {
        const kinds = faults.kinds ?? ["throttle", "500", "503", "drop"];
        const kind = kinds[Math.floor(random() * kinds.length)] ?? "throttle";
        if (kind === "drop") return { record: { ...base, status: 0, fault: kind } };
        if (kind === "lost") {
          await answer(request);
          return { record: { ...base, status: 0, fault: kind } };
        }
        const response = faultAnswer(request, kind);
        return { response, record: { ...base, status: response.status, fault: kind } };
      }
    }
    return answer(request);
  }

  async function answer(request: AwsRequest): Promise<{ response: AwsResponse; record: CallRecord }> {
    const base = { service: request.service, action: request.action };
    for (const rule of rules) {
      const refused = await rule.before?.(request, ctx);
      if (refused) return { response: refused, record: { ...base, status: refused.status, refusedBy: rule.name } };
    }
    let next = () => ctx.forward(request);
    for (const rule of [...rules].reverse()) {
      const inner = next;
      if (rule.around) next = () => rule.around!(request, ctx, inner);
    }
    let response = await next();
    for (const rule of rules) if (rule.after) response = await rule.after(request, response, ctx);
    return { response, record: { ...base, status: response.status } };
  }

  const server: Server = createServer((req, res) => {
    readBody(req)
      .then(async (body) => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers[k] = v;
        const request = parseAwsRequest(req.method ?? "GET", req.url ?? "/", headers, body);
        const { response, record } = await handle(request);
        calls.push(record);
        if (!response) {
          // A dropped connection ("drop", "lost"): the socket closes with no answer, as a reset mid-request does.
          req.socket.destroy();
          return;
        }
        const out: Record<string, string> = { ...response.headers, "content-length": String(response.body.length) };
        delete out["transfer-encoding"];
        res.writeHead(response.status, out);
        res.end(response.body);
      })
      .catch((error: unknown) => {
        res.writeHead(500, { "content-type": "text/plain" });
        res.end(`strict layer: ${String(error)}`);
      });
  });
  // A client may half-close after its request (busybox nc in the init's secrets fetch does): answer
  // it as AWS's endpoints and moto do, instead of Node's default of aborting the request.
  (server as Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    calls,
    setFaults(next) {
      faults = next;
      random = seededRandom(next?.seed ?? 1);
    },
    advance(ms) {
      offset += ms;
    },
    reset() {
      states = new Map();
      offset = 0;
      calls.length = 0;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
