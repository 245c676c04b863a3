/**
 * The AWS single-instance target (kiln.yml `mode: single-instance`): one EC2 instance per
 * release and one Elastic IP per environment. A release goes live when the Elastic IP moves to
 * its instance, after this machine has seen the instance answer its health check. Cheaper than
 * an ALB, but not zero-downtime: connections through the Elastic IP are cut when it moves.
 *
 * All state lives in AWS (tagged instances and launch templates, the Elastic IP that holds the
 * history, the lock's launch template: env-lock.ts), so any machine with the credentials sees the same
 * status and history, and the blue/green planner drives it like the load-balanced target.
 */
import { InputError, KilnError } from "../../errors.js";
import type { AwsClients } from "../../aws/clients.js";
import {
  allowIngress,
  deleteLaunchTemplate,
  deleteSecurityGroup,
  defaultVpc,
  ensureSecurityGroup,
  findLaunchTemplates,
  findSecurityGroup,
  describeRouteTables,
  instanceConsole,
} from "../../aws/ec2-deploy.js";
import { tagResources, untagResources } from "../../aws/ec2.js";
import {
  allocateAddress,
  associateAddress,
  describeInstance,
  disassociateAddress,
  findAddress,
  findInstances,
  releaseAddress,
  runInstance,
  terminateInstances,
  waitInstanceRunning,
  type ReleaseInstance,
} from "../../aws/ec2-instances.js";
import { deleteInstanceRole } from "../../aws/iam.js";
import type { DeployProvider, HealthResult, HistoryEntry, ImageRef, LiveState, ReleaseState } from "../../deploy/types.js";
import type { KilnHome } from "../../home.js";
import type { AwsEnvironment } from "../../config/environments.js";
import { appendHistory, historyFromTags } from "./history.js";
import { gateHealthy, httpProbe, type InstanceHealthSource } from "./instance-health.js";
import { instanceRoleName, launchTemplateName, securityGroupName } from "./names.js";
import { checkNetwork, refuseProblems, type Network } from "./network.js";
import { singleInstanceSubnet } from "./subnet-choice.js";
import { putReleaseTemplate, releaseImage, releaseTags } from "./release-template.js";
import { deleteEnvironmentLogGroup, ensureEnvironmentLogGroup, observeLogGroup } from "./log-group.js";
import { lockEnvironment } from "./env-lock.js";
import { consoleTailOf } from "../../console-text.js";

export interface SingleInstanceOptions {
  /** The health check (tests inject one: instances in the emulator run nothing). */
  readonly health?: InstanceHealthSource;
  /** Time between health checks; the environment's healthcheck interval by default. */
  readonly pollMs?: number;
}

const LIVE_STATES = ["pending", "running"];
/** Everything not yet terminated: what deleting a release must still terminate. */
const ANY_STATE = ["pending", "running", "stopping", "stopped", "shutting-down"];

export class SingleInstanceProvider implements DeployProvider {
  private network: Network | undefined;
  private readonly check: InstanceHealthSource;

  constructor(
    private readonly env: AwsEnvironment,
    private readonly clients: AwsClients,
    private readonly home: KilnHome,
    private readonly options: SingleInstanceOptions = {},
  ) {
    if (env.mode !== "single-instance")
      throw new KilnError(`environment ${env.name} is ${env.mode}: SingleInstanceProvider deploys single-instance environments only`);
    // Short tries: a hung connection must not eat the health gate's whole timeout.
    this.check = options.health ?? httpProbe(Math.max(1000, Math.min(5000, env.health.intervalSeconds * 1000)));
  }

  private get envTags(): Record<string, string> {
    return { "kiln:app": this.env.app, "kiln:env": this.env.name };
  }

  /** Tags that mark this mode's releases (an environment switched from load-balanced keeps its templates apart). */
  private get releaseFilter(): Record<string, string> {
    return { ...this.envTags, "kiln:mode": "single-instance" };
  }

