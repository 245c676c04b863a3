/**
 * CreateTargetGroup's health check settings, as AWS checks them and moto does not (moto takes 5 s
 * as HTTP's default timeout, and compares interval and timeout only when both are sent).
 *
 * "CreateTargetGroup" (Elastic Load Balancing API Reference,
 * https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_CreateTargetGroup.html):
 * - HealthCheckIntervalSeconds: "The range is 5-300. If the target group protocol is TCP, TLS,
 *   UDP, TCP_UDP, HTTP or HTTPS, the default is 30 seconds. If the target group protocol is
 *   GENEVE, the default is 10 seconds. If the target type is lambda, the default is 35 seconds."
 * - HealthCheckTimeoutSeconds: "The range is 2–120 seconds. For target groups with a protocol of
 *   HTTP, the default is 6 seconds. For target groups with a protocol of TCP, TLS or HTTPS, the
 *   default is 10 seconds. For target groups with a protocol of GENEVE, the default is 5 seconds.
 *   If the target type is lambda, the default is 30 seconds."
 * - HealthyThresholdCount and UnhealthyThresholdCount: "The range is 2-10."
 * The interval must be greater than the timeout ("Health check timeout '6' must be smaller than
 * the interval '5'"), with the defaults standing in for what is not sent.
 */
import { awsError } from "../protocol.js";
import type { StrictRule } from "../layer.js";

function defaults(protocol: string, targetType: string): { interval: number; timeout: number } {
  if (targetType === "lambda") return { interval: 35, timeout: 30 };
  if (protocol === "GENEVE") return { interval: 10, timeout: 5 };
  if (protocol === "HTTP") return { interval: 30, timeout: 6 };
  return { interval: 30, timeout: 10 };
}

const RANGES: readonly [param: string, min: number, max: number][] = [
  ["HealthCheckIntervalSeconds", 5, 300],
  ["HealthCheckTimeoutSeconds", 2, 120],
  ["HealthyThresholdCount", 2, 10],
  ["UnhealthyThresholdCount", 2, 10],
];

export const createTargetGroupRule: StrictRule = {
  name: "create-target-group",
  source: "CreateTargetGroup, https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_CreateTargetGroup.html",
  before(request) {
    if (request.service !== "elasticloadbalancing" || (request.action !== "CreateTargetGroup" && request.action !== "ModifyTargetGroup"))
      return undefined;
    const p = request.params;
    for (const [param, min, max] of RANGES) {
      const sent = p.get(param);
      if (sent === null) continue;
      const value = Number(sent);
      if (!Number.isInteger(value) || value < min || value > max)
        return awsError(request, 400, "ValidationError", `${param} '${sent}' must be between ${min} and ${max}`);
    }
    // ModifyTargetGroup compares against the group's current values, which this rule does not read.
    if (request.action !== "CreateTargetGroup") return undefined;
    const d = defaults(p.get("Protocol") ?? "", p.get("TargetType") ?? "instance");
    const interval = Number(p.get("HealthCheckIntervalSeconds") ?? d.interval);
    const timeout = Number(p.get("HealthCheckTimeoutSeconds") ?? d.timeout);
    if (interval <= timeout)
      return awsError(request, 400, "ValidationError", `Health check timeout '${timeout}' must be smaller than the interval '${interval}'`);
    return undefined;
  },
};
