/**
 * The local deploy target: instances are QEMU VMs of the image, each with its own forwarded
 * port, spread over two zone labels; HAProxy in front health-checks them and moves traffic.
 * Implements the same DeployProvider as AWS, so `kiln promote --env dev` runs the same plan.
 */
import { processAlive } from "../../process-alive.js";
import { readFile, rm } from "node:fs/promises";
import path from "node:path";
import { InputError, KilnError } from "../../errors.js";
import type { DeployProvider, HealthResult, HistoryEntry, ImageRef, LiveState } from "../../deploy/types.js";
import type { KilnHome } from "../../home.js";
import { ImageStore } from "../../image/store.js";
import { checkPortFree, findFreePort } from "../../run/ports.js";
import type { LocalEnvironment } from "../../config/environments.js";
import { LocalVm } from "../qemu.js";
import { listVms, stopVm } from "../vm-registry.js";
import {
  BACKEND,
  haproxyCommand,
  haproxyDo,
  haproxyPaths,
  haproxyPid,
  removeServer,
  renderHaproxyConfig,
  serverStatuses,
  startHaproxy,
} from "./haproxy.js";
import { canaryWeights, judgeErrorRates } from "./canary.js";
import { readState, writeState, type LocalEnvState, type LocalInstance } from "./state.js";
import { consoleTailOf } from "../../console-text.js";
import { retireVmDir } from "../../run/console-archive.js";
import { makePrivateDir } from "../../private-fs.js";
import { acquireLockFile } from "./lock-file.js";
import { listeningPorts } from "./listeners.js";

const SERVING_WEIGHT = 100;

export function localEnvDir(home: KilnHome, app: string, env: string): string {
  return path.join(home.root, "envs", app, env);
}

/** Last resort when a VM cannot be stopped through its record: QEMU leads its own process group. */
function killProcessGroup(pid: number): void {
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, "SIGKILL");
      return;
    } catch {
      // not a group leader, or gone
    }
  }
}

export class LocalProvider implements DeployProvider {
  readonly dir: string;
  private readonly paths;

  constructor(
    private readonly env: LocalEnvironment,
    private readonly home: KilnHome,
  ) {
    this.dir = localEnvDir(home, env.app, env.name);
    this.paths = haproxyPaths(this.dir);
  }

  /** Written into each VM's record: the environment that started it. */
  private get owner(): string {
    return `env:${this.env.app}/${this.env.name}`;
  }

  /**
   * Stops this environment's VMs that the state file does not know (a kiln killed between
   * starting QEMU and recording it): otherwise they would run on, unseen, until reboot.
   */
  private async stopOrphans(match: (vm: { name: string }) => boolean = () => true): Promise<void> {
    const known = new Set((await this.state()).releases.flatMap((r) => r.instances.map((i) => i.vmId)));
    for (const vm of await listVms(this.home)) {
      if (vm.hypervisor === "qemu" && vm.owner === this.owner && !known.has(vm.id) && match(vm))
        await stopVm(this.home, vm.id, 5_000).catch(() => undefined);
    }
  }

  private async state(): Promise<LocalEnvState> {
    await makePrivateDir(this.dir);
    return readState(this.dir);
  }

  private async save(state: LocalEnvState): Promise<void> {
    await writeState(this.dir, state);
  }

