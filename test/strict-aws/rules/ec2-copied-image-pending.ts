/**
 * Rule ec2-copied-image-pending: an AMI made by CopyImage is `pending` until its snapshots are
 * copied, and only an `available` AMI launches.
 *
 * "CopyImage" (Amazon EC2 API Reference) https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CopyImage.html
 * and "Copy an Amazon EC2 AMI" https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/CopyingAMIs.html:
 * CopyImage only initiates the copy; the new AMI's state is pending until the copy completes
 * (minutes on AWS), and DescribeImages' `image-available` waiter is how callers wait for it.
 * moto answers `available` at once; this rule reports `pending` for `windowMs` after the copy
 * (tests: 2 s), in DescribeImages answers only.
 */
import type { StrictRule } from "../layer.js";

export function ec2CopiedImagePending(options: { windowMs?: number } = {}): StrictRule {
  const windowMs = options.windowMs ?? 2000;
  const name = "ec2-copied-image-pending";
  return {
    name,
    source: "CopyImage — https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CopyImage.html",
    after(request, response, ctx) {
      if (request.service !== "ec2" || response.status >= 300) return response;
      const copies = ctx.state<Map<string, number>>(name, () => new Map());
      const body = response.body.toString("utf8");
      if (request.action === "CopyImage") {
        const id = /<imageId>([^<]+)<\/imageId>/.exec(body)?.[1];
        if (id) copies.set(id, ctx.now());
        return response;
      }
      if (request.action !== "DescribeImages" || copies.size === 0) return response;
      let rewritten = body;
      for (const [id, at] of copies) {
        if (ctx.now() - at >= windowMs) continue;
        // Image items do not nest, so the first state after an image's id is that image's.
        const start = rewritten.indexOf(`<imageId>${id}</imageId>`);
        if (start < 0) continue;
        const state = rewritten.indexOf("<imageState>available</imageState>", start);
        const next = rewritten.indexOf("<imageId>", start + 1);
        if (state < 0 || (next >= 0 && next < state)) continue;
        rewritten = `${rewritten.slice(0, state)}<imageState>pending</imageState>${rewritten.slice(state + "<imageState>available</imageState>".length)}`;
      }
      return rewritten === body ? response : { ...response, body: Buffer.from(rewritten) };
    },
  };
}
