/** run, ps, stop, logs: boot an image locally (QEMU or VirtualBox) and manage the running VMs; their modules load when one runs. */
import path from "node:path";
import type { Command } from "commander";
import { InputError, NotFoundError } from "../errors.js";
import type { KilnHome } from "../home.js";
import type { Accelerator, DiskBus, Firmware } from "../providers/qemu-args.js";
import type { RunEnding, SupervisedVm } from "../run/supervise.js";
import type { Spec } from "../config/types.js";
import type { AwsEnvironment } from "../config/environments.js";
import { describeStop, stoppedLine } from "../run/run-lines.js";

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

const HYPERVISORS = ["qemu", "virtualbox"] as const;
type Hypervisor = (typeof HYPERVISORS)[number];

interface RunFlags {
  publish: string[];
  env: string[];
  envFile: string[];
  kilnEnv: string;
  uefi?: boolean;
  tcg?: boolean;
  quiet?: boolean;
  detach?: boolean;
  healthTimeout?: string;
  json?: boolean;
  vbox?: boolean;
  hypervisor?: string;
  format?: string;
  name?: string;
  disk?: string;
}

/** Checks the flag combination before anything is booted; every problem at once. */
async function resolveRunTarget(opts: RunFlags): Promise<{ hypervisor: Hypervisor; format: string | undefined; diskBus?: DiskBus }> {
  const [{ FORMATS, parseFormats }, { DISK_BUSES }] = await Promise.all([
    import("../image/formats.js"),
    import("../providers/qemu-args.js"),
  ]);
  const problems: string[] = [];
  const hypervisor = (opts.vbox ? "virtualbox" : (opts.hypervisor ?? "qemu").toLowerCase()) as Hypervisor;
  if (!HYPERVISORS.includes(hypervisor)) problems.push(`--hypervisor ${opts.hypervisor}: expected ${HYPERVISORS.join(" or ")}`);
  if (opts.vbox && opts.hypervisor && opts.hypervisor.toLowerCase() !== "virtualbox")
    problems.push(`--vbox contradicts --hypervisor ${opts.hypervisor}`);
  let format: string | undefined;
  if (opts.format !== undefined) {
    const formats = parseFormats(opts.format);
    format = formats[0];
    if (formats.length > 1) problems.push(`--format takes one format, got ${formats.join(", ")}`);
    else if (hypervisor === "virtualbox" && format !== "vdi")
      problems.push(`--format ${format}: VirtualBox runs boot the VDI; drop --format or use --format vdi`);
    else if (FORMATS[format as keyof typeof FORMATS].qemuFormat === undefined)
      problems.push(`--format ${format}: an archive, not a disk QEMU can boot; use vdi, vmdk, vmdk-stream, vhd, qcow2 or raw`);
  }
  if (hypervisor === "virtualbox" && opts.tcg) problems.push("--tcg applies to QEMU only");
  if (hypervisor === "qemu" && opts.name && opts.format === undefined) problems.push("--name applies to --vbox and --format runs");
  const diskBus = opts.disk as DiskBus | undefined;
  if (diskBus !== undefined && !DISK_BUSES.includes(diskBus)) problems.push(`--disk ${opts.disk}: expected ${DISK_BUSES.join(", ")}`);
  else if (diskBus !== undefined && (hypervisor !== "qemu" || opts.format !== undefined))
    problems.push("--disk applies to QEMU runs of the raw disk (VirtualBox VMs use IDE)");
  if (problems.length) throw new InputError(problems.join("\n"), { hint: "kiln run --help lists the options" });
  return { hypervisor, format, ...(diskBus ? { diskBus } : {}) };
}