  /** Reads the state, forgetting VMs that no longer run (a crash or a reboot of the host). */
  async observe(): Promise<LiveState> {
    const state = await this.state();
    const pid = await haproxyPid(this.paths);
    const running = pid !== undefined;
    const statuses = running ? await serverStatuses(this.paths.socket).catch(() => []) : [];
    const up = new Set(statuses.filter((s) => s.status.startsWith("UP")).map((s) => s.name));
    let changed = false;
    for (const release of state.releases) {
      const before = release.instances.length;
      release.instances = release.instances.filter((i) => processAlive(i.pid));
      changed ||= release.instances.length !== before;
    }
    if (changed) await this.save(state);
    // A HAProxy that lost its runtime servers (restarted after a crash) is not ready either:
    // ensure-infrastructure re-adds them.
    const known = new Set(statuses.map((s) => s.name));
    const complete = state.releases.every((r) => r.instances.every((i) => known.has(i.server)));
    const drift = pid === undefined ? [] : (await this.observeLoadBalancer(pid)).drift;
    return {
      infrastructure: running && complete,
      ...(drift.length ? { drift } : {}),
      releases: state.releases.map((r) => ({
        id: r.id,
        image: r.image,
        desired: r.desired,
        serving: r.serving,
        instances: r.instances.map((i) => ({
          id: i.vmId,
          zone: i.zone,
          healthy: up.has(i.server),
          health: `load balancer: ${statuses.find((s) => s.name === i.server)?.status ?? "not checking it"}`,
        })),
      })),
      history: state.history,
    };
  }

  /** One kiln at a time per environment; a lock left by a dead kiln is taken over (lock-file.ts). */
  async lock(owner: string): Promise<() => Promise<void>> {
    await makePrivateDir(this.dir);
    return acquireLockFile(
      path.join(this.dir, "lock"),
      owner,
      (holder) =>
        new KilnError(
          `environment ${this.env.name} is locked by another kiln (${holder ? `${holder.owner}, pid ${holder.pid}` : "its lock is being written"})`,
          { hint: "wait for it to finish; the lock is released when that process ends" },
        ),
    );
  }

  /** haproxy.cfg as the environment asks for it now. */
  private desiredConfig(): string {
    return renderHaproxyConfig({
      port: this.env.port,
      socket: this.paths.socket,
      pidFile: this.paths.pidFile,
      healthPath: this.env.health.path,
      intervalMs: Math.max(200, this.env.health.intervalSeconds * 1000),
      rise: this.env.health.healthyThreshold,
      ...(process.env.KILN_HAPROXY_LOG ? { logTarget: process.env.KILN_HAPROXY_LOG } : {}),
    });
  }

