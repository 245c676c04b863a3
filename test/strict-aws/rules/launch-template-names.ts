/**
 * Launch template names are unique per account and Region, and AWS decides that atomically:
 * of concurrent CreateLaunchTemplate calls with one name, exactly one succeeds and the others get
 * InvalidLaunchTemplateName.AlreadyExistsException ("Amazon EC2 API Reference: CreateLaunchTemplate",
 * https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateLaunchTemplate.html, and the
 * error codes page). moto's threaded server checks and inserts without a lock, so under load two
 * creates of one name can both succeed; kiln's environment lock relies on AWS's behaviour, so the
 * layer hands moto one create per name at a time.
 */
import type { StrictRule } from "../layer.js";
import { oneAtATime } from "./one-at-a-time.js";

export const launchTemplateNames: StrictRule = {
  name: "launch-template-names",
  source:
    "Amazon EC2 API Reference: CreateLaunchTemplate (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateLaunchTemplate.html)",
  async around(request, ctx, next) {
    if (request.service !== "ec2" || request.action !== "CreateLaunchTemplate") return next();
    return oneAtATime(ctx, "launch-template-names", `${request.region}/${request.params.get("LaunchTemplateName") ?? ""}`, next);
  },
};
