/**
 * An Auto Scaling group's name is unique in the account and Region: CreateAutoScalingGroup with a
 * name in use fails with AlreadyExists ("You already have an Auto Scaling group or launch
 * configuration with this name"; "CreateAutoScalingGroup", Amazon EC2 Auto Scaling API Reference,
 * https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_CreateAutoScalingGroup.html, Errors).
 * moto replaces the group instead and leaves the first group's instances running, so a create
 * retried after a lost answer would count two groups' instances where AWS has one group.
 */
import type { StrictRule } from "../layer.js";
import { awsError } from "../protocol.js";
import { oneAtATime } from "./one-at-a-time.js";

export const asgNamesRule: StrictRule = {
  name: "asg-names",
  source:
    "CreateAutoScalingGroup, Errors: AlreadyExists (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_CreateAutoScalingGroup.html)",
  async around(request, ctx, next) {
    if (request.service !== "autoscaling" || request.action !== "CreateAutoScalingGroup") return next();
    const name = request.params.get("AutoScalingGroupName") ?? "";
    return oneAtATime(ctx, "asg-names", `${request.region}/${name}`, async () => {
      const xml = await ctx.query("autoscaling", request.region, {
        Action: "DescribeAutoScalingGroups",
        Version: "2011-01-01",
        "AutoScalingGroupNames.member.1": name,
      });
      if (xml.includes(`<AutoScalingGroupName>${name}</AutoScalingGroupName>`))
        return awsError(
          request,
          400,
          "AlreadyExists",
          `AutoScalingGroup by this name already exists - A group with the name ${name} already exists`,
        );
      return next();
    });
  },
};