export function registerRunCommands(program: Command, home: () => KilnHome): void {
  program
    .command("run")
    .description("boot an image in a local VM (QEMU, or VirtualBox with --vbox), forward ports, stream the console; Ctrl-C shuts it down")
    .argument("<ref>", "name:version")
    .option("-p, --publish <ports>", "forward HOST:GUEST (repeatable; default: the app's port)", collect, [])
    .option(
      "-e, --env <NAME=value>",
      "boot-time environment variable (repeatable), via the seed drive; NAME alone passes the host's value",
      collect,
      [],
    )
    .option("--env-file <file>", "boot-time variables from a file of NAME=value lines (# comments; repeatable; -e wins)", collect, [])
    .option("--kiln-env <env>", "value of KILN_ENV inside the VM", "dev")
    .option("--uefi", "boot with UEFI firmware (OVMF / VirtualBox EFI) instead of legacy BIOS")
    .option("--vbox", "boot in VirtualBox (same as --hypervisor virtualbox)")
    .option("--hypervisor <name>", "qemu (default) or virtualbox")
    .option("--format <format>", "boot the image converted to this disk format (QEMU: vdi, vmdk, vmdk-stream, vhd, qcow2)")
    .option("--name <vm-name>", "VM name (VirtualBox default: kiln-<name>-<version>)")
    .option("--tcg", "force software emulation even where KVM works (QEMU)")
    .option("--disk <bus>", "the root disk's controller: virtio (default), nvme (as on EC2 Nitro) or ide (as in VirtualBox)")
    .option("--quiet", "do not stream the console")
    .option("-d, --detach", "return once the app is healthy and leave the VM running")
    .option("--health-timeout <seconds>", "override the image's health check timeout")
    .option("--json", "print one JSON object once healthy")
    .action(async (ref: string, opts: RunFlags) => {
      const { hypervisor, format, diskBus } = await resolveRunTarget(opts);
      const { bootEnv, readEnvFiles } = await import("../run/seed.js");
      // Checked before anything is looked up or booted: a typo should not cost a boot.
      const envFiles = await readEnvFiles(opts.envFile);
      const env = bootEnv(opts.kilnEnv, opts.env, envFiles);
      const firmware: Firmware = opts.uefi ? "uefi" : "bios";
      const consoleOn = !opts.quiet && !opts.json;
      const healthTimeoutSeconds = opts.healthTimeout ? Number(opts.healthTimeout) : undefined;
      if (hypervisor === "qemu" && format === undefined) {
        const { runImage } = await import("../run/run.js");
        const outcome = await runImage(
          {
            ref,
            ports: opts.publish,
            env: opts.env,
            envFiles,
            firmware,
            console: consoleOn,
            detach: Boolean(opts.detach),
            kilnEnv: opts.kilnEnv,
            ...(opts.tcg ? { accelerator: "tcg" as const } : {}),
            ...(diskBus ? { diskBus } : {}),
            ...(healthTimeoutSeconds !== undefined ? { healthTimeoutSeconds } : {}),
          },
          home(),
        );
        if (opts.json) {
          process.stdout.write(
            `${JSON.stringify({ id: outcome.vm.record.id, pid: outcome.vm.record.pid, url: outcome.url, bootToHealthySeconds: outcome.bootToHealthySeconds, hypervisor, accelerator: outcome.vm.record.accelerator, firmware: outcome.vm.record.firmware, console: outcome.vm.consoleFile })}\n`,
          );
        }
        if (opts.detach) return;
        await reportStopped(outcome.vm, outcome.vm.record.id, await outcome.stopped);
        return;
      }

      const [{ ImageStore }, { resolveForwards }, { schemaProblems }, { superviseRun }] = await Promise.all([
        import("../image/store.js"),
        import("../run/run.js"),
        import("../config/schema.js"),
        import("../run/supervise.js"),
      ]);
      const image = await new ImageStore(home()).resolve(ref);
      const forwards = resolveForwards(opts.publish, image.manifest.port);
      const badName = opts.name === undefined ? [] : schemaProblems("/definitions/vmName", opts.name, "--name");
      if (badName.length > 0) throw new InputError(badName.join("\n"), { hint: "for example --name shop-test" });
      let vm: SupervisedVm;
      let described: Record<string, unknown>;
      if (hypervisor === "virtualbox") {
        const { VirtualBoxVm } = await import("../providers/virtualbox.js");
        const vbox = await VirtualBoxVm.start({ image, home: home(), firmware, forwards, env, ...(opts.name ? { name: opts.name } : {}) });
        process.stderr.write(
          `Booting ${image.ref} (${image.digest.slice(0, 19)}) in VirtualBox as '${vbox.record.name}', ${firmware.toUpperCase()}; console: kiln logs ${vbox.record.id}\n`,
        );
        vm = vbox;
        described = { id: vbox.record.id, name: vbox.record.name, uuid: vbox.record.uuid };
      } else {
        const [{ ensureFormat, FORMATS }, { LocalVm }] = await Promise.all([import("../image/formats.js"), import("../providers/qemu.js")]);
        const converted = await ensureFormat(image, format as keyof typeof FORMATS);
        const qemu = await LocalVm.start({
          image,
          home: home(),
          firmware,
          forwards,
          env,
          disk: { path: converted.path, format: FORMATS[converted.format].qemuFormat! },
          ...(opts.tcg ? { accelerator: "tcg" as Accelerator } : {}),
          ...(opts.name ? { name: opts.name } : {}),
        });
        process.stderr.write(
          `Booting ${image.ref} (${image.digest.slice(0, 19)}) from its ${format} disk under ${qemu.record.accelerator.toUpperCase()}, ${firmware.toUpperCase()}; console: kiln logs ${qemu.record.id}\n`,
        );
        vm = qemu;
        described = { id: qemu.record.id, pid: qemu.record.pid, accelerator: qemu.record.accelerator, format, disk: converted.path };
      }
      const outcome = await superviseRun(vm, image, forwards, {
        console: consoleOn,
        detach: Boolean(opts.detach),
        ...(healthTimeoutSeconds !== undefined ? { healthTimeoutSeconds } : {}),
      });
      if (opts.json) {
        process.stdout.write(
          `${JSON.stringify({ ...described, url: outcome.url, bootToHealthySeconds: outcome.bootToHealthySeconds, hypervisor, firmware, console: vm.consoleFile })}\n`,
        );
      }
      if (opts.detach) return;
      await reportStopped(vm, String(described.id), await outcome.stopped);
    });

  program
    .command("ps")
    .description("list running local VMs (QEMU and VirtualBox)")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }) => {
      const { listVms } = await import("../providers/vm-registry.js");
      const vms = await listVms(home());
      if (opts.json)
        return void process.stdout.write(
          `${JSON.stringify(
            vms.map(({ dir: _dir, ...vm }) => vm),
            null,
            2,
          )}\n`,
        );
      process.stdout.write(
        `${"ID".padEnd(10)} ${"NAME".padEnd(28)} ${"IMAGE".padEnd(28)} ${"HYPERVISOR".padEnd(11)} ${"PORTS".padEnd(24)} STARTED\n`,
      );
      for (const vm of vms) {
        const ports = vm.forwards.map((f) => `${f.hostPort}->${f.guestPort}`).join(",");
        const hv = vm.hypervisor === "virtualbox" && vm.state !== "running" ? `vbox(${vm.state})` : vm.hypervisor;
        process.stdout.write(
          `${vm.id.padEnd(10)} ${vm.name.padEnd(28)} ${vm.image.padEnd(28)} ${hv.padEnd(11)} ${ports.padEnd(24)} ${vm.startedAt}\n`,
        );
      }
    });

  program
    .command("stop")
    .description("stop a running local VM (ACPI power button, then power off after a timeout)")
    .argument("<id-or-name>", "from kiln ps")
    .option("--timeout <seconds>", "grace period before killing", "30")
    .action(async (id: string, opts: { timeout: string }) => {
      const { stopVm } = await import("../providers/vm-registry.js");
      const result = await stopVm(home(), id, Number(opts.timeout) * 1000);
      const how =
        result.how === "clean"
          ? "clean"
          : result.how === "app-killed"
            ? "the app did not stop within its stopTimeout and was killed; the VM then powered off"
            : `the VM did not power off within ${opts.timeout}s and was killed`;
      process.stdout.write(`stopped ${result.id} (${how})\n`);
      if (result.console) process.stderr.write(`kiln: its console is kept: kiln logs ${result.id}\n`);
    });

  program
    .command("logs")
    .description(
      "show the console of a local VM, running or stopped (app output; --all adds kernel and init lines), the lines of an environment's instances (--env: local consoles merged, AWS from CloudWatch Logs), or an EC2 instance's console (--instance)",
    )
    .argument("[vm]", "VM id (or a unique prefix), VM name, or image (name:version): kiln ps lists running VMs")
    .option("-f, --follow", "keep printing new output until the VM stops or Ctrl-C")
    .option("--all", "include kernel and init lines, not only the app's")
    .option("--env <name>", "an environment: its instances' lines in time order, each prefixed with the instance (and zone on AWS)")
    .option("--config <path>", "with --env: kiln.yml (or its directory) that defines the environment", ".")
    .option("--app <name>", "with --env: app name (default: the name in --config's kiln.yml)")
    .option("--instance <instance-id>", "an EC2 instance's console (GetConsoleOutput; needs ec2:GetConsoleOutput)")
    .option("--region <region>", "with --instance: AWS region (default: AWS_REGION / AWS_DEFAULT_REGION)")
    .option("--since <when>", "with --env: from this long ago (30s, 10m, 2h, 1d) or this ISO time (default: AWS the last hour, local all)")
    .option("--filter <text>", "with --env: only lines containing this text (as typed, case-sensitive)")
    .option("--release <id>", "with --env (AWS): only this release's instances (kiln status --env lists them)")
    .option("--json", "with --env: one JSON object per line {time, instance, zone, release, message}")
    .action(async (id: string | undefined, opts: LogsFlags) => {
      refuseEnvOnlyFlags(opts);
      if (opts.instance !== undefined) return showEc2Console(opts.instance, id, opts);
      if (opts.env !== undefined) return showEnvLogs(home(), id, opts);
      if (id === undefined)
        throw new InputError("kiln logs needs a VM id, name or image (kiln ps lists the running VMs)", {
          hint: "or --env NAME for a local environment, or --instance i-… for an EC2 instance",
        });
      const { findLogTarget, showConsole } = await import("../run/logs.js");
      const target = await findLogTarget(home(), id);
      if (target.state === "stopped") {
        const s = target.stopped;
        process.stderr.write(
          `kiln: VM ${s.id} (${s.name}, ${s.image}) has stopped (${describeStop(s.how)}) at ${s.stoppedAt}${s.failed ? "; the run failed" : ""}. Its kept console:\n`,
        );
      }
      await withInterrupt((signal) =>
        showConsole(home(), target, {
          follow: Boolean(opts.follow),
          all: Boolean(opts.all),
          signal,
          onLine: (line) => process.stdout.write(`${line}\n`),
        }),
      );
    });
}