  private get groupName(): string {
    return securityGroupName(this.env.app, this.env.name, "instances");
  }

  /** Subnets, instance type and mode checked before anything is created. */
  async validate(): Promise<void> {
    const { network, found, problems } = await checkNetwork(this.clients, this.env);
    // Of the usable subnets, a public one: the instance is reached at its Elastic IP.
    const choice = found.length ? singleInstanceSubnet(found, await describeRouteTables(this.clients, network.vpc)) : {};
    if (choice.problem) problems.push(choice.problem);
    if (this.env.certificateArn)
      problems.push(
        "https: a single instance has no load balancer to terminate TLS; remove https: or use mode: load-balanced (an ALB with the certificate)",
      );
    refuseProblems(this.env, problems);
    this.network = choice.placement ? { ...network, subnets: [choice.placement.subnet] } : network;
  }

  private async net(): Promise<Network> {
    if (!this.network) await this.validate();
    return this.network!;
  }

  /** The VPC without the deploy checks: status and history must work even for a config that no longer validates. */
  private async vpc(): Promise<string | undefined> {
    return this.network?.vpc ?? this.env.vpc ?? (await defaultVpc(this.clients));
  }

  private async securityGroup(): Promise<string> {
    const { vpc } = await this.net();
    // Created without rules: the app's port is known only at launch (see launch()).
    return ensureSecurityGroup(this.clients, vpc, this.groupName, `kiln ${this.env.app} ${this.env.name} instance`, this.envTags, []);
  }

  private releaseInstances(release: string, states: readonly string[]): Promise<ReleaseInstance[]> {
    return findInstances(this.clients, { ...this.releaseFilter, "kiln:release": release }, states);
  }

  private healthUrl(instance: ReleaseInstance): string | undefined {
    const port = instance.tags["kiln:port"];
    return instance.publicIp && port ? `http://${instance.publicIp}:${port}${this.env.health.path}` : undefined;
  }

  async observe(): Promise<LiveState> {
    const vpc = await this.vpc();
    const [address, instances, templates, group] = await Promise.all([
      findAddress(this.clients, this.envTags),
      findInstances(this.clients, this.releaseFilter, LIVE_STATES),
      findLaunchTemplates(this.clients, this.releaseFilter),
      vpc ? findSecurityGroup(this.clients, vpc, this.groupName) : undefined,
    ]);
    // A release is its instance or, after an interruption, just its launch template.
    const found = new Map<string, { image: ImageRef; instances: ReleaseInstance[] }>();
    for (const tags of [...templates.map((t) => t.tags), ...instances.map((i) => i.tags)]) {
      const id = tags["kiln:release"];
      if (id && !found.has(id)) found.set(id, { image: { ref: tags["kiln:ref"] ?? "", digest: tags["kiln:digest"] ?? "" }, instances: [] });
    }
    for (const i of instances) found.get(i.tags["kiln:release"] ?? "")?.instances.push(i);
    const releases: ReleaseState[] = await Promise.all(
      [...found.entries()]
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(async ([id, r]) => ({
          id,
          image: r.image,
          desired: 1,
          serving: r.instances.some((i) => i.id === address?.instanceId),
          instances: await Promise.all(
            r.instances.map(async (i) => ({ id: i.id, zone: i.zone, healthy: await this.healthyNow(id, i), health: i.state })),
          ),
        })),
    );
    const infrastructure = Boolean(address && group);
    const logs = await observeLogGroup(this.clients, this.env, infrastructure);
    return {
      infrastructure,
      releases,
      history: address ? historyFromTags(address.tags) : [],
      ...(logs.logGroup ? { logGroup: logs.logGroup } : {}),
      ...(logs.drift.length ? { drift: logs.drift } : {}),
    };
  }

  private async healthyNow(release: string, instance: ReleaseInstance): Promise<boolean> {
    const url = this.healthUrl(instance);
    return instance.state === "running" && url !== undefined && (await this.check({ release, instanceId: instance.id, url })).ok;
  }

