/** The strictness layer itself: requests pass through to moto, are named, and faults are injected as configured. */
import { DescribeVpcsCommand } from "@aws-sdk/client-ec2";
import { DescribeTargetGroupsCommand } from "@aws-sdk/client-elastic-load-balancing-v2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { emulatorClients, type Moto, startMoto, useEmulatorCredentials } from "./moto.js";

describe("strictness layer in front of moto", () => {
  let moto: Moto;
  beforeAll(async () => {
    useEmulatorCredentials();
    moto = await startMoto();
  });
  afterAll(async () => {
    await moto?.stop();
  });

  it("passes requests through and records service and operation", async () => {
    const aws = emulatorClients(moto, "eu-west-1");
    const vpcs = await aws.ec2.send(new DescribeVpcsCommand({}));
    expect(vpcs.Vpcs?.length).toBeGreaterThan(0);
    await aws.elbv2.send(new DescribeTargetGroupsCommand({}));
    expect(moto.strict?.calls.map((c) => `${c.service}:${c.action}:${c.status}`)).toEqual([
      "ec2:DescribeVpcs:200",
      "elasticloadbalancing:DescribeTargetGroups:200",
    ]);
  });

  it("injects each kind of fault as the SDK sees it from AWS", async () => {
    const aws = emulatorClients(moto, "eu-west-1");
    const seen: string[] = [];
    for (const kind of ["throttle", "500", "503", "drop"] as const) {
      moto.strict?.setFaults({ rate: 1, seed: 7, kinds: [kind] });
      const error = await aws.ec2
        .send(new DescribeVpcsCommand({}))
        .catch((e: unknown) => e as Error & { $metadata?: { httpStatusCode?: number } });
      seen.push(
        `${kind}:${(error as Error).name}:${(error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode ?? "-"}`,
      );
    }
    moto.strict?.setFaults(undefined);
    expect(seen.slice(0, 3)).toEqual(["throttle:RequestLimitExceeded:503", "500:InternalError:500", "503:ServiceUnavailable:503"]);
    expect(seen[3]).toMatch(/^drop:/);
    expect(moto.strict?.calls.filter((c) => c.fault).length).toBe(4);
  });
});