/** After a foreground run: the VM's directory goes, its console is kept, and the user hears how it ended. */
async function reportStopped(vm: SupervisedVm, id: string, how: RunEnding): Promise<void> {
  const kept = await vm.cleanup({ how });
  process.stderr.write(stoppedLine(how, kept ? id : undefined));
}

interface LogsFlags {
  follow?: boolean;
  all?: boolean;
  env?: string;
  config: string;
  app?: string;
  instance?: string;
  region?: string;
  since?: string;
  filter?: string;
  release?: string;
  json?: boolean;
}

/** --since, --filter, --release and --json read an environment's logs; a single console has no use for them yet. */
function refuseEnvOnlyFlags(opts: LogsFlags): void {
  if (opts.env !== undefined) return;
  const given = (["since", "filter", "release", "json"] as const).filter((f) => opts[f] !== undefined).map((f) => `--${f}`);
  if (given.length)
    throw new InputError(`${given.join(", ")} ${given.length === 1 ? "applies" : "apply"} to kiln logs --env only`, {
      hint: "kiln logs --env NAME reads an environment's instances; drop the flag to read one VM or instance",
    });
}

async function withInterrupt<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.once("SIGINT", onSignal);
  try {
    return await work(controller.signal);
  } finally {
    process.off("SIGINT", onSignal);
  }
}

