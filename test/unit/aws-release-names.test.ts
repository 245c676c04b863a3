// AWS names derived from release ids, which end in the digest and the launch configuration's
// hash (issue 18, item 1): within AWS's limits, and never the same for two releases.
import { describe, expect, it } from "vitest";
import { releaseId } from "../../src/deploy/plan.js";
import { launchTemplateName, releaseHeaderValue, targetGroupName } from "../../src/providers/aws/names.js";
import { awsEnv, v2 } from "./helpers/deploy-fixtures.js";

const aws = { ...awsEnv, app: "a".repeat(63), name: "e".repeat(21) };

describe("AWS names of releases that differ only in their configuration", () => {
  const version = "1".repeat(64);
  const one = releaseId({ ...aws, env: { A: "1" } }, v2, version);
  const two = releaseId({ ...aws, env: { A: "2" } }, v2, version);
  const restarted = `${one}-r1`;

  it("launch templates (≤ 128), target groups (≤ 32) and the attach rule's header value (≤ 128) stay distinct", () => {
    for (const [name, max] of [
      [launchTemplateName, 128],
      [targetGroupName, 32],
      [releaseHeaderValue, 128],
    ] as const) {
      const names = [one, two, restarted].map(name);
      for (const n of names) expect(n.length).toBeLessThanOrEqual(max);
      expect(new Set(names).size).toBe(3);
    }
  });

  it("short release ids keep their readable names", () => {
    expect(launchTemplateName("shop-test-2-0-0-2222222-abcdef")).toBe("kiln-shop-test-2-0-0-2222222-abcdef");
    expect(releaseHeaderValue("shop-test-2-0-0-2222222-abcdef")).toBe("shop-test-2-0-0-2222222-abcdef");
  });
});
