/** AWS resource names for an environment: readable where limits allow, hashed where they do not. */
import { createHash } from "node:crypto";

function short(text: string, max: number): string {
  if (text.length <= max) return text;
  const hash = createHash("sha256").update(text).digest("hex").slice(0, 8);
  return `${text.slice(0, max - 9).replace(/-+$/, "")}-${hash}`;
}

/** ALB and target group names: ≤ 32 characters, letters, digits and hyphens. */
export const loadBalancerName = (app: string, env: string) => short(`kiln-${app}-${env}`.replace(/[^A-Za-z0-9-]/g, "-"), 32);
export const targetGroupName = (release: string) => short(`k-${release}`.replace(/[^A-Za-z0-9-]/g, "-"), 32);
/**
 * Launch template names: ≤ 128 characters of letters, digits, ( ) . / _ and -. Hashed, not cut:
 * release ids end in what tells them apart (digest, configuration hash, restart number).
 */
export const launchTemplateName = (release: string) => short(`kiln-${release}`.replace(/[^A-Za-z0-9()./_-]/g, "-"), 128);
/** IAM role and instance profile names: ≤ 64 characters. */
export const instanceRoleName = (app: string, env: string) => short(`kiln-${app}-${env}`.replace(/[^A-Za-z0-9+=,.@_-]/g, "-"), 64);
export const securityGroupName = (app: string, env: string, role: "lb" | "instances") => `kiln-${app}-${env}-${role}`;
/** The attach rule's X-Kiln-Release header value: an ALB condition value holds at most 128 characters. */
export const releaseHeaderValue = (release: string) => short(release, 128);
/** An environment's CloudWatch Logs group: one stream per instance, named by the instance id. */
export const logGroupName = (app: string, env: string) => `/kiln/${app}/${env}`;