/** kiln logs --env: an environment's instances in one time-ordered view (local: their consoles; AWS: CloudWatch Logs). */
async function showEnvLogs(home: KilnHome, extra: string | undefined, opts: LogsFlags): Promise<void> {
  if (extra !== undefined) throw new InputError(`kiln logs --env takes no VM (got '${extra}')`, { hint: "drop it, or drop --env" });
  const [{ loadSpec }, { loadBakers }, { loadEnvironment }, { parseSince }] = await Promise.all([
    import("../config/load.js"),
    import("../bake/bakers.js"),
    import("../config/environments.js"),
    import("../logs/since.js"),
  ]);
  // Checked before anything is read: a bad --since fails at once, not after an AWS call.
  const since = opts.since === undefined ? undefined : parseSince(opts.since, Date.now());
  if (opts.filter === "") throw new InputError("--filter needs some text", { hint: "drop --filter to see every line" });
  const dir = /\.ya?ml$/.test(opts.config) ? path.dirname(opts.config) : opts.config;
  let spec: Spec | undefined;
  if (!opts.app) {
    try {
      spec = await loadSpec(dir, {}, await loadBakers());
    } catch (error) {
      throw new InputError(`cannot tell which app's ${opts.env} environment you mean: ${(error as Error).message}`, {
        hint: "pass --app NAME, or --config pointing at the app's directory",
        cause: error,
      });
    }
  }
  const app = opts.app ?? spec!.name;
  const env = await loadEnvironment(opts.config, app, spec?.healthcheck.path ?? "/", opts.env!);
  if (env.target !== "local") return showAwsEnvironmentLogs(home, env, app, since, opts);
  if (opts.release !== undefined)
    throw new InputError(`--release applies to AWS environments; ${env.name} is local`, {
      hint: "a local environment's VMs are named after their release: kiln ps lists them, kiln logs VM reads one",
    });
  const { showEnvConsoles } = await import("../run/logs.js");
  const shown = await withInterrupt((signal) =>
    showEnvConsoles(home, `env:${app}/${env.name}`, {
      follow: Boolean(opts.follow),
      all: Boolean(opts.all),
      signal,
      onLine: (line) => process.stdout.write(`${line}\n`),
      ...(since !== undefined ? { since } : {}),
      ...(opts.filter !== undefined ? { filter: opts.filter } : {}),
      json: Boolean(opts.json),
    }),
  );
  if (shown === 0)
    throw new NotFoundError(`${app}'s ${env.name} environment has no running instance`, {
      hint: `kiln status --env ${env.name} shows its releases; kiln logs VM-ID reads the kept console of a stopped one`,
    });
}

