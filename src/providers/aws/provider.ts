/**
 * The AWS deploy target: one Auto Scaling group and target group per release behind the
 * environment's ALB, instances launched from a launch template version with the release's AMI
 * and user-data. All state lives in tags (ASGs, the ALB, the security group that holds the
 * lock), so any machine with the credentials sees the same status and history.
 */
import { processAlive } from "../../process-alive.js";
import { randomBytes } from "node:crypto";
import { CreateTagsCommand, DeleteTagsCommand } from "@aws-sdk/client-ec2";
import { waitUntilGroupInService } from "@aws-sdk/client-auto-scaling";
import { InputError, KilnError } from "../../errors.js";
import type { AwsClients } from "../../aws/clients.js";
import { createGroup, deleteGroup, findGroups, resizeGroup, type ReleaseGroup } from "../../aws/autoscaling.js";
import { aws } from "../../aws/errors.js";
import {
  defaultVpc, deleteLaunchTemplate, deleteSecurityGroup, describeSubnets, ensureSecurityGroup, findSecurityGroup, instanceConsole, instanceTypeOffered, putLaunchTemplateVersion,
} from "../../aws/ec2-deploy.js";
import { findKilnAmis } from "../../aws/ec2.js";
import {
  answerUnavailable, createListener, createLoadBalancer, deleteLoadBalancer, deleteTargetGroup, ensureTargetGroup, findLoadBalancer, findTargetGroup, forwardListener,
  removeTags, resourceTags, setTags, targetHealth,
} from "../../aws/elbv2.js";
import type { DeployProvider, HealthResult, HistoryEntry, ImageRef, LiveState } from "../../deploy/types.js";
import type { KilnHome } from "../../home.js";
import { ImageStore } from "../../image/store.js";
import { pushImage } from "../../push/push.js";
import { renderUserData } from "../../run/seed.js";
import type { AwsEnvironment } from "../../spec/environments.js";
import { deleteInstanceRole, ensureInstanceRole, secretsPolicy } from "../../aws/iam.js";
import { decodeHistory, encodeHistory, instanceRoleName, launchTemplateName, loadBalancerName, securityGroupName, targetGroupName } from "./names.js";

export type HealthSource = (targetGroupArn: string, release: string) => Promise<{ id: string; state: string; reason?: string }[]>;

export interface AwsProviderOptions {
  /** Where target health comes from (tests inject failures: the emulator reports every target healthy). */
  readonly health?: HealthSource;
  readonly pollMs?: number;
}

const HISTORY_LIMIT = 40;


export class AwsProvider implements DeployProvider {
  private network: { vpc: string; subnets: string[] } | undefined;

  constructor(private readonly env: AwsEnvironment, private readonly clients: AwsClients, private readonly home: KilnHome, private readonly options: AwsProviderOptions = {}) {}

  private get baseTags(): Record<string, string> {
    return { "kiln:app": this.env.app, "kiln:env": this.env.name };
  }

  /** VPC and subnets: as configured, else the default VPC's subnets. Checked at plan time. */
  async validate(): Promise<void> {
    const problems: string[] = [];
    const vpc = this.env.vpc ?? (await defaultVpc(this.clients));
    if (!vpc) throw new InputError(`environment ${this.env.name}: ${this.clients.region} has no default VPC`, { hint: `set environments.${this.env.name}.vpc and subnets in kiln.yml` });
    const subnets = await describeSubnets(this.clients, this.env.subnets, this.env.subnets.length ? undefined : vpc);
    const foreign = subnets.filter((s) => s.VpcId !== vpc).map((s) => `${s.SubnetId} (in ${s.VpcId})`);
    if (foreign.length) problems.push(`subnets ${foreign.join(", ")} are not in VPC ${vpc}`);
    const zones = new Set(subnets.map((s) => s.AvailabilityZone));
    if (this.env.mode === "load-balanced" && zones.size < 2) problems.push(`a load-balanced environment needs subnets in at least two availability zones (found ${[...zones].join(", ") || "none"})`);
    if (this.env.mode === "single-instance") problems.push("mode single-instance (Elastic IP swap) is not supported by this kiln build; use load-balanced");
    if (!(await instanceTypeOffered(this.clients, this.env.instanceType))) problems.push(`instance type ${this.env.instanceType} is not offered in ${this.clients.region}`);
    if (this.env.certificateArn && !/^arn:aws[\w-]*:acm:[\w-]+:\d{12}:certificate\/[\w-]+$/.test(this.env.certificateArn)) problems.push(`https.certificateArn ${this.env.certificateArn} is not an ACM certificate ARN`);
    if (problems.length) throw new InputError(`environment ${this.env.name} cannot be deployed:\n${problems.map((p) => `  - ${p}`).join("\n")}`, { hint: `fix environments.${this.env.name} in kiln.yml` });
    this.network = { vpc, subnets: subnets.filter((s) => s.VpcId === vpc).map((s) => s.SubnetId!).sort() };
  }

