/**
 * A listener's SslPolicy must name a security policy Elastic Load Balancing has. moto checks
 * this on ModifyListener but not on CreateListener, where it stores any name; real AWS refuses
 * both with SSLPolicyNotFound.
 *
 * AWS: "CreateListener" and "ModifyListener", Elastic Load Balancing API Reference, Errors:
 * "SSLPolicyNotFound — The specified SSL policy does not exist. HTTP Status Code: 400"
 * (https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_CreateListener.html,
 * https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_ModifyListener.html).
 * The known names are the ones DescribeSSLPolicies lists (moto keeps AWS's predefined policies),
 * see "Security policies for your Application Load Balancer"
 * (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/describe-ssl-policies.html).
 */
import type { StrictRule } from "../layer.js";
import { awsError } from "../protocol.js";

export const sslPolicyRule: StrictRule = {
  name: "ssl-policy",
  source:
    "CreateListener, Elastic Load Balancing API Reference (SSLPolicyNotFound): " +
    "https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_CreateListener.html",
  async before(request, ctx) {
    if (request.service !== "elasticloadbalancing" || (request.action !== "CreateListener" && request.action !== "ModifyListener"))
      return undefined;
    const policy = request.params.get("SslPolicy");
    if (policy === null) return undefined;
    const known = ctx.state("ssl-policy", () => ({ names: undefined as Set<string> | undefined }));
    if (!known.names) {
      const xml = await ctx.query("elasticloadbalancing", request.region, { Action: "DescribeSSLPolicies", Version: "2015-12-01" });
      // Policy names; the ciphers inside each policy have <Name>s too, but none starts like a policy.
      known.names = new Set([...xml.matchAll(/<Name>(ELBSecurityPolicy-[^<]+)<\/Name>/g)].map((m) => m[1]!));
    }
    if (known.names.has(policy)) return undefined;
    return awsError(request, 400, "SSLPolicyNotFound", `Policy '${policy}' not found`);
  },
};