/** The last hour when no --since is given: a group keeps weeks of lines, and reading them all is slow and costly. */
const DEFAULT_AWS_SINCE_MS = 3_600_000;

async function showAwsEnvironmentLogs(
  home: KilnHome,
  env: AwsEnvironment,
  app: string,
  since: number | undefined,
  opts: LogsFlags,
): Promise<void> {
  if (opts.all) throw new InputError("--all applies to consoles; CloudWatch Logs holds the lines the image ships", { hint: "drop --all" });
  const [{ createAwsClients }, { logGroupName }, { showAwsEnvLogs }] = await Promise.all([
    import("../aws/clients.js"),
    import("../providers/aws/names.js"),
    import("../logs/aws-env.js"),
  ]);
  const group = logGroupName(app, env.name);
  const release = opts.release === undefined ? undefined : await releaseInstances(home, env, opts.release);
  // Read defensively: the logs settings arrive with the log group work (issue 17) and may not be in this build's type.
  const cloudwatchOff = (env as { logs?: { cloudwatch?: boolean } }).logs?.cloudwatch === false;
  const missingHint = cloudwatchOff
    ? `${env.name} has logs: { cloudwatch: false } in kiln.yml: its instances do not ship their lines; set it to true and promote, ` +
      `or read one instance's console: kiln logs --instance i-… --region ${env.region}`
    : `kiln promote creates it with the environment's first release; if nothing has been promoted to ${env.name} yet, promote first ` +
      `(kiln status --env ${env.name}); a group deleted by hand comes back with the next promote`;
  // Credentials from the standard chain; AWS_ENDPOINT_URL (an emulator) is read by the SDK.
  const clients = createAwsClients({ region: env.region });
  await withInterrupt((signal) =>
    showAwsEnvLogs({
      clients,
      group,
      since: since ?? Date.now() - DEFAULT_AWS_SINCE_MS,
      follow: Boolean(opts.follow),
      ...(opts.filter !== undefined ? { filter: opts.filter } : {}),
      json: Boolean(opts.json),
      ...(release ? { release } : {}),
      missingHint,
      signal,
      onLine: (line) => process.stdout.write(`${line}\n`),
      onWarning: (text) => process.stderr.write(`kiln: ${text}\n`),
    }),
  );
}

