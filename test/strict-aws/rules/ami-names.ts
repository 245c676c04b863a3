/**
 * An AMI name is unique per account and Region: RegisterImage (and CopyImage) with a name in use
 * fails with InvalidAMIName.Duplicate ("The specified AMI name is already in use by another
 * AMI"; "Error codes for the Amazon EC2 API", https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html,
 * and "RegisterImage", https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_RegisterImage.html).
 * moto registers a second AMI of the same name, so a register retried after a lost answer would
 * make two images where AWS refuses the second.
 */
import type { StrictRule } from "../layer.js";
import { awsError } from "../protocol.js";
import { oneAtATime } from "./one-at-a-time.js";

export const amiNamesRule: StrictRule = {
  name: "ami-names",
  source:
    "Error codes for the Amazon EC2 API: InvalidAMIName.Duplicate (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html)",
  async around(request, ctx, next) {
    if (request.service !== "ec2" || (request.action !== "RegisterImage" && request.action !== "CopyImage")) return next();
    const name = request.params.get("Name") ?? "";
    return oneAtATime(ctx, "ami-names", `${request.region}/${name}`, async () => {
      const xml = await ctx.query("ec2", request.region, {
        Action: "DescribeImages",
        Version: "2016-11-15",
        "Owner.1": "self",
        "Filter.1.Name": "name",
        "Filter.1.Value.1": name,
      });
      const taken = /<imageId>(ami-[0-9a-f]+)<\/imageId>/.exec(xml)?.[1];
      if (taken) return awsError(request, 400, "InvalidAMIName.Duplicate", `AMI name ${name} is already in use by AMI ${taken}`);
      return next();
    });
  },
};
