/**
 * CreateTargetGroup is idempotent on AWS: "If you attempt to create multiple target groups with
 * the same settings, each call succeeds" ("CreateTargetGroup", Elastic Load Balancing API
 * Reference, https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_CreateTargetGroup.html),
 * and answers with the existing group; only a name taken by a group with other settings is
 * DuplicateTargetGroupName. moto refuses every second create of a name, so a create retried
 * after a lost answer would fail a promote that succeeds on AWS.
 */
import type { StrictRule } from "../layer.js";

/** The settings AWS compares, as DescribeTargetGroups shows them and CreateTargetGroup sends them. */
const SETTINGS: readonly [param: string, element: string][] = [
  ["Protocol", "Protocol"],
  ["Port", "Port"],
  ["VpcId", "VpcId"],
  ["TargetType", "TargetType"],
];

const element = (xml: string, name: string) => new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)?.[1];

export const targetGroupNamesRule: StrictRule = {
  name: "target-group-names",
  source: "CreateTargetGroup (https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_CreateTargetGroup.html)",
  async around(request, ctx, next) {
    if (request.service !== "elasticloadbalancing" || request.action !== "CreateTargetGroup") return next();
    const name = request.params.get("Name") ?? "";
    const xml = await ctx.query("elasticloadbalancing", request.region, {
      Action: "DescribeTargetGroups",
      Version: "2015-12-01",
      "Names.member.1": name,
    });
    const group = /<TargetGroups>\s*<member>([\s\S]*?)<\/member>\s*<\/TargetGroups>/.exec(xml)?.[1];
    if (!group || element(group, "TargetGroupName") !== name) return next();
    const sent = (param: string) => request.params.get(param) ?? (param === "TargetType" ? "instance" : undefined);
    const same = SETTINGS.every(([param, name]) => sent(param) === undefined || sent(param) === element(group, name));
    // Other settings: moto's own refusal is AWS's answer (DuplicateTargetGroupName).
    if (!same) return next();
    const body = xml
      .replace(/DescribeTargetGroupsResponse/g, "CreateTargetGroupResponse")
      .replace(/DescribeTargetGroupsResult/g, "CreateTargetGroupResult")
      .replace(/<NextMarker>[^<]*<\/NextMarker>/, "");
    return { status: 200, headers: { "content-type": "text/xml" }, body: Buffer.from(body) };
  },
};
