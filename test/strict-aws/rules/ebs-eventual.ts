/**
 * Right after StartSnapshot, PutSnapshotBlock may answer that the snapshot does not exist: the
 * new snapshot is not yet visible to every EBS direct API endpoint. moto makes it visible at once.
 * For `windowMs` after a StartSnapshot answer, the layer refuses that snapshot's block writes with
 * ResourceNotFoundException (Reason SNAPSHOT_NOT_FOUND), as AWS can.
 *
 * AWS documentation:
 * - "PutSnapshotBlock - EBS direct APIs", https://docs.aws.amazon.com/ebs/latest/APIReference/API_PutSnapshotBlock.html:
 *   Errors, ResourceNotFoundException "The specified resource does not exist." (HTTP 404), Reason SNAPSHOT_NOT_FOUND.
 * - "Error retries", https://docs.aws.amazon.com/ebs/latest/userguide/error-retries.html: clients should
 *   retry with exponential backoff; "Eventual consistency" in the Amazon EC2 API reference
 *   (https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html): a resource just
 *   created may not be visible to the next call.
 */
import type { StrictRule } from "../layer.js";
import { ebsError, isOk, readJson, routeSnapshotId } from "./ebs-common.js";

const NAME = "ebs-eventual";

export function ebsEventualRule(options: { windowMs?: number } = {}): StrictRule {
  const windowMs = options.windowMs ?? 1000;
  return {
    name: NAME,
    source: "PutSnapshotBlock (EBS direct APIs) errors; Error retries (Amazon EBS User Guide)",
    before(request, ctx) {
      if (request.service !== "ebs" || request.action !== "PutSnapshotBlock") return undefined;
      const id = routeSnapshotId(request) ?? "";
      const started = ctx.state(NAME, () => new Map<string, number>()).get(id);
      if (started === undefined || ctx.now() - started >= windowMs) return undefined;
      return ebsError(request, 404, "ResourceNotFoundException", "SNAPSHOT_NOT_FOUND", `The snapshot '${id}' does not exist.`);
    },
    after(request, response, ctx) {
      if (request.service !== "ebs" || request.action !== "StartSnapshot" || !isOk(response)) return response;
      const id = readJson(response)?.SnapshotId;
      if (typeof id === "string") ctx.state(NAME, () => new Map<string, number>()).set(id, ctx.now());
      return response;
    },
  };
}
