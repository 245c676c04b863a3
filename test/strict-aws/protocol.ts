/**
 * What the strictness layer needs to know of an AWS request and how to answer one: the service
 * (from the SigV4 credential scope, as moto selects it), the operation (query protocols' Action,
 * JSON protocols' X-Amz-Target, the EBS direct APIs' REST routes) and error bodies in each
 * protocol's own shape, so the real SDK clients parse them into the same exceptions AWS gives.
 */

export interface AwsRequest {
  readonly method: string;
  /** Path and query string as received. */
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
  /** SigV4 scope service: ec2, elasticloadbalancing, autoscaling, iam, ebs, monitoring, … */
  readonly service: string;
  readonly region: string;
  /** Operation name: CreateTargetGroup, PutSnapshotBlock, … ("unknown" when not recognised). */
  readonly action: string;
  /** Query-protocol parameters (form body or query string); empty for REST and JSON. */
  readonly params: URLSearchParams;
  /** Parsed JSON body for JSON and REST-JSON requests, when the body is JSON. */
  readonly json: Record<string, unknown> | undefined;
}

export interface AwsResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

const SCOPE = /Credential=[^/]+\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request/;

/** The EBS direct APIs are REST: the route names the operation. */
const EBS_ROUTES: readonly [string, RegExp, string][] = [
  ["POST", /^\/snapshots$/, "StartSnapshot"],
  ["PUT", /^\/snapshots\/[^/]+\/blocks\/\d+$/, "PutSnapshotBlock"],
  ["POST", /^\/snapshots\/completion\/[^/]+$/, "CompleteSnapshot"],
  ["GET", /^\/snapshots\/[^/]+\/blocks$/, "ListSnapshotBlocks"],
  ["GET", /^\/snapshots\/[^/]+\/blocks\/\d+$/, "GetSnapshotBlock"],
  ["GET", /^\/snapshots\/[^/]+\/changedblocks$/, "ListChangedBlocks"],
];

export function parseAwsRequest(method: string, url: string, headers: Readonly<Record<string, string>>, body: Buffer): AwsRequest {
  const scope = SCOPE.exec(headers.authorization ?? "");
  const region = scope?.[1] ?? "us-east-1";
  const service = scope?.[2] ?? "unknown";
  const [pathname = "/", search = ""] = url.split("?", 2);
  let params = new URLSearchParams(search);
  let json: Record<string, unknown> | undefined;
  let action = "unknown";
  const contentType = headers["content-type"] ?? "";
  if (contentType.startsWith("application/x-www-form-urlencoded")) params = new URLSearchParams(body.toString("utf8"));
  else if (contentType.includes("json") && body.length > 0) {
    try {
      const parsed: unknown = JSON.parse(body.toString("utf8"));
      if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) json = parsed as Record<string, unknown>;
    } catch {
      // not JSON after all: rules see no body
    }
  }
  const target = headers["x-amz-target"];
  if (params.get("Action")) action = params.get("Action") ?? action;
  else if (target) action = target.split(".").pop() ?? action;
  else if (service === "ebs") action = EBS_ROUTES.find(([m, re]) => m === method && re.test(pathname))?.[2] ?? action;
  return { method, url, headers, body, service, region, action, params, json };
}

let requestCounter = 0;
function requestId(): string {
  requestCounter += 1;
  return `strict-${process.pid}-${requestCounter.toString(16).padStart(8, "0")}`;
}

const escapeXml = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** An error answer in the protocol the request's service speaks. */
export function awsError(request: AwsRequest, status: number, code: string, message: string): AwsResponse {
  const id = requestId();
  if (request.service === "ebs" || request.json !== undefined || request.headers["x-amz-target"]) {
    return {
      status,
      headers: { "content-type": "application/json", "x-amzn-errortype": code, "x-amzn-requestid": id },
      body: Buffer.from(JSON.stringify({ __type: code, message, Message: message })),
    };
  }
  const xml =
    request.service === "ec2"
      ? `<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>${escapeXml(code)}</Code>` +
        `<Message>${escapeXml(message)}</Message></Error></Errors><RequestID>${id}</RequestID></Response>`
      : `<?xml version="1.0" encoding="UTF-8"?><ErrorResponse><Error><Type>Sender</Type><Code>${escapeXml(code)}</Code>` +
        `<Message>${escapeXml(message)}</Message></Error><RequestId>${id}</RequestId></ErrorResponse>`;
  return { status, headers: { "content-type": "text/xml", "x-amzn-requestid": id }, body: Buffer.from(xml) };
}

/**
 * A signed-looking request to moto on the layer's own behalf (moto picks the service from the
 * credential scope and checks no signature), for rules that must read moto's state.
 */
export function internalQuery(
  service: string,
  region: string,
  params: Record<string, string>,
): {
  headers: Record<string, string>;
  body: Buffer;
} {
  return {
    headers: {
      "content-type": "application/x-www-form-urlencoded; charset=utf-8",
      authorization: `AWS4-HMAC-SHA256 Credential=testing/20260101/${region}/${service}/aws4_request, SignedHeaders=host, Signature=0`,
    },
    body: Buffer.from(new URLSearchParams(params).toString()),
  };
}
