/**
 * What the EBS rules share: the real block size, snapshot ids from the REST routes, and EBS's
 * error shape (a JSON body with a Reason, as the EBS direct APIs answer ValidationException and
 * ResourceNotFoundException; the SDK exposes it as error.Reason).
 */
import type { AwsRequest, AwsResponse } from "../protocol.js";
import { awsError } from "../protocol.js";

/** Real AWS answers BlockSize 524288 (moto says 512): "Valid values: 524288" (PutSnapshotBlock DataLength). */
export const EBS_BLOCK_SIZE = 524288;

/** The snapshot id in /snapshots/{id}/blocks…, /snapshots/completion/{id} and /snapshots/{id}/changedblocks. */
export function routeSnapshotId(request: AwsRequest): string | undefined {
  const pathname = request.url.split("?", 1)[0] ?? "";
  return /^\/snapshots\/(?:completion\/)?(snap-[0-9a-zA-Z]+)/.exec(pathname)?.[1];
}

export function routeBlockIndex(request: AwsRequest): number | undefined {
  const match = /\/blocks\/(\d+)$/.exec(request.url.split("?", 1)[0] ?? "");
  return match ? Number(match[1]) : undefined;
}

export function ebsError(request: AwsRequest, status: number, code: string, reason: string, message: string): AwsResponse {
  const answer = awsError(request, status, code, message);
  const body = JSON.parse(answer.body.toString("utf8")) as Record<string, unknown>;
  return { ...answer, body: Buffer.from(JSON.stringify({ ...body, Reason: reason })) };
}

export function isOk(response: AwsResponse): boolean {
  return response.status >= 200 && response.status < 300;
}

export function readJson(response: AwsResponse): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(response.body.toString("utf8"));
    return parsed && typeof parsed === "object" ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export function withJson(response: AwsResponse, json: unknown): AwsResponse {
  const body = Buffer.from(JSON.stringify(json));
  return { ...response, headers: { ...response.headers, "content-length": String(body.length) }, body };
}

/** A header by name, case-insensitively (Node lower-cases them; the SDK writes x-amz-Checksum). */
export function header(request: AwsRequest, name: string): string | undefined {
  return request.headers[name.toLowerCase()];
}