  /**
   * The environment's lock: a launch template only one promote can create (env-lock.ts).
   * Holding it, lock() (re)creates the instances' security group: observe() sees the
   * infrastructure only while the group exists, so a destroy interrupted after deleting the
   * group runs again (see deleteInfrastructure()).
   */
  async lock(owner: string, holdSeconds?: number): Promise<() => Promise<void>> {
    await this.net();
    const release = await lockEnvironment(this.clients, this.env.app, this.env.name, owner, holdSeconds);
    try {
      await this.securityGroup();
    } catch (error) {
      // The group's error is the one to report; the lock goes (or expires) either way.
      await release().catch(() => undefined);
      throw error;
    }
    return release;
  }

  async ensureInfrastructure(): Promise<void> {
    await this.securityGroup();
    // Tagged at allocation, so an interrupted run finds it instead of allocating a second one.
    if (!(await findAddress(this.clients, this.envTags))) await allocateAddress(this.clients, this.envTags);
    await ensureEnvironmentLogGroup(this.clients, this.env);
  }

  async launch(release: string, image: ImageRef, instances: number): Promise<void> {
    if (instances !== 1)
      throw new InputError(`environment ${this.env.name} is single-instance and runs one instance, not ${instances}`, {
        hint: `set mode: load-balanced in environments.${this.env.name} to run more`,
      });
    // Idempotent: a re-run after an interruption reuses the instance it launched.
    if ((await this.releaseInstances(release, LIVE_STATES)).length) return;
    const launch = await releaseImage(this.clients, this.home, image);
    const group = await this.securityGroup();
    // The app's port comes with the image, so its rule is added here rather than with the group.
    await allowIngress(this.clients, group, { port: launch.port, cidr: "0.0.0.0/0" });
    const tags = { ...releaseTags(this.env, release, image), "kiln:mode": "single-instance", "kiln:port": String(launch.port) };
    const template = await putReleaseTemplate(this.clients, this.env, { release, image, launch, tags });
    const subnet = (await this.net()).subnets[0];
    if (!subnet)
      throw new InputError(`environment ${this.env.name} has no subnet to launch into`, {
        hint: `set environments.${this.env.name}.subnets in kiln.yml`,
      });
    await runInstance(this.clients, { launchTemplate: template, subnet, securityGroup: group, tags });
  }

  async waitHealthy(release: string, timeoutSeconds: number): Promise<HealthResult> {
    const deadline = Date.now() + timeoutSeconds * 1000;
    const launched = (await this.releaseInstances(release, LIVE_STATES))[0];
    if (!launched) return { healthy: false, detail: `release ${release} has no running instance` };
    if (!(await waitInstanceRunning(this.clients, launched.id, timeoutSeconds))) {
      const state = (await describeInstance(this.clients, launched.id))?.state ?? "unknown";
      return { healthy: false, detail: `instance ${launched.id} did not reach running within ${timeoutSeconds}s (it is ${state})` };
    }
    // Described again: the public IP is assigned while the instance starts.
    const instance = (await describeInstance(this.clients, launched.id)) ?? launched;
    const url = this.healthUrl(instance);
    if (!url)
      return {
        healthy: false,
        detail: `instance ${instance.id} has no public IP, so its health cannot be checked from here: its subnet needs a route to an internet gateway`,
      };
    const result = await gateHealthy(() => this.check({ release, instanceId: instance.id, url }), {
      threshold: this.env.health.healthyThreshold,
      intervalMs: this.options.pollMs ?? this.env.health.intervalSeconds * 1000,
      deadline,
    });
    return result.healthy
      ? result
      : { healthy: false, detail: `GET ${url} (${instance.id}) not healthy within ${timeoutSeconds}s: ${result.detail}` };
  }