/** --release: that release's instances as the environment's live state lists them (what kiln status shows). */
async function releaseInstances(home: KilnHome, env: AwsEnvironment, id: string): Promise<{ id: string; instances: string[] }> {
  const { defaultProviders } = await import("../deploy/promote.js");
  const live = await defaultProviders(env, home).observe();
  const found = live.releases.find((r) => r.id === id);
  if (!found)
    throw new InputError(`${env.name} has no release '${id}'`, {
      hint: live.releases.length
        ? `its releases: ${live.releases.map((r) => r.id).join(", ")} (kiln status --env ${env.name})`
        : `nothing runs in ${env.name} (kiln status --env ${env.name}); drop --release to read every instance's lines`,
    });
  return { id: found.id, instances: found.instances.map((i) => i.id) };
}

/** kiln logs --instance: the console of an EC2 instance, app lines unless --all; -f polls. */
async function showEc2Console(
  instanceId: string,
  extra: string | undefined,
  opts: { follow?: boolean; all?: boolean; region?: string },
): Promise<void> {
  if (extra !== undefined) throw new InputError(`kiln logs --instance takes no VM id (got '${extra}')`);
  if (!/^i-[0-9a-f]{8,17}$/.test(instanceId))
    throw new InputError(`--instance ${instanceId}: not an EC2 instance id (i-0123456789abcdef0)`);
  const [{ resolveRegion }, { showInstanceConsole }] = await Promise.all([import("../aws/clients.js"), import("../run/console.js")]);
  const region = await resolveRegion(opts.region);
  if (!region)
    throw new InputError("no AWS region given", {
      hint: "pass --region eu-west-1, set AWS_REGION, or set region in the active profile of ~/.aws/config (aws configure)",
    });
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.once("SIGINT", onSignal);
  try {
    const { lines, shown } = await showInstanceConsole({
      instanceId,
      region,
      follow: Boolean(opts.follow),
      all: Boolean(opts.all),
      signal: controller.signal,
      onLine: (line) => process.stdout.write(`${line}\n`),
    });
    if (shown === 0) process.stderr.write(`kiln: no app lines in ${instanceId}'s console (${lines} lines in all; --all shows them)\n`);
  } finally {
    process.off("SIGINT", onSignal);
  }
}
