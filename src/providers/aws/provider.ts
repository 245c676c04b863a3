/**
 * The AWS deploy target: one Auto Scaling group and target group per release behind the
 * environment's ALB, instances launched from a launch template version with the release's AMI
 * and user-data. All state lives in AWS (tagged ASGs, the ALB's history tags, the lock's
 * launch template: env-lock.ts), so any machine with the credentials sees the same status and history.
 */
import { KilnError } from "../../errors.js";
import type { AwsClients } from "../../aws/clients.js";
import { targetGroupRequestCounts } from "../../aws/cloudwatch.js";
import { createGroup, deleteGroup, findGroups, resizeGroup, type ReleaseGroup, waitGroupInService } from "../../aws/autoscaling.js";
import {
  allowIngress,
  deleteLaunchTemplate,
  deleteSecurityGroupWhenFree,
  ensureSecurityGroup,
  findLaunchTemplates,
  findSecurityGroup,
  findSecurityGroupsByTags,
  instanceConsole,
} from "../../aws/ec2-deploy.js";
import { tagResources, untagResources } from "../../aws/ec2.js";
import {
  attachTargetGroup,
  createLoadBalancer,
  deleteLoadBalancer,
  deleteRulesTo,
  deleteTargetGroup,
  detachTargetGroup,
  ensureTargetGroup,
  findLoadBalancer,
  findTargetGroup,
  forwardListener,
  forwardWeighted,
  removeTags,
  resourceTags,
  setDeletionProtection,
  setTags,
  targetHealth,
} from "../../aws/elbv2.js";
import { compareErrorRates, sumCounts, type RequestCounts } from "../../deploy/canary-verdict.js";
import type { DeployProvider, HealthResult, HistoryEntry, ImageRef, LiveState } from "../../deploy/types.js";
import type { KilnHome } from "../../home.js";
import type { AwsEnvironment } from "../../config/environments.js";
import { deleteInstanceRole } from "../../aws/iam.js";
import { appendHistory, historyFromTags } from "./history.js";
import { instanceRoleName, launchTemplateName, loadBalancerName, releaseHeaderValue, securityGroupName, targetGroupName } from "./names.js";
import { checkNetwork, planLoadBalancedNetwork, refuseProblems, type Network } from "./network.js";
import type { Placement } from "./subnet-choice.js";
import { putReleaseTemplate, releaseImage, releaseTags } from "./release-template.js";
import { lockEnvironment } from "./env-lock.js";
import { loadBalancerDrift, secureLoadBalancer } from "./lb-security.js";
import { consoleTailOf } from "../../console-text.js";
import { deleteEnvironmentLogGroup, ensureEnvironmentLogGroup, observeLogGroup } from "./log-group.js";

export type HealthSource = (targetGroupArn: string, release: string) => Promise<{ id: string; state: string; reason?: string }[]>;

/** Requests and target 5xx answers per target group ARN in a time window, behind one load balancer. */
export type MetricSource = (
  loadBalancerArn: string,
  targetGroupArns: readonly string[],
  since: Date,
  until: Date,
) => Promise<Readonly<Record<string, RequestCounts>>>;

export interface AwsProviderOptions {
  /** Where target health comes from (tests inject failures: the emulator reports every target healthy). */
  readonly health?: HealthSource;
  /** Where a canary's request and error counts come from; CloudWatch's ALB metrics by default. */
  readonly metrics?: MetricSource;
  readonly pollMs?: number;
  /**
   * How long destroy waits for the load balancer's security groups to be released after the
   * load balancer is deleted (its network interfaces linger for minutes on AWS); default 600 s.
   */
  readonly securityGroupWaitSeconds?: number;
  /** First pause between tries to delete a security group still in use; default 2000 ms. */
  readonly securityGroupRetryMs?: number;
}

/** Marks a launch template kept for rollback after its release was replaced; the value is when. */
const KEPT_TAG = "kiln:kept";

