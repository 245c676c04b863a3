/**
 * Scenario rule asg-failed-launch (opt-in, not in STRICT_RULES: it makes launches fail on
 * purpose): Auto Scaling accepts a group but every launch fails, as with an AMI whose
 * architecture does not match the instance type, an exhausted instance quota or no capacity.
 *
 * "Troubleshoot Amazon EC2 Auto Scaling: EC2 instance launch failures"
 * https://docs.aws.amazon.com/autoscaling/ec2/userguide/ts-as-instancelaunchfailure.html and
 * "DescribeScalingActivities" https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_DescribeScalingActivities.html:
 * the group stays below its desired capacity (never InService) and the reason is only in its
 * scaling activities, with StatusCode Failed and the EC2 error in StatusMessage. moto launches
 * every instance and keeps no activities, so the rule hides the group's instances from a
 * DescribeAutoScalingGroups that names it and answers DescribeScalingActivities with the failure.
 */
import type { StrictRule } from "../layer.js";

const escapeXml = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

export function asgFailedLaunch(options: { group: RegExp; message: string }): StrictRule {
  return {
    name: "asg-failed-launch",
    source:
      "Troubleshoot Amazon EC2 Auto Scaling: instance launch failures — https://docs.aws.amazon.com/autoscaling/ec2/userguide/ts-as-instancelaunchfailure.html",
    before(request) {
      if (request.service !== "autoscaling" || request.action !== "DescribeScalingActivities") return undefined;
      const group = request.params.get("AutoScalingGroupName") ?? "";
      if (!options.group.test(group)) return undefined;
      const at = new Date().toISOString();
      const xml =
        `<DescribeScalingActivitiesResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><DescribeScalingActivitiesResult>` +
        `<Activities><member><ActivityId>a1b2c3d4-0000-4000-8000-000000000001</ActivityId>` +
        `<AutoScalingGroupName>${escapeXml(group)}</AutoScalingGroupName>` +
        `<Description>Launching a new EC2 instance.  Status Reason: ${escapeXml(options.message)} Launching EC2 instance failed.</Description>` +
        `<Cause>At ${at} an instance was started in response to a difference between desired and actual capacity.</Cause>` +
        `<StartTime>${at}</StartTime><EndTime>${at}</EndTime><StatusCode>Failed</StatusCode>` +
        `<StatusMessage>${escapeXml(options.message)} Launching EC2 instance failed.</StatusMessage><Progress>100</Progress></member></Activities>` +
        `</DescribeScalingActivitiesResult><ResponseMetadata><RequestId>asg-failed-launch</RequestId></ResponseMetadata></DescribeScalingActivitiesResponse>`;
      return { status: 200, headers: { "content-type": "text/xml" }, body: Buffer.from(xml) };
    },
    after(request, response) {
      if (request.service !== "autoscaling" || request.action !== "DescribeAutoScalingGroups") return response;
      const named = [...request.params.entries()].filter(([k]) => k.startsWith("AutoScalingGroupNames.member.")).map(([, v]) => v);
      if (named.length === 0 || !named.every((g) => options.group.test(g))) return response;
      const body = response.body.toString("utf8").replace(/<Instances>[\s\S]*?<\/Instances>/g, "<Instances/>");
      return { ...response, body: Buffer.from(body) };
    },
  };
}
