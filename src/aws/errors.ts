/**
 * AWS errors become kiln errors at this boundary: operation, resource and request id in the
 * message, and a hint that says what to do (which permission, which setting).
 */
import { KilnError } from "../errors.js";

export class AwsError extends KilnError {
  override readonly exitCode = 7;
  readonly code: string;
  readonly operation: string;
  readonly requestId: string | undefined;

  constructor(
    operation: string,
    resource: string,
    code: string,
    detail: string,
    requestId: string | undefined,
    hint: string | undefined,
    cause: unknown,
  ) {
    super(`AWS ${operation} on ${resource} failed: ${code}${detail ? `: ${detail}` : ""}${requestId ? ` (request id ${requestId})` : ""}`, {
      ...(hint ? { hint } : {}),
      cause,
    });
    this.code = code;
    this.operation = operation;
    this.requestId = requestId;
  }
}

const SERVICE_PREFIX: Record<string, string> = {
  StartSnapshot: "ebs",
  PutSnapshotBlock: "ebs",
  CompleteSnapshot: "ebs",
  ListSnapshotBlocks: "ebs",
  ListChangedBlocks: "ebs",
  GetSnapshotBlock: "ebs",
};

/** The IAM action of an operation: "service:Operation" as given, else EBS's by name, else EC2's. */
export function permissionFor(operation: string, service?: string): string {
  return `${service ?? SERVICE_PREFIX[operation] ?? "ec2"}:${operation}`;
}

export function isThrottling(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number }; $retryable?: unknown };
  const status = e.$metadata?.httpStatusCode ?? 0;
  return (
    /Throttl|RequestLimitExceeded|TooManyRequests|SlowDown|InternalServer|ServiceUnavailable|InternalError/.test(e.name ?? "") ||
    status === 429 ||
    status >= 500 ||
    Boolean(e.$retryable)
  );
}

export function translateAwsError(error: unknown, operation: string, resource: string, service?: string): Error {
  if (error instanceof KilnError) return error;
  const e = error as { name?: string; message?: string; $metadata?: { requestId?: string; httpStatusCode?: number }; code?: string };
  const name = e.name ?? e.code ?? "Error";
  const detail = e.message ?? "";
  const requestId = e.$metadata?.requestId;
  if (name === "CredentialsProviderError" || /Could not load credentials/i.test(detail)) {
    return new KilnError("no AWS credentials found", {
      hint: "set AWS_PROFILE (aws configure / aws sso login), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run on an instance with a role",
      cause: error,
    });
  }
  if (/ExpiredToken|RequestExpired|TokenRefreshRequired/.test(name) || (/expired/i.test(detail) && /token/i.test(detail))) {
    return new AwsError(
      operation,
      resource,
      name,
      detail,
      requestId,
      "your AWS credentials have expired: refresh them (aws sso login, or new session credentials) and run again",
      error,
    );
  }
  if (/AccessDenied|UnauthorizedOperation|UnauthorizedException|AuthFailure/.test(name) || e.$metadata?.httpStatusCode === 403) {
    return new AwsError(
      operation,
      resource,
      name,
      detail,
      requestId,
      `the credentials lack permission ${permissionFor(operation, service)} on ${resource}; kiln iam-policy prints the policy kiln needs`,
      error,
    );
  }
  if (/InvalidClientTokenId|UnrecognizedClient|SignatureDoesNotMatch/.test(name)) {
    return new AwsError(
      operation,
      resource,
      name,
      detail,
      requestId,
      "the access key is not valid in this account/region; check AWS_PROFILE or the keys",
      error,
    );
  }
  if (/OptInRequired|InvalidRegion|UnknownEndpoint|ENOTFOUND/.test(name + detail)) {
    return new AwsError(
      operation,
      resource,
      name,
      detail,
      requestId,
      "check the region (--region or AWS_REGION): it must be enabled for the account",
      error,
    );
  }
  return new AwsError(operation, resource, name, detail, requestId, undefined, error);
}

/** Runs one AWS call, translating its failure. */
export async function aws<T>(operation: string, resource: string, call: () => Promise<T>, service?: string): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw translateAwsError(error, operation, resource, service);
  }
}

/**
 * A delete whose resource is already gone succeeded: when the answer to a delete is lost (a
 * timeout after AWS did the work), the SDK's retry gets "not found", and a cleanup that stops
 * there leaves everything after it behind. `gone` tells the not-found answers of that call.
 */
export async function awsDelete(
  operation: string,
  resource: string,
  call: () => Promise<unknown>,
  gone: (code: string, message: string) => boolean,
  service?: string,
): Promise<"deleted" | "already-gone"> {
  try {
    await call();
    return "deleted";
  } catch (error) {
    const e = error as { name?: string; message?: string };
    if (!(error instanceof KilnError) && gone(e.name ?? "", e.message ?? "")) return "already-gone";
    throw translateAwsError(error, operation, resource, service);
  }
}

/** `aws` for the calls of one service other than EC2, so a denied call names the right IAM action. */
export function awsService(service: string): <T>(operation: string, resource: string, call: () => Promise<T>) => Promise<T> {
  return (operation, resource, call) => aws(operation, resource, call, service);
}