  /**
   * The running HAProxy against the environment: the ports its process really listens on (from
   * /proc; the config file when that cannot be read), and the settings of the config it was
   * started with (health check). Each difference is one line of drift. There is no TLS locally.
   */
  private async observeLoadBalancer(pid: number): Promise<{ drift: string[]; portMoves: boolean }> {
    const running = await readFile(this.paths.config, "utf8").catch(() => "");
    const listening = (await listeningPorts(pid)).filter((l) => l.address === "127.0.0.1").map((l) => l.port);
    const ports = listening.length ? listening : [...running.matchAll(/^\s*bind 127\.0\.0\.1:(\d+)\s*$/gm)].map((m) => Number(m[1]));
    const drift: string[] = [];
    const portMoves = ports.length > 0 && !ports.includes(this.env.port);
    if (portMoves) drift.push(`HAProxy listens on 127.0.0.1:${[...new Set(ports)].join(", ")}, the environment says ${this.env.port}`);
    // Settings other than the port, line by line: "directive old → new" (log lines follow KILN_HAPROXY_LOG, not kiln.yml).
    const settings = (text: string) =>
      text
        .split("\n")
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith("#") && !l.startsWith("bind ") && !/\blog\b/.test(l));
    const now = settings(running);
    for (const line of settings(this.desiredConfig()).filter((l) => running && !now.includes(l))) {
      const key = line.split(" ").slice(0, 2).join(" ");
      const was = now.find((l) => l.startsWith(`${key} `) || l === key);
      drift.push(`HAProxy runs '${was ?? "(nothing)"}', the environment asks for '${line}'`);
    }
    return { drift, portMoves };
  }

  async ensureInfrastructure(): Promise<void> {
    const pid = await haproxyPid(this.paths);
    const observed = pid === undefined ? undefined : await this.observeLoadBalancer(pid);
    const drifted = observed !== undefined && observed.drift.length > 0;
    if (pid === undefined || drifted) {
      // A HAProxy that keeps its port holds it itself; a new port must be free.
      if (pid === undefined || observed?.portMoves) {
        await checkPortFree("127.0.0.1", this.env.port).catch((error: unknown) => {
          throw new InputError(
            `the ${this.env.name} load balancer cannot listen on 127.0.0.1:${this.env.port}: ${(error as Error).message}`,
            { hint: `set environments.${this.env.name}.port in kiln.yml to a free port` },
          );
        });
      }
      // A drifted HAProxy is replaced: the new one takes over (-sf), the old one finishes its requests and exits.
      await startHaproxy(this.paths, this.desiredConfig(), drifted ? pid : undefined);
    }
    // After a HAProxy restart the runtime servers are gone: re-add every known instance. Serving
    // ones were healthy a moment ago: they start UP, so the replaced HAProxy's traffic carries on.
    const known = new Set((await serverStatuses(this.paths.socket)).map((s) => s.name));
    const state = await this.state();
    for (const release of state.releases) {
      for (const instance of release.instances)
        if (!known.has(instance.server)) await this.addServer(instance, release.serving ? SERVING_WEIGHT : 0, release.serving);
    }
  }

  private async addServer(instance: LocalInstance, weight: number, serving = false): Promise<void> {
    // A server of that name left behind (an interrupted delete) would shadow the new instance.
    if ((await serverStatuses(this.paths.socket)).some((s) => s.name === instance.server))
      await removeServer(this.paths.socket, instance.server);
    await haproxyDo(this.paths.socket, `add server ${BACKEND}/${instance.server} 127.0.0.1:${instance.hostPort} check weight ${weight}`);
    await haproxyDo(this.paths.socket, `enable health ${BACKEND}/${instance.server}`);
    await haproxyDo(this.paths.socket, `set server ${BACKEND}/${instance.server} state ready`);
    // HAProxy assumes a ready server is UP until checks fail; a booting VM must start DOWN and
    // earn UP through `rise` passing health checks (weight 0 meanwhile: no traffic either way).
    if (!serving) await haproxyDo(this.paths.socket, `set server ${BACKEND}/${instance.server} health down`);
  }

  async launch(release: string, image: ImageRef, instances: number, zones: readonly string[]): Promise<void> {
    const stored = await new ImageStore(this.home).resolve(image.digest);
    const guestPort = stored.manifest.port;
    if (guestPort === undefined)
      throw new InputError(`${image.ref} has no port`, { hint: "set port: in kiln.yml; a load-balanced environment needs the app's port" });
    const state = await this.state();
    let entry = state.releases.find((r) => r.id === release);
    if (!entry) {
      entry = { id: release, image, desired: instances, instances: [], serving: false };
      state.releases.push(entry);
    }
    entry.desired = instances;
    const target = entry;
    const missing = Array.from({ length: instances }, (_, i) => i).filter(
      (i) => !target.instances.some((x) => x.server === `${release}-${i}`),
    );
    const names = new Set(missing.map((i) => `${release}-${i}`));
    await this.stopOrphans((vm) => names.has(vm.name));
    // One at a time: under TCG, guests booting in parallel starve the instances that serve.
    for (const i of missing) {
      const hostPort = await findFreePort();
      const vm = await LocalVm.start({
        image: stored,
        home: this.home,
        firmware: "bios",
        name: `${release}-${i}`,
        owner: this.owner,
        forwards: [{ hostAddress: "127.0.0.1", hostPort, guestPort }],
        env: { KILN_ENV: this.env.name, ...this.env.env },
      });
      vm.detach();
      const instance: LocalInstance = {
        vmId: vm.record.id,
        pid: vm.record.pid,
        zone: zones[i % zones.length] ?? "zone-a",
        hostPort,
        server: `${release}-${i}`,
      };
      target.instances.push(instance);
      // Record the VM before anything else can fail, so a crash here is cleaned up next time.
      await this.save(state);
      await this.addServer(instance, 0);
    }
  }

  async waitHealthy(release: string, timeoutSeconds: number): Promise<HealthResult> {
    const deadline = Date.now() + timeoutSeconds * 1000;
    let detail = "";
    while (Date.now() < deadline) {
      const entry = (await this.state()).releases.find((r) => r.id === release);
      if (!entry || entry.instances.length === 0) return { healthy: false, detail: `${release} has no instances` };
      const dead = entry.instances.filter((i) => !processAlive(i.pid));
      if (dead.length > 0) return { healthy: false, detail: `instance ${dead[0]!.server} stopped before becoming healthy` };
      const statuses = await serverStatuses(this.paths.socket);
      const mine = entry.instances.map((i) => statuses.find((s) => s.name === i.server));
      const healthy = mine.filter((s) => s?.status.startsWith("UP")).length;
      detail = `${healthy} of ${entry.instances.length} instances healthy`;
      if (healthy === entry.instances.length) return { healthy: true, detail };
      await new Promise((r) => setTimeout(r, 250));
    }
    return { healthy: false, detail: `timed out after ${timeoutSeconds}s: ${detail}` };
  }

  async switchTraffic(to: string, from: readonly string[]): Promise<void> {
    const state = await this.state();
    const green = state.releases.find((r) => r.id === to);
    if (!green) throw new KilnError(`release ${to} does not exist`);
    await this.setWeight(green.instances, SERVING_WEIGHT);
    for (const release of state.releases.filter((r) => from.includes(r.id))) {
      for (const i of release.instances) await haproxyCommand(this.paths.socket, `set server ${BACKEND}/${i.server} state drain`);
      release.serving = false;
    }
    green.serving = true;
    await this.save(state);
  }

  /**
   * HAProxy spreads requests by server weight: the new release's servers together get
   * `percent` of the total weight, the current ones the rest (weights are per server, 1–256).
   */
  async splitTraffic(to: string, from: readonly string[], percent: number): Promise<void> {
    const state = await this.state();
    const green = state.releases.find((r) => r.id === to);
    const blue = state.releases.filter((r) => from.includes(r.id)).flatMap((r) => r.instances);
    if (!green || green.instances.length === 0 || blue.length === 0)
      throw new KilnError(`cannot split traffic between ${to} and ${from.join(", ")}: a release has no instances`);
    const weights = canaryWeights(percent, green.instances.length, blue.length);
    await this.setWeight(blue, weights.current);
    await this.setWeight(green.instances, weights.canary);
  }

  /** HAProxy sends each server its weight's share of new requests (0: none). */
  private async setWeight(instances: readonly LocalInstance[], weight: number): Promise<void> {
    for (const i of instances) await haproxyDo(this.paths.socket, `set server ${BACKEND}/${i.server} weight ${weight}`);
  }

  /**
   * The canary fails when one of its instances is down, or when its share of error answers
   * (5xx and broken responses, as HAProxy counted them) is over the current release's by more
   * than one percentage point.
   */
  async canaryCheck(release: string): Promise<HealthResult> {
    const state = await this.state();
    const entry = state.releases.find((r) => r.id === release);
    if (!entry) return { healthy: false, detail: `${release} is gone` };
    const statuses = await serverStatuses(this.paths.socket);
    const of = (names: string[]) => statuses.filter((s) => names.includes(s.name));
    const mine = of(entry.instances.map((i) => i.server));
    const down = entry.instances.filter((i) => !mine.some((s) => s.name === i.server && s.status.startsWith("UP")));
    if (down.length > 0) return { healthy: false, detail: `instance ${down[0]!.server} is down` };
    const current = of(state.releases.filter((r) => r.serving).flatMap((r) => r.instances.map((i) => i.server)));
    const verdict = judgeErrorRates(mine, current);
    return { healthy: verdict.ok, detail: verdict.detail };
  }

  async drain(release: string, delaySeconds: number): Promise<void> {
    const entry = (await this.state()).releases.find((r) => r.id === release);
    if (!entry) return;
    for (const i of entry.instances) await haproxyCommand(this.paths.socket, `set server ${BACKEND}/${i.server} state drain`);
    // Like an ALB's deregistration delay: done as soon as no request is in flight (a drained
    // server gets no new ones), at most the delay. An unreadable status counts as busy.
    const deadline = Date.now() + delaySeconds * 1000;
    while (Date.now() < deadline) {
      const statuses = await serverStatuses(this.paths.socket).catch(() => undefined);
      const busy =
        statuses === undefined || statuses.some((s) => entry.instances.some((i) => i.server === s.name) && s.currentSessions > 0);
      if (!busy) break;
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async deleteRelease(release: string): Promise<void> {
    const state = await this.state();
    const entry = state.releases.find((r) => r.id === release);
    if (!entry) return;
    const running = (await haproxyPid(this.paths)) !== undefined;
    await Promise.all(
      entry.instances.map(async (i) => {
        if (running) {
          await removeServer(this.paths.socket, i.server);
        }
        if (processAlive(i.pid)) await stopVm(this.home, i.vmId, 20_000).catch(() => killProcessGroup(i.pid));
        await retireVmDir(this.home, path.join(this.home.vms, i.vmId), { how: "stopped-unwatched" }); // keeps its console
      }),
    );
    state.releases = state.releases.filter((r) => r.id !== release);
    await this.save(state);
  }

  async scale(release: string, instances: number): Promise<void> {
    const state = await this.state();
    const entry = state.releases.find((r) => r.id === release);
    if (!entry) throw new KilnError(`release ${release} does not exist`);
    if (instances > entry.instances.length) {
      await this.launch(release, entry.image, instances, ["zone-a", "zone-b"]);
      if (entry.serving) {
        const fresh = (await this.state()).releases.find((r) => r.id === release)!;
        await this.setWeight(fresh.instances, SERVING_WEIGHT);
      }
      return;
    }
    for (const extra of entry.instances.slice(instances)) {
      await haproxyCommand(this.paths.socket, `set server ${BACKEND}/${extra.server} state drain`);
    }
    await new Promise((r) => setTimeout(r, this.env.deregistrationDelaySeconds * 1000));
    for (const extra of entry.instances.slice(instances)) {
      await removeServer(this.paths.socket, extra.server);
      await stopVm(this.home, extra.vmId, 20_000).catch(() => undefined);
    }
    entry.instances = entry.instances.slice(0, instances);
    entry.desired = instances;
    await this.save(state);
  }

  async record(entry: HistoryEntry): Promise<void> {
    const state = await this.state();
    state.history.push(entry);
    await this.save(state);
  }

  async deleteInfrastructure(): Promise<void> {
    await this.stopOrphans();
    const pid = await haproxyPid(this.paths);
    if (pid) {
      process.kill(pid, "SIGTERM");
      for (let i = 0; i < 50 && processAlive(pid); i++) await new Promise((r) => setTimeout(r, 100));
      if (processAlive(pid)) process.kill(pid, "SIGKILL");
    }
    for (const f of [this.paths.config, this.paths.socket, this.paths.pidFile]) await rm(f, { force: true });
  }

  async consoleTail(release: string): Promise<string> {
    const entry = (await this.state()).releases.find((r) => r.id === release);
    for (const i of entry?.instances ?? []) {
      const text = await readFile(path.join(this.home.vms, i.vmId, "console.log"), "utf8").catch(() => "");
      if (text) return consoleTailOf(text);
    }
    return "";
  }

  async endpoint(): Promise<string> {
    return `http://127.0.0.1:${this.env.port}/`;
  }
}
