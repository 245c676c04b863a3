// The production AWS clients retry like AWS's SDK guidance asks of a tool that makes many
// control-plane calls in a row: standard or adaptive retry mode, and enough attempts (5 to 8)
// to ride out a burst of throttling or a 5xx without failing a deploy half-way.
import { describe, expect, it } from "vitest";
import { createAwsClients } from "../../src/aws/clients.js";

describe("AWS client retry settings", () => {
  it("every client kiln creates retries in standard or adaptive mode with 5 to 8 attempts", async () => {
    const clients = createAwsClients({ region: "eu-west-1" });
    for (const name of ["ec2", "ebs", "autoscaling", "elbv2", "iam", "cloudwatch"] as const) {
      const config = clients[name].config as { maxAttempts: () => Promise<number>; retryStrategy: () => Promise<{ mode: string }> };
      expect(["standard", "adaptive"], `${name} retry mode`).toContain((await config.retryStrategy()).mode);
      const attempts = await config.maxAttempts();
      expect(attempts, `${name} attempts`).toBeGreaterThanOrEqual(5);
      expect(attempts, `${name} attempts`).toBeLessThanOrEqual(8);
    }
  });

  it("tests may still ask for one attempt", async () => {
    const clients = createAwsClients({ region: "eu-west-1", maxAttempts: 1 });
    expect(await (clients.ec2.config as { maxAttempts: () => Promise<number> }).maxAttempts()).toBe(1);
  });
});
