// The canary's error-rate rule shared by the local and AWS targets, and the CloudWatch dimensions
// and query window kiln derives for an ALB canary. All pure.
import { describe, expect, it } from "vitest";
import { loadBalancerDimension, metricWindow, targetGroupDimension } from "../../src/aws/cloudwatch.js";
import { compareErrorRates, sumCounts } from "../../src/deploy/canary-verdict.js";

describe("compareErrorRates", () => {
  it("passes without requests, without errors, and within one point of the current rate", () => {
    expect(compareErrorRates({ requests: 0, errors: 0 }, { requests: 0, errors: 0 })).toEqual({
      ok: true,
      detail: "canary answered 0 requests with 0 errors (0.0%); current release 0.0%",
    });
    expect(compareErrorRates({ requests: 100, errors: 0 }, { requests: 1000, errors: 500 }).ok).toBe(true);
    expect(compareErrorRates({ requests: 50, errors: 2 }, { requests: 500, errors: 20 }).ok).toBe(true);
    expect(compareErrorRates({ requests: 100, errors: 3 }, { requests: 1000, errors: 20 }).ok).toBe(true);
  });

  it("fails more than one point over the current rate, saying both rates", () => {
    expect(compareErrorRates({ requests: 20, errors: 8 }, { requests: 200, errors: 0 })).toEqual({
      ok: false,
      detail: "canary answered 20 requests with 8 errors (40.0%); current release 0.0%",
    });
    expect(compareErrorRates({ requests: 100, errors: 4 }, { requests: 1000, errors: 20 }).ok).toBe(false);
    // Errors with nothing to compare against: any error rate over one point fails.
    expect(compareErrorRates({ requests: 10, errors: 1 }, { requests: 0, errors: 0 }).ok).toBe(false);
  });

  it("adds up several target groups or servers", () => {
    expect(
      sumCounts([
        { requests: 10, errors: 1 },
        { requests: 5, errors: 0 },
      ]),
    ).toEqual({ requests: 15, errors: 1 });
    expect(sumCounts([])).toEqual({ requests: 0, errors: 0 });
  });
});

describe("CloudWatch dimensions of an ALB canary", () => {
  it("TargetGroup is the ARN's resource after the last colon, LoadBalancer the part after loadbalancer/", () => {
    expect(targetGroupDimension("arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/kiln-shop-2-0-0/73e2d6bc24d8a067")).toBe(
      "targetgroup/kiln-shop-2-0-0/73e2d6bc24d8a067",
    );
    expect(
      loadBalancerDimension("arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/kiln-shop-prod/50dc6c495c0c9188"),
    ).toBe("app/kiln-shop-prod/50dc6c495c0c9188");
    expect(loadBalancerDimension("arn:aws-cn:elasticloadbalancing:cn-north-1:123456789012:loadbalancer/app/x/1")).toBe("app/x/1");
  });

  it("refuses ARNs of something else", () => {
    expect(() => targetGroupDimension("arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/x/1")).toThrow(
      /not a target group ARN/,
    );
    expect(() => loadBalancerDimension("arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/x/1")).toThrow(
      /not a load balancer ARN/,
    );
  });

  it("widens the window to whole minutes: the split's minute counts, and the current one", () => {
    expect(metricWindow(new Date("2026-11-22T10:05:30.250Z"), new Date("2026-11-22T10:08:10Z"))).toEqual({
      start: new Date("2026-11-22T10:05:00Z"),
      end: new Date("2026-11-22T10:09:00Z"),
    });
    expect(metricWindow(new Date("2026-11-22T10:05:00Z"), new Date("2026-11-22T10:05:00Z"))).toEqual({
      start: new Date("2026-11-22T10:05:00Z"),
      end: new Date("2026-11-22T10:06:00Z"),
    });
  });
});
