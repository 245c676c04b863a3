/**
 * CloudWatch: the ALB's per-target-group request and 5xx counts, read while a canary runs.
 *
 * The ALB publishes them in the AWS/ApplicationELB namespace once a minute, only while requests
 * flow, and they show up in CloudWatch about a minute later: a canary window shorter than a few
 * minutes mostly sees no data (which passes).
 */
import { paginateGetMetricData, type MetricDataQuery } from "@aws-sdk/client-cloudwatch";
import { KilnError } from "../errors.js";
import type { AwsClients } from "./clients.js";
import { awsService } from "./errors.js";

const aws = awsService("cloudwatch");

const NAMESPACE = "AWS/ApplicationELB";
/** The ALB's metrics have one-minute resolution: a finer period finds nothing more. */
const PERIOD_SECONDS = 60;

/**
 * The TargetGroup dimension: the target group ARN's resource part after the last colon,
 * `targetgroup/<name>/<id>`.
 */
export function targetGroupDimension(targetGroupArn: string): string {
  const suffix = targetGroupArn.slice(targetGroupArn.lastIndexOf(":") + 1);
  if (!/^targetgroup\/[^/]+\/[^/]+$/.test(suffix)) throw new KilnError(`${targetGroupArn} is not a target group ARN`);
  return suffix;
}

/**
 * The LoadBalancer dimension: what follows `loadbalancer/` in the load balancer ARN,
 * `app/<name>/<id>` for an Application Load Balancer.
 */
export function loadBalancerDimension(loadBalancerArn: string): string {
  const match = /:loadbalancer\/((?:app|net|gwy)\/[^/]+\/[^/]+)$/.exec(loadBalancerArn);
  if (!match) throw new KilnError(`${loadBalancerArn} is not a load balancer ARN`);
  return match[1]!;
}

/**
 * The query window, widened to whole minutes: a datapoint stamped 10:05:00 holds the requests of
 * 10:05:00–10:05:59, so a canary started at 10:05:30 needs the 10:05 one too.
 */
export function metricWindow(since: Date, until: Date): { start: Date; end: Date } {
  const minute = PERIOD_SECONDS * 1000;
  return {
    start: new Date(Math.floor(since.getTime() / minute) * minute),
    end: new Date((Math.floor(until.getTime() / minute) + 1) * minute),
  };
}

/**
 * Requests and target 5xx answers per target group between `since` and `until`, keyed by
 * target group ARN; a target group without datapoints counts zero. Target-level 5xx
 * (HTTPCode_Target_5XX_Count) is what a release answers; the ALB's own 5xx (HTTPCode_ELB_5XX_Count)
 * exists per load balancer only and cannot be told apart by release.
 */
export async function targetGroupRequestCounts(
  clients: AwsClients,
  loadBalancerArn: string,
  targetGroupArns: readonly string[],
  since: Date,
  until: Date,
): Promise<Record<string, { requests: number; errors: number }>> {
  const lb = loadBalancerDimension(loadBalancerArn);
  // Both dimensions: the ALB publishes target group metrics with {LoadBalancer, TargetGroup},
  // never TargetGroup alone, and CloudWatch matches the dimension set exactly.
  const query = (id: string, metric: string, tg: string): MetricDataQuery => ({
    Id: id,
    ReturnData: true,
    MetricStat: {
      Metric: {
        Namespace: NAMESPACE,
        MetricName: metric,
        Dimensions: [
          { Name: "LoadBalancer", Value: lb },
          { Name: "TargetGroup", Value: targetGroupDimension(tg) },
        ],
      },
      Period: PERIOD_SECONDS,
      Stat: "Sum",
    },
  });
  const queries = targetGroupArns.flatMap((tg, i) => [
    query(`requests${i}`, "RequestCount", tg),
    query(`errors${i}`, "HTTPCode_Target_5XX_Count", tg),
  ]);
  const { start, end } = metricWindow(since, until);
  const sums = new Map<string, number>();
  await aws("GetMetricData", `${NAMESPACE} of ${lb}`, async () => {
    // Results of one query can continue on the next page: add them up by id.
    for await (const page of paginateGetMetricData(
      { client: clients.cloudwatch },
      { StartTime: start, EndTime: end, MetricDataQueries: queries },
    )) {
      for (const result of page.MetricDataResults ?? [])
        sums.set(result.Id ?? "", (sums.get(result.Id ?? "") ?? 0) + (result.Values ?? []).reduce((n, v) => n + v, 0));
    }
  });
  return Object.fromEntries(
    targetGroupArns.map((tg, i) => [tg, { requests: sums.get(`requests${i}`) ?? 0, errors: sums.get(`errors${i}`) ?? 0 }]),
  );
}