export class AwsProvider implements DeployProvider {
  private network: Network | undefined;
  /** The ALB's subnets, one per zone (validate() chooses them). */
  private loadBalancerSubnets: readonly Placement[] = [];
  /** The instances' subnets (validate() chooses them), for the plan. */
  private instancePlacements: readonly Placement[] = [];
  /** Per canary release: when its traffic split began and the current release's target groups. */
  private readonly canaries = new Map<string, { since: Date; from: readonly string[] }>();

  constructor(
    private readonly env: AwsEnvironment,
    private readonly clients: AwsClients,
    private readonly home: KilnHome,
    private readonly options: AwsProviderOptions = {},
  ) {
    // single-instance environments have their own provider (single-instance.ts).
    if (env.mode !== "load-balanced")
      throw new KilnError(`environment ${env.name} is ${env.mode}: AwsProvider deploys load-balanced environments only`);
  }

  private get baseTags(): Record<string, string> {
    return { "kiln:app": this.env.app, "kiln:env": this.env.name };
  }

  /** VPC and subnets: as configured, else the default VPC's subnets. Checked at plan time. */
  async validate(): Promise<void> {
    const check = await checkNetwork(this.clients, this.env);
    const { problems } = check;
    const placement = check.found.length ? await planLoadBalancedNetwork(this.clients, this.env, check) : undefined;
    problems.push(...(placement?.problems ?? []));
    if (this.env.certificateArn && !/^arn:aws[\w-]*:acm:[\w-]+:\d{12}:certificate\/[\w-]+$/.test(this.env.certificateArn))
      problems.push(`https.certificateArn ${this.env.certificateArn} is not an ACM certificate ARN`);
    refuseProblems(this.env, problems);
    this.network = { vpc: check.network.vpc, subnets: placement!.instances.map((p) => p.subnet) };
    this.loadBalancerSubnets = placement!.loadBalancer;
    this.instancePlacements = placement!.instances;
  }

  private async net(): Promise<Network> {
    if (!this.network) await this.validate();
    return this.network!;
  }

  private async releaseGroups(): Promise<ReleaseGroup[]> {
    return findGroups(this.clients, this.baseTags);
  }

  private health(targetGroup: string, release: string) {
    return (this.options.health ?? ((arn) => targetHealth(this.clients, arn)))(targetGroup, release);
  }

  async observe(): Promise<LiveState> {
    const lb = await findLoadBalancer(this.clients, loadBalancerName(this.env.app, this.env.name));
    const groups = await this.releaseGroups();
    const releases = await Promise.all(
      groups.map(async (g) => {
        const tg = g.targetGroups[0];
        const health = tg ? await this.health(tg, g.name) : [];
        return {
          id: g.name,
          desired: g.desired,
          serving: Boolean(tg && lb?.liveTargetGroup === tg),
          image: { ref: g.tags["kiln:ref"] ?? "", digest: g.tags["kiln:digest"] ?? "" },
          instances: g.instances.map((i) => {
            const target = health.find((h) => h.id === i.id);
            const checked = target ? `target ${target.state}${target.reason ? ` (${target.reason})` : ""}` : "not a target of its group";
            return { id: i.id, zone: i.zone, healthy: target?.state === "healthy", health: `${i.lifecycle || "?"}, ${checked}` };
          }),
        };
      }),
    );
    const history = lb ? historyFromTags(await resourceTags(this.clients, lb.arn)) : [];
    const logs = await observeLogGroup(this.clients, this.env, Boolean(lb?.listenerArn));
    const drift = [...(lb ? await loadBalancerDrift(this.clients, this.env, lb.arn) : []), ...logs.drift];
    const securityGroups = await findSecurityGroupsByTags(this.clients, this.baseTags);
    const leftovers = [...(lb ? [loadBalancerName(this.env.app, this.env.name)] : []), ...securityGroups.map((g) => g.id)];
    const network = this.loadBalancerSubnets.length
      ? { loadBalancer: this.loadBalancerSubnets, instances: this.instancePlacements }
      : undefined;
    return {
      infrastructure: Boolean(lb?.listenerArn),
      releases,
      history,
      leftovers,
      ...(logs.logGroup ? { logGroup: logs.logGroup } : {}),
      ...(network ? { network } : {}),
      ...(drift.length ? { drift } : {}),
    };
  }

