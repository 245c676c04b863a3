/**
 * The AWS clients kiln uses, created once per region with retries, a bounded attempt count
 * and an optional endpoint override (AWS_ENDPOINT_URL works too: the SDK reads it). This
 * directory is the only place that imports @aws-sdk/*.
 */
import { AutoScalingClient } from "@aws-sdk/client-auto-scaling";
import { CloudWatchClient } from "@aws-sdk/client-cloudwatch";
import { CloudWatchLogsClient } from "@aws-sdk/client-cloudwatch-logs";
import { EBSClient } from "@aws-sdk/client-ebs";
import { EC2Client } from "@aws-sdk/client-ec2";
import { ElasticLoadBalancingV2Client } from "@aws-sdk/client-elastic-load-balancing-v2";
import { IAMClient } from "@aws-sdk/client-iam";

/**
 * Attempts per request (the first plus retries). Deploys make dozens of control-plane calls in a
 * row, so one call failing after four tries on a throttling burst or a 5xx would fail the whole
 * deploy half-way; six tries with the SDK's capped exponential backoff wait up to ~30 s.
 */
export const DEFAULT_MAX_ATTEMPTS = 6;

export interface AwsClientOptions {
  readonly region: string;
  readonly endpoint?: string;
  /** SDK-level attempts per request; the block uploader adds its own retries on top. */
  readonly maxAttempts?: number;
  /** Sees every request kiln sends (tests record them; moto does not keep everything). */
  readonly onRequest?: (operation: string, input: Record<string, unknown>) => void;
}

export interface AwsClients {
  readonly region: string;
  readonly ec2: EC2Client;
  readonly ebs: EBSClient;
  readonly autoscaling: AutoScalingClient;
  readonly elbv2: ElasticLoadBalancingV2Client;
  readonly iam: IAMClient;
  readonly cloudwatch: CloudWatchClient;
  readonly logs: CloudWatchLogsClient;
}

function observe<T extends { middlewareStack: { add: (...args: never[]) => void } }>(
  client: T,
  onRequest: AwsClientOptions["onRequest"],
): T {
  if (!onRequest) return client;
  const stack = client.middlewareStack as unknown as {
    add: (
      mw: (
        next: (a: unknown) => Promise<unknown>,
        context: { commandName?: string },
      ) => (args: { input: Record<string, unknown> }) => Promise<unknown>,
      opts: { step: string; name: string },
    ) => void;
  };
  stack.add(
    (next, context) => async (args) => {
      onRequest(context.commandName?.replace(/Command$/, "") ?? "unknown", args.input);
      return next(args);
    },
    { step: "initialize", name: "kilnRequestObserver" },
  );
  return client;
}

export function createAwsClients(options: AwsClientOptions): AwsClients {
  const common = {
    region: options.region,
    maxAttempts: options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
    // Adaptive: standard retries plus a client-side rate limit that backs off when AWS throttles.
    retryMode: "adaptive" as const,
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
  };
  return {
    region: options.region,
    ec2: observe(new EC2Client(common), options.onRequest),
    ebs: observe(new EBSClient(common), options.onRequest),
    autoscaling: observe(new AutoScalingClient(common), options.onRequest),
    elbv2: observe(new ElasticLoadBalancingV2Client(common), options.onRequest),
    iam: observe(new IAMClient(common), options.onRequest),
    cloudwatch: observe(new CloudWatchClient(common), options.onRequest),
    logs: observe(new CloudWatchLogsClient(common), options.onRequest),
  };
}

/**
 * The region as the AWS tools pick it: the flag, else AWS_REGION, else AWS_DEFAULT_REGION (the
 * CLI's name, which the SDK does not read), else the `region` of the active profile in the shared
 * config file (AWS_PROFILE or default; AWS_CONFIG_FILE or ~/.aws/config). The last steps are the
 * SDK's own region chain, asked through a client that sends nothing, so the file is read the way
 * every SDK reads it (profile sections, sso-session, quoting) rather than by a second parser.
 */
export async function resolveRegion(flag: string | undefined): Promise<string | undefined> {
  const fromEnv = flag || process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION;
  if (fromEnv) return fromEnv;
  const probe = new EC2Client({});
  try {
    return (await probe.config.region()) || undefined;
  } catch {
    // "Region is missing": no profile region either; callers say how to give one.
    return undefined;
  } finally {
    probe.destroy();
  }
}
