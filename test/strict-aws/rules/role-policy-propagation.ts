/**
 * Scenario rule role-policy-propagation (opt-in, for tests of an instance's first boot): the
 * instance role's new policy is not yet in effect, so SSM GetParameter and KMS Decrypt answer
 * AccessDeniedException for `windowMs` from the first such call.
 *
 * "Troubleshoot IAM — Changes that I make are not always immediately visible"
 * https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency
 * A role created (or a policy put) just before the instance boots may not allow its calls yet.
 */
import type { StrictRule } from "../layer.js";
import { awsError } from "../protocol.js";

const ACTIONS: Record<string, string> = { GetParameter: "ssm:GetParameter", Decrypt: "kms:Decrypt" };

export function rolePolicyPropagation(options: { windowMs?: number } = {}): StrictRule {
  const windowMs = options.windowMs ?? 2000;
  const name = "role-policy-propagation";
  return {
    name,
    source:
      "Troubleshoot IAM: Changes that I make are not always immediately visible — " +
      "https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency",
    before(request, ctx) {
      const action = ACTIONS[request.action];
      if (!action || (request.service !== "ssm" && request.service !== "kms")) return undefined;
      const first = ctx.state<{ at: number }>(name, () => ({ at: ctx.now() }));
      if (ctx.now() - first.at >= windowMs) return undefined;
      return awsError(
        request,
        400,
        "AccessDeniedException",
        `User: arn:aws:sts::123456789012:assumed-role/kiln-app-prod/i-0123456789abcdef0 is not authorized to perform: ${action} ` +
          "because no identity-based policy allows the action",
      );
    },
  };
}