  /**
   * The environment's lock: a launch template only one promote can create (env-lock.ts). It
   * needs no security group: ensureInfrastructure() creates the load balancer's.
   */
  async lock(owner: string, holdSeconds?: number): Promise<() => Promise<void>> {
    return lockEnvironment(this.clients, this.env.app, this.env.name, owner, holdSeconds);
  }

  async ensureInfrastructure(): Promise<void> {
    const { vpc } = await this.net();
    const name = loadBalancerName(this.env.app, this.env.name);
    const lbSg = await ensureSecurityGroup(
      this.clients,
      vpc,
      securityGroupName(this.env.app, this.env.name, "lb"),
      `kiln ${this.env.app} ${this.env.name} load balancer`,
      this.baseTags,
      [{ port: 80, cidr: "0.0.0.0/0" }, ...(this.env.certificateArn ? [{ port: 443, cidr: "0.0.0.0/0" }] : [])],
    );
    // With https, port 80 stays open for the redirect (also on a group made before there was one).
    await allowIngress(this.clients, lbSg, { port: 80, cidr: "0.0.0.0/0" });
    if (this.env.certificateArn) await allowIngress(this.clients, lbSg, { port: 443, cidr: "0.0.0.0/0" });
    let lb = await findLoadBalancer(this.clients, name);
    if (!lb) {
      await createLoadBalancer(
        this.clients,
        name,
        this.loadBalancerSubnets.map((p) => p.subnet),
        lbSg,
        this.baseTags,
      );
      lb = await findLoadBalancer(this.clients, name);
    }
    if (lb) await secureLoadBalancer(this.clients, this.env, lb.arn);
    await ensureEnvironmentLogGroup(this.clients, this.env);
  }

  private async instanceSecurityGroup(port: number): Promise<string> {
    const { vpc } = await this.net();
    const lbSg = (await findSecurityGroup(this.clients, vpc, securityGroupName(this.env.app, this.env.name, "lb")))!.id;
    return ensureSecurityGroup(
      this.clients,
      vpc,
      securityGroupName(this.env.app, this.env.name, "instances"),
      `kiln ${this.env.app} ${this.env.name} instances`,
      this.baseTags,
      [{ port, fromGroup: lbSg }],
    );
  }

  async launch(release: string, image: ImageRef, instances: number): Promise<void> {
    const existing = (await this.releaseGroups()).find((g) => g.name === release);
    if (existing) {
      if (existing.desired !== instances) await resizeGroup(this.clients, release, instances);
      return;
    }
    const launch = await releaseImage(this.clients, this.home, image);
    const port = launch.port;
    const { vpc, subnets } = await this.net();
    const tags = releaseTags(this.env, release, image);
    const template = await putReleaseTemplate(this.clients, this.env, {
      release,
      image,
      launch,
      securityGroup: await this.instanceSecurityGroup(port),
      tags,
    });
    // A kept template runs again (a rollback): it is no longer only a rollback target.
    if (template.reused) await untagResources(this.clients, [template.id], [KEPT_TAG]);
    const targetGroup = await ensureTargetGroup(this.clients, {
      name: targetGroupName(release),
      vpc,
      port,
      healthPath: this.env.health.path,
      intervalSeconds: this.env.health.intervalSeconds,
      checkTimeoutSeconds: this.env.health.checkTimeoutSeconds,
      healthyThreshold: this.env.health.healthyThreshold,
      unhealthyThreshold: this.env.health.unhealthyThreshold,
      deregistrationDelaySeconds: this.env.deregistrationDelaySeconds,
      tags,
    });
    await createGroup(this.clients, { name: release, launchTemplate: template, subnets, size: instances, targetGroup, tags });
  }

  /** The listener forwards to the release's target group with weight 0, so the ALB starts checking its targets. */
  async attach(release: string): Promise<void> {
    const lb = await findLoadBalancer(this.clients, loadBalancerName(this.env.app, this.env.name));
    const tg = await findTargetGroup(this.clients, targetGroupName(release));
    if (!lb?.listenerArn || !tg) throw new KilnError(`cannot attach ${release} in ${this.env.name}: load balancer or target group missing`);
    await attachTargetGroup(this.clients, lb.listenerArn, tg, releaseHeaderValue(release));
  }

