/**
 * Requests carrying a ClientToken are idempotent on AWS: a retry with the same token gets the
 * first request's result and does nothing more, so a create whose answer was lost after AWS did
 * the work makes one resource. moto ignores the token and creates again (a second snapshot, a
 * second instance), which would hide nothing and count orphans kiln would never make on AWS.
 *
 * AWS documentation:
 * - "Ensuring idempotency in Amazon EC2 API requests",
 *   https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-idempotency.html: a retried request
 *   with the same client token returns the original result; the same token with other
 *   parameters fails with IdempotentParameterMismatch.
 * - "StartSnapshot - EBS direct APIs", https://docs.aws.amazon.com/ebs/latest/APIReference/API_StartSnapshot.html:
 *   ClientToken: "subsequent retries with the same client token return the result from the
 *   original successful request and they have no additional effect"; a reused token with another
 *   request is a ConflictException (409).
 */
import type { StrictRule } from "../layer.js";
import { type AwsRequest, type AwsResponse, awsError } from "../protocol.js";
import { oneAtATime } from "./one-at-a-time.js";

interface Remembered {
  readonly parameters: string;
  readonly response: AwsResponse;
}

function tokenOf(request: AwsRequest): string | undefined {
  if (request.service === "ec2") return request.params.get("ClientToken") ?? undefined;
  if (request.service === "ebs" && request.action === "StartSnapshot") {
    const token = request.json?.ClientToken;
    return typeof token === "string" ? token : undefined;
  }
  return undefined;
}

/** Everything the request asks for, in a stable order (the SDK may reorder nothing, but a person might). */
function parametersOf(request: AwsRequest): string {
  if (request.service === "ebs") return JSON.stringify(request.json ?? {}, Object.keys(request.json ?? {}).sort());
  return [...request.params.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).join("&");
}

export const clientTokenRule: StrictRule = {
  name: "client-token",
  source: "Ensuring idempotency in Amazon EC2 API requests (https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-idempotency.html)",
  async around(request, ctx, next) {
    const token = tokenOf(request);
    if (token === undefined) return next();
    const key = `${request.service}/${request.region}/${request.action}/${token}`;
    const done = ctx.state("client-token", () => new Map<string, Remembered>());
    // One request per token at a time: a retry racing its first attempt waits for that attempt's result.
    return oneAtATime(ctx, "client-token", key, async () => {
      const parameters = parametersOf(request);
      const known = done.get(key);
      if (known && known.parameters !== parameters) {
        return request.service === "ebs"
          ? awsError(request, 409, "ConflictException", "The request uses the same client token as a previous, but non-identical request.")
          : awsError(request, 400, "IdempotentParameterMismatch", "The client token is already in use with different parameters.");
      }
      if (known) return known.response;
      const response = await next();
      if (response.status >= 200 && response.status < 300) done.set(key, { parameters, response });
      return response;
    });
  },
};