  async switchTraffic(to: string): Promise<void> {
    const address = await findAddress(this.clients, this.envTags);
    const instance = (await this.releaseInstances(to, ["running"]))[0];
    if (!address || !instance) {
      throw new KilnError(
        `cannot switch ${this.env.name} to ${to}: ${address ? `${to} has no running instance` : "the environment's Elastic IP is missing"}`,
        { hint: "run the same kiln promote again: it creates what is missing" },
      );
    }
    if (address.instanceId !== instance.id) await associateAddress(this.clients, address.allocationId, instance.id);
  }

  /**
   * Unlike an ALB, moving an Elastic IP does not drain: connections made through it are cut at
   * the moment it moves. The delay only lets clients that talk to the old instance's own
   * address (and health checkers still looking at it) finish before it is terminated.
   */
  async drain(_release: string, delaySeconds: number): Promise<void> {
    await new Promise((r) => setTimeout(r, delaySeconds * 1000));
  }

  /**
   * `keepForRollback` is not honoured here: observe() reads a launch template without an
   * instance as a release still to clean up (what an interrupted launch leaves), and a rollback
   * relaunches from the AMI, which stays, so a replaced release takes its template with it.
   */
  async deleteRelease(release: string, _keepForRollback?: boolean): Promise<void> {
    const instances = await this.releaseInstances(release, ANY_STATE);
    const address = await findAddress(this.clients, this.envTags);
    // Deleting the live release (destroy): take the address off first, so it is never left on a
    // terminated instance (AWS detaches it on termination; the emulator does not).
    if (address?.associationId && instances.some((i) => i.id === address.instanceId))
      await disassociateAddress(this.clients, address.associationId);
    await terminateInstances(
      this.clients,
      instances.map((i) => i.id),
    );
    await deleteLaunchTemplate(this.clients, launchTemplateName(release));
  }

  async scale(_release: string, instances: number): Promise<void> {
    if (instances === 1) return;
    throw new InputError(
      `environment ${this.env.name} is single-instance (one instance behind an Elastic IP) and cannot scale to ${instances}`,
      {
        hint: `set mode: load-balanced and instances: ${instances} in environments.${this.env.name}, then kiln destroy and kiln promote`,
      },
    );
  }

  async record(entry: HistoryEntry): Promise<void> {
    const address = await findAddress(this.clients, this.envTags);
    if (!address) return;
    const { set, remove } = appendHistory(address.tags, entry);
    await tagResources(this.clients, [address.allocationId], set);
    await untagResources(this.clients, [address.allocationId], remove);
  }

  /**
   * The security group goes before the Elastic IP: observe() sees infrastructure only while
   * both exist, so a destroy interrupted between the two is repeated by the next run
   * (lock() recreates the group), never left half done.
   */
  async deleteInfrastructure(options: { readonly keepLogs?: boolean } = {}): Promise<void> {
    await deleteInstanceRole(this.clients.iam, instanceRoleName(this.env.app, this.env.name));
    const vpc = await this.vpc();
    const group = vpc ? await findSecurityGroup(this.clients, vpc, this.groupName) : undefined;
    if (group) await deleteSecurityGroup(this.clients, group.id);
    const address = await findAddress(this.clients, this.envTags);
    if (address?.associationId) await disassociateAddress(this.clients, address.associationId);
    if (address) await releaseAddress(this.clients, address.allocationId);
    // Last: observe() still reports the group, so a destroy cut short before here deletes it next time.
    if (!options.keepLogs) await deleteEnvironmentLogGroup(this.clients, this.env);
  }

  async consoleTail(release: string): Promise<string> {
    const instance = (await this.releaseInstances(release, ANY_STATE))[0];
    if (!instance) return "";
    return consoleTailOf(await instanceConsole(this.clients, instance.id));
  }

  /** The Elastic IP and the port of the instance that holds it; none while nothing is live. */
  async endpoint(): Promise<string | undefined> {
    const address = await findAddress(this.clients, this.envTags);
    const holder = address?.instanceId ? await describeInstance(this.clients, address.instanceId) : undefined;
    const port = holder?.tags["kiln:port"];
    return address && port ? `http://${address.publicIp}:${port}/` : undefined;
  }
}