  private async net(): Promise<{ vpc: string; subnets: string[] }> {
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
    const releases = await Promise.all(groups.map(async (g) => {
      const tg = g.targetGroups[0];
      const health = tg ? await this.health(tg, g.name) : [];
      return {
        id: g.name, desired: g.desired, serving: Boolean(tg && lb?.liveTargetGroup === tg),
        image: { ref: g.tags["kiln:ref"] ?? "", digest: g.tags["kiln:digest"] ?? "" },
        instances: g.instances.map((i) => ({ id: i.id, zone: i.zone, healthy: health.some((h) => h.id === i.id && h.state === "healthy") })),
      };
    }));
    const history: HistoryEntry[] = [];
    if (lb) {
      const tags = await resourceTags(this.clients, lb.arn);
      for (const key of Object.keys(tags).filter((k) => k.startsWith("kiln:h:")).sort()) {
        const h = decodeHistory(tags[key]!);
        if (h) history.push({ release: h.release, image: { ref: h.ref, digest: h.digest }, result: h.result as HistoryEntry["result"], at: h.at });
      }
    }
    return { infrastructure: Boolean(lb?.listenerArn), releases, history };
  }

  /** A lock tag on the environment's load-balancer security group, written then read back. */
  async lock(owner: string): Promise<() => Promise<void>> {
    const { vpc } = await this.net();
    const sgName = securityGroupName(this.env.app, this.env.name, "lb");
    const sg = await ensureSecurityGroup(this.clients, vpc, sgName, `kiln ${this.env.app} ${this.env.name} load balancer`, this.baseTags, [{ port: this.env.certificateArn ? 443 : 80, cidr: "0.0.0.0/0" }]);
    const current = (await findSecurityGroup(this.clients, vpc, sgName))?.tags["kiln:lock"];
    if (current) {
      const [holder = "", until] = current.split(" ");
      const [who, pid] = holder.split("#");
      // A holder on this machine whose process is gone crashed: its lock is stale.
      const crashedHere = who === owner.replace(/\s/g, "_") && pid !== undefined && !processAlive(Number(pid));
      if (Number(until) > Date.now() && !crashedHere) {
        throw new KilnError(`environment ${this.env.name} is locked by ${who} until ${new Date(Number(until)).toISOString()}`, { hint: "wait for that promote to finish (or remove the kiln:lock tag of the load balancer security group if it crashed)" });
      }
    }
    const value = `${owner.replace(/\s/g, "_")}#${process.pid}#${randomBytes(4).toString("hex")} ${Date.now() + 60 * 60 * 1000}`;
    await aws("CreateTags", sg, () => this.clients.ec2.send(new CreateTagsCommand({ Resources: [sg], Tags: [{ Key: "kiln:lock", Value: value }] })));
    const readBack = (await findSecurityGroup(this.clients, vpc, sgName))?.tags["kiln:lock"];
    if (readBack !== value) throw new KilnError(`environment ${this.env.name} was locked by another promote at the same moment (${readBack})`);
    return async () => {
      // After destroy the group is gone, and the lock with it.
      await this.clients.ec2.send(new DeleteTagsCommand({ Resources: [sg], Tags: [{ Key: "kiln:lock" }] })).catch(() => undefined);
    };
  }