  async waitHealthy(release: string, timeoutSeconds: number): Promise<HealthResult> {
    const deadline = Date.now() + timeoutSeconds * 1000;
    // Rounds of 15 s (tests with a short poll: shorter), so a launch Auto Scaling reports as failed ends the gate early.
    const firstRound = Math.min(15, Math.max(3, Math.ceil((this.options.pollMs ?? 15_000) / 1000)));
    const group = await waitGroupInService(this.clients, release, timeoutSeconds, firstRound);
    if (!group.inService) return { healthy: false, detail: group.detail };
    let detail = "";
    // Target health has no waiter that accepts an injected source; poll the gate until it passes.
    while (Date.now() < deadline) {
      const group = (await this.releaseGroups()).find((g) => g.name === release);
      const tg = group?.targetGroups[0];
      if (!group || !tg) return { healthy: false, detail: `release ${release} disappeared` };
      const health = await this.health(tg, release);
      const healthy = group.instances.filter((i) => health.some((h) => h.id === i.id && h.state === "healthy"));
      // The most telling state first: a failing check, else why a target is not healthy yet (initial, unused).
      const waiting = health.find((h) => h.state === "unhealthy") ?? health.find((h) => h.state !== "healthy");
      detail = `${healthy.length} of ${group.desired} targets healthy${waiting ? ` (${waiting.id}: ${waiting.state}, ${waiting.reason ?? "no reason given"})` : ""}`;
      if (group.instances.length >= group.desired && healthy.length >= group.desired) return { healthy: true, detail };
      await new Promise((r) => setTimeout(r, this.options.pollMs ?? 5000));
    }
    return { healthy: false, detail: `timed out after ${timeoutSeconds}s: ${detail}` };
  }

  async switchTraffic(to: string): Promise<void> {
    const lb = await findLoadBalancer(this.clients, loadBalancerName(this.env.app, this.env.name));
    const tg = await findTargetGroup(this.clients, targetGroupName(to));
    if (!lb?.listenerArn || !tg) throw new KilnError(`cannot switch ${this.env.name} to ${to}: load balancer or target group missing`);
    await forwardListener(this.clients, lb.listenerArn, tg);
    // The attach rule of a first promote has done its job once the default action forwards.
    await deleteRulesTo(this.clients, lb.listenerArn, tg);
  }

  /** Canary: a weighted forward to the new release's target group and the current one(s). */
  async splitTraffic(to: string, from: readonly string[], percent: number): Promise<void> {
    const lb = await findLoadBalancer(this.clients, loadBalancerName(this.env.app, this.env.name));
    const green = await findTargetGroup(this.clients, targetGroupName(to));
    const blue = (await Promise.all(from.map((r) => findTargetGroup(this.clients, targetGroupName(r))))).filter(
      (t): t is string => t !== undefined,
    );
    if (!lb?.listenerArn || !green || blue.length === 0)
      throw new KilnError(`cannot split ${this.env.name} between ${to} and ${from.join(", ")}: load balancer or target group missing`);
    // The current release must keep the larger weight (observe() takes the heaviest group as
    // the live one, so a re-run after an interruption still sees it as live): 50 % becomes 50:51.
    const share = Math.max(percent + 1, Math.floor((100 - percent) / blue.length));
    await forwardWeighted(this.clients, lb.listenerArn, [...blue.map((arn) => ({ arn, weight: share })), { arn: green, weight: percent }]);
    this.canaries.set(to, { since: new Date(), from: blue });
  }

