/**
 * Every AWS operation kiln's source can call, found by reading it: the names imported from
 * @aws-sdk/client-* (commands, paginators, waiters) in any file under src/, each mapped to the
 * IAM action that authorizes it. Deterministic, and a superset of what any test run records.
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";

/** IAM service prefix of each SDK client package kiln uses. */
const SERVICE_OF_PACKAGE: Record<string, string> = {
  "client-ec2": "ec2",
  "client-ebs": "ebs",
  "client-auto-scaling": "autoscaling",
  "client-elastic-load-balancing-v2": "elasticloadbalancing",
  "client-iam": "iam",
  "client-cloudwatch": "cloudwatch",
  "client-cloudwatch-logs": "logs",
  "client-ssm": "ssm",
  "client-kms": "kms",
  "client-sts": "sts",
};

/** The operation each SDK waiter polls (from the waiter's source in the SDK package). */
const WAITER_OPERATION: Record<string, string> = {
  GroupInService: "DescribeAutoScalingGroups",
  GroupNotExists: "DescribeAutoScalingGroups",
  GroupExists: "DescribeAutoScalingGroups",
  InstanceRunning: "DescribeInstances",
  InstanceTerminated: "DescribeInstances",
  InstanceStopped: "DescribeInstances",
  InstanceExists: "DescribeInstances",
  ImageAvailable: "DescribeImages",
  ImageExists: "DescribeImages",
  SnapshotCompleted: "DescribeSnapshots",
  LoadBalancersDeleted: "DescribeLoadBalancers",
  LoadBalancerAvailable: "DescribeLoadBalancers",
  LoadBalancerExists: "DescribeLoadBalancers",
  TargetInService: "DescribeTargetHealth",
  TargetDeregistered: "DescribeTargetHealth",
  InstanceProfileExists: "GetInstanceProfile",
  RoleExists: "GetRole",
  SecurityGroupExists: "DescribeSecurityGroups",
};

export interface SdkCall {
  /** "service:Operation", the IAM action. */
  readonly action: string;
  /** Where it is imported, for the failure message. */
  readonly file: string;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return entry.name.endsWith(".ts") ? [full] : [];
  });
}

/** Throws on an import it cannot map (a new client package or waiter): the table above must learn it. */
export function scanSdkCalls(srcDir: string): SdkCall[] {
  const calls: SdkCall[] = [];
  const importPattern = /import\s*(type\s*)?\{([^}]*)\}\s*from\s*"@aws-sdk\/([^"]+)"/g;
  for (const file of sourceFiles(srcDir)) {
    const text = readFileSync(file, "utf8");
    for (const match of text.matchAll(importPattern)) {
      if (match[1]) continue;
      const pkg = match[3]!;
      const service = SERVICE_OF_PACKAGE[pkg];
      if (!service) throw new Error(`${file} imports @aws-sdk/${pkg}: add its IAM service prefix to SERVICE_OF_PACKAGE`);
      const names = match[2]!
        .split(",")
        .map((n) => n.trim())
        .filter((n) => n && !n.startsWith("type "))
        .map((n) => n.split(/\s+as\s+/)[0]!);
      for (const name of names) {
        let operation: string | undefined;
        if (/^[A-Z]\w*Command$/.test(name)) operation = name.replace(/Command$/, "");
        else if (name.startsWith("paginate")) operation = name.slice("paginate".length);
        else if (/^waitUntil|^waitFor/.test(name)) {
          const waiter = name.replace(/^waitUntil|^waitFor/, "");
          operation = WAITER_OPERATION[waiter];
          if (!operation) throw new Error(`${file} uses the waiter ${name}: add the operation it polls to WAITER_OPERATION`);
        }
        if (operation) calls.push({ action: `${service}:${operation}`, file: path.relative(path.dirname(srcDir), file) });
      }
    }
  }
  return calls;
}

/** Actions a policy allows (wildcards such as ec2:Describe* included). */
export function policyAllows(policy: Record<string, unknown>, action: string): boolean {
  const statements = policy.Statement as { Effect: string; Action: string | string[] }[];
  return statements.some(
    (s) =>
      s.Effect === "Allow" &&
      [s.Action]
        .flat()
        .some((pattern) => new RegExp(`^${pattern.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*")}$`, "i").test(action)),
  );
}