  async ensureInfrastructure(): Promise<void> {
    const { vpc, subnets } = await this.net();
    const name = loadBalancerName(this.env.app, this.env.name);
    const lbSg = await ensureSecurityGroup(this.clients, vpc, securityGroupName(this.env.app, this.env.name, "lb"), `kiln ${this.env.app} ${this.env.name} load balancer`, this.baseTags, [{ port: this.env.certificateArn ? 443 : 80, cidr: "0.0.0.0/0" }]);
    let lb = await findLoadBalancer(this.clients, name);
    if (!lb) {
      await createLoadBalancer(this.clients, name, subnets, lbSg, this.baseTags);
      lb = await findLoadBalancer(this.clients, name);
    }
    if (lb && !lb.listenerArn) await createListener(this.clients, lb.arn, this.env.certificateArn);
  }

  private async instanceSecurityGroup(port: number): Promise<string> {
    const { vpc } = await this.net();
    const lbSg = (await findSecurityGroup(this.clients, vpc, securityGroupName(this.env.app, this.env.name, "lb")))!.id;
    return ensureSecurityGroup(this.clients, vpc, securityGroupName(this.env.app, this.env.name, "instances"), `kiln ${this.env.app} ${this.env.name} instances`, this.baseTags, [{ port, fromGroup: lbSg }]);
  }

  async launch(release: string, image: ImageRef, instances: number): Promise<void> {
    const existing = (await this.releaseGroups()).find((g) => g.name === release);
    if (existing) {
      if (existing.desired !== instances) await resizeGroup(this.clients, release, instances);
      return;
    }
    const stored = await new ImageStore(this.home).resolve(image.digest);
    const port = stored.manifest.port;
    if (port === undefined) throw new InputError(`${image.ref} has no port`, { hint: "set port: in kiln.yml; a load-balanced environment needs the app's port" });
    const ami = (await findKilnAmis(this.clients, { "kiln:digest": image.digest }))[0]?.imageId ?? (await pushImage({ ref: image.digest, clients: this.clients, home: this.home })).ami;
    const { vpc, subnets } = await this.net();
    const tags = { ...this.baseTags, "kiln:release": release, "kiln:digest": image.digest, "kiln:ref": image.ref };
    // One launch template per release (deleted with it): versions of a shared template would do
    // too, but moto corrupts UserData on CreateLaunchTemplateVersion, and per-release templates
    // make "delete the release" remove everything the release created.
    const instanceProfile = await this.instanceRole(stored.manifest.env);
    const template = await putLaunchTemplateVersion(this.clients, launchTemplateName(release), {
      ami, instanceType: this.env.instanceType, securityGroup: await this.instanceSecurityGroup(port), ...(instanceProfile ? { instanceProfile } : {}),
      userData: renderUserData({ KILN_ENV: this.env.name, ...this.env.env }), description: `${release} ${image.digest}`.slice(0, 255),
    }, tags);
    const targetGroup = await ensureTargetGroup(this.clients, {
      name: targetGroupName(release), vpc, port, healthPath: this.env.health.path, intervalSeconds: this.env.health.intervalSeconds,
      healthyThreshold: this.env.health.healthyThreshold, deregistrationDelaySeconds: this.env.deregistrationDelaySeconds, tags,
    });
    await createGroup(this.clients, { name: release, launchTemplate: template, subnets, size: instances, targetGroup, tags });
  }

  /** A role only when baked or environment values reference secrets; with exactly those permissions. */
  private async instanceRole(bakedEnv: Readonly<Record<string, string>>): Promise<string | undefined> {
    const refs = [...Object.values(bakedEnv), ...Object.values(this.env.env)].filter((v) => /^(ssm|kms):/.test(v));
    const policy = secretsPolicy(refs, this.clients.region);
    if (!policy) return undefined;
    return ensureInstanceRole(this.clients.iam, instanceRoleName(this.env.app, this.env.name), policy, this.baseTags);
  }