  /**
   * During a canary every target of the new release must stay healthy, and its share of target
   * 5xx answers since the split may exceed the current release's by at most one point (the rule
   * local canaries use). The counts are CloudWatch's ALB metrics, which arrive about a minute
   * late: on real AWS the canary window should be several minutes. Without a recorded split
   * (another process split the traffic) the last five minutes are compared against the live target group.
   */
  async canaryCheck(release: string): Promise<HealthResult> {
    const group = (await this.releaseGroups()).find((g) => g.name === release);
    const tg = group?.targetGroups[0];
    if (!group || !tg) return { healthy: false, detail: `release ${release} disappeared` };
    const health = await this.health(tg, release);
    const stateOf = (id: string) => health.find((h) => h.id === id);
    // `initial` is a target still being registered or checked (an instance the group just
    // replaced): not a failure. Failing checks, and targets the ALB no longer checks, are.
    const unhealthy = group.instances.filter((i) => !["healthy", "initial"].includes(stateOf(i.id)?.state ?? "missing"));
    const initial = group.instances.filter((i) => stateOf(i.id)?.state === "initial").length;
    if (unhealthy.length > 0 || group.instances.length < group.desired) {
      const first = unhealthy[0] ? stateOf(unhealthy[0].id) : undefined;
      const reason = first ? (first.reason ?? first.state) : "not registered with its target group";
      return {
        healthy: false,
        detail: `${unhealthy.length} of ${group.instances.length} targets unhealthy${unhealthy[0] ? ` (${unhealthy[0].id}: ${reason})` : ""}`,
      };
    }
    const lb = await findLoadBalancer(this.clients, loadBalancerName(this.env.app, this.env.name));
    if (!lb) return { healthy: false, detail: `the load balancer of ${this.env.name} disappeared` };
    const split = this.canaries.get(release);
    const current = split?.from ?? (lb.liveTargetGroup && lb.liveTargetGroup !== tg ? [lb.liveTargetGroup] : []);
    const since = split?.since ?? new Date(Date.now() - 5 * 60_000);
    const source: MetricSource =
      this.options.metrics ?? ((lbArn, tgs, from, until) => targetGroupRequestCounts(this.clients, lbArn, tgs, from, until));
    const counts = await source(lb.arn, [tg, ...current], since, new Date());
    const zero = { requests: 0, errors: 0 };
    const verdict = compareErrorRates(counts[tg] ?? zero, sumCounts(current.map((t) => counts[t] ?? zero)));
    return verdict.ok
      ? {
          healthy: true,
          detail: `${group.instances.length - initial} targets healthy${initial ? `, ${initial} initial` : ""}; ${verdict.detail}`,
        }
      : { healthy: false, detail: verdict.detail };
  }

  /** The ALB stops sending new requests at the switch; in-flight ones get the deregistration delay. */
  async drain(_release: string, delaySeconds: number): Promise<void> {
    await new Promise((r) => setTimeout(r, delaySeconds * 1000));
  }

  /**
   * The Auto Scaling group goes last: observe() finds a release by its group, so a delete that
   * fails half-way leaves the release visible, and the next run deletes the rest (deleting the
   * group first left its target group behind for good when a later call failed).
   */
  async deleteRelease(release: string, keepForRollback = false): Promise<void> {
    const tg = await findTargetGroup(this.clients, targetGroupName(release));
    if (tg) {
      // AWS refuses to delete a group the listener still forwards to: the live release (destroy),
      // or a failed release still attached with weight 0 or by its header rule.
      const lb = await findLoadBalancer(this.clients, loadBalancerName(this.env.app, this.env.name));
      if (lb?.listenerArn) await detachTargetGroup(this.clients, lb.listenerArn, tg);
      await deleteTargetGroup(this.clients, tg);
    }
    if (keepForRollback) await this.keepTemplate(release);
    else await deleteLaunchTemplate(this.clients, launchTemplateName(release));
    if ((await this.releaseGroups()).some((g) => g.name === release)) await deleteGroup(this.clients, release);
  }

  /** The environment's release launch templates (not its lock), with the releases that run them. */
  private async releaseTemplates() {
    const [templates, groups] = await Promise.all([findLaunchTemplates(this.clients, this.baseTags), this.releaseGroups()]);
    const running = new Set(groups.map((g) => g.name));
    return templates
      .filter((t) => t.tags["kiln:release"] !== undefined && t.tags["kiln:mode"] === undefined)
      .map((t) => ({ ...t, running: running.has(t.tags["kiln:release"]!) }));
  }