  async waitHealthy(release: string, timeoutSeconds: number): Promise<HealthResult> {
    const deadline = Date.now() + timeoutSeconds * 1000;
    try {
      await waitUntilGroupInService({ client: this.clients.autoscaling, maxWaitTime: timeoutSeconds, minDelay: 2, maxDelay: 15 }, { AutoScalingGroupNames: [release] });
    } catch {
      return { healthy: false, detail: `the Auto Scaling group ${release} did not reach InService in ${timeoutSeconds}s` };
    }
    let detail = "";
    // Target health has no waiter that accepts an injected source; poll the gate until it passes.
    while (Date.now() < deadline) {
      const group = (await this.releaseGroups()).find((g) => g.name === release);
      const tg = group?.targetGroups[0];
      if (!group || !tg) return { healthy: false, detail: `release ${release} disappeared` };
      const health = await this.health(tg, release);
      const healthy = group.instances.filter((i) => health.some((h) => h.id === i.id && h.state === "healthy"));
      const failing = health.find((h) => h.state === "unhealthy");
      detail = `${healthy.length} of ${group.desired} targets healthy${failing ? ` (${failing.id}: ${failing.reason ?? "unhealthy"})` : ""}`;
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
  }

  /** The ALB stops sending new requests at the switch; in-flight ones get the deregistration delay. */
  async drain(_release: string, delaySeconds: number): Promise<void> {
    await new Promise((r) => setTimeout(r, delaySeconds * 1000));
  }

  async deleteRelease(release: string): Promise<void> {
    if ((await this.releaseGroups()).some((g) => g.name === release)) await deleteGroup(this.clients, release);
    const tg = await findTargetGroup(this.clients, targetGroupName(release));
    if (tg) {
      // Deleting the live release (destroy): the listener must stop pointing at it first.
      const lb = await findLoadBalancer(this.clients, loadBalancerName(this.env.app, this.env.name));
      if (lb?.listenerArn && lb.liveTargetGroup === tg) await answerUnavailable(this.clients, lb.listenerArn);
      await deleteTargetGroup(this.clients, tg);
    }
    await deleteLaunchTemplate(this.clients, launchTemplateName(release));
  }

  async scale(release: string, instances: number): Promise<void> {
    await resizeGroup(this.clients, release, instances);
  }

  async record(entry: HistoryEntry): Promise<void> {
    const lb = await findLoadBalancer(this.clients, loadBalancerName(this.env.app, this.env.name));
    if (!lb) return;
    const tags = await resourceTags(this.clients, lb.arn);
    const keys = Object.keys(tags).filter((k) => k.startsWith("kiln:h:")).sort();
    const next = keys.length ? Number(keys.at(-1)!.slice(7)) + 1 : 1;
    await setTags(this.clients, lb.arn, { [`kiln:h:${String(next).padStart(6, "0")}`]: encodeHistory({ result: entry.result, at: entry.at, digest: entry.image.digest, ref: entry.image.ref, release: entry.release }) });
    // The ALB holds at most 50 tags: keep the newest releases.
    await removeTags(this.clients, lb.arn, keys.slice(0, Math.max(0, keys.length + 1 - HISTORY_LIMIT)));
  }

  async deleteInfrastructure(): Promise<void> {
    const lb = await findLoadBalancer(this.clients, loadBalancerName(this.env.app, this.env.name));
    if (lb) await deleteLoadBalancer(this.clients, lb);
    const { vpc } = await this.net();
    await deleteInstanceRole(this.clients.iam, instanceRoleName(this.env.app, this.env.name));
    for (const role of ["instances", "lb"] as const) {
      const sg = await findSecurityGroup(this.clients, vpc, securityGroupName(this.env.app, this.env.name, role));
      if (sg) await deleteSecurityGroup(this.clients, sg.id);
    }
  }

  async consoleTail(release: string): Promise<string> {
    const group = (await this.releaseGroups()).find((g) => g.name === release);
    const tg = group?.targetGroups[0];
    const health = tg ? await this.health(tg, release) : [];
    const failing = group?.instances.find((i) => !health.some((h) => h.id === i.id && h.state === "healthy")) ?? group?.instances[0];
    if (!failing) return "";
    return (await instanceConsole(this.clients, failing.id)).replace(/\r/g, "").trimEnd().split("\n").slice(-20).join("\n");
  }

  async endpoint(): Promise<string | undefined> {
    const lb = await findLoadBalancer(this.clients, loadBalancerName(this.env.app, this.env.name));
    return lb ? `${this.env.certificateArn ? "https" : "http"}://${lb.dnsName}/` : undefined;
  }
}