  /**
   * A replaced release's launch template stays (tagged with when it was kept), so a rollback
   * relaunches exactly what ran; only the newest `keepReleases` are kept.
   */
  private async keepTemplate(release: string): Promise<void> {
    const templates = await this.releaseTemplates();
    const mine = templates.find((t) => t.tags["kiln:release"] === release);
    if (mine && !mine.tags[KEPT_TAG]) {
      await tagResources(this.clients, [mine.id], { [KEPT_TAG]: new Date().toISOString() });
      mine.tags[KEPT_TAG] = new Date().toISOString();
    }
    // This release's group is still there (it goes last): its template counts as kept already.
    const kept = templates
      .filter((t) => t.tags[KEPT_TAG] && (!t.running || t.tags["kiln:release"] === release))
      .sort((a, b) => (a.tags[KEPT_TAG]! > b.tags[KEPT_TAG]! ? -1 : 1));
    for (const old of kept.slice(this.env.keepReleases)) await deleteLaunchTemplate(this.clients, old.name);
  }

  async scale(release: string, instances: number): Promise<void> {
    await resizeGroup(this.clients, release, instances);
  }

  async record(entry: HistoryEntry): Promise<void> {
    const lb = await findLoadBalancer(this.clients, loadBalancerName(this.env.app, this.env.name));
    if (!lb) return;
    const { set, remove } = appendHistory(await resourceTags(this.clients, lb.arn), entry);
    await setTags(this.clients, lb.arn, set);
    // The ALB holds at most 50 tags: keep the newest releases.
    await removeTags(this.clients, lb.arn, remove);
  }

  /**
   * Templates and role first, then the load balancer, then its security groups, found by the
   * environment's tags (not by the VPC or the load balancer, which may be gone or changed): the
   * load balancer's network interfaces hold its group for minutes after it is deleted, and if
   * this is cut short there, the next destroy still sees the groups (observe(): leftovers).
   * Deletion protection was checked by destroy against kiln.yml; the attribute goes off here.
   */
  async deleteInfrastructure(options: { readonly keepLogs?: boolean } = {}): Promise<void> {
    // Templates kept for rollback go with the environment.
    for (const template of await this.releaseTemplates()) if (!template.running) await deleteLaunchTemplate(this.clients, template.name);
    await deleteInstanceRole(this.clients.iam, instanceRoleName(this.env.app, this.env.name));
    const lb = await findLoadBalancer(this.clients, loadBalancerName(this.env.app, this.env.name));
    if (lb) {
      await setDeletionProtection(this.clients, lb.arn, false);
      await deleteLoadBalancer(this.clients, lb);
    }
    const groups = await findSecurityGroupsByTags(this.clients, this.baseTags);
    // A group another group's rules name goes last (the instances' group admits the load balancer's).
    groups.sort(
      (a, b) => Number(groups.some((g) => g.references.includes(a.id))) - Number(groups.some((g) => g.references.includes(b.id))),
    );
    for (const group of groups)
      await deleteSecurityGroupWhenFree(this.clients, group.id, {
        maxWaitSeconds: this.options.securityGroupWaitSeconds ?? 600,
        ...(this.options.securityGroupRetryMs !== undefined ? { minDelayMs: this.options.securityGroupRetryMs } : {}),
      });
    // Last: a destroy cut short before here still sees the log group (observe()) and deletes it next time.
    if (!options.keepLogs) await deleteEnvironmentLogGroup(this.clients, this.env);
  }

  async consoleTail(release: string): Promise<string> {
    const group = (await this.releaseGroups()).find((g) => g.name === release);
    const tg = group?.targetGroups[0];
    const health = tg ? await this.health(tg, release) : [];
    const failing = group?.instances.find((i) => !health.some((h) => h.id === i.id && h.state === "healthy")) ?? group?.instances[0];
    if (!failing) return "";
    return consoleTailOf(await instanceConsole(this.clients, failing.id));
  }

  async endpoint(): Promise<string | undefined> {
    const lb = await findLoadBalancer(this.clients, loadBalancerName(this.env.app, this.env.name));
    return lb ? `${this.env.certificateArn ? "https" : "http"}://${lb.dnsName}/` : undefined;
  }
}
