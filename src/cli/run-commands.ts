/** run: boot an image locally. */
import type { Command } from "commander";
import type { KilnHome } from "../home.js";
import { runImage } from "../run/run.js";
import { listVms, stopVm } from "../providers/vm-registry.js";

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function registerRunCommands(program: Command, home: () => KilnHome): void {
  program
    .command("run")
    .description("boot an image in a local QEMU VM, forward ports, stream the console; Ctrl-C shuts it down")
    .argument("<ref>", "name:version")
    .option("-p, --publish <ports>", "forward HOST:GUEST (repeatable; default: the app's port)", collect, [])
    .option("-e, --env <NAME=value>", "boot-time environment variable (repeatable), via the seed drive", collect, [])
    .option("--kiln-env <env>", "value of KILN_ENV inside the VM", "dev")
    .option("--uefi", "boot with UEFI firmware (OVMF) instead of legacy BIOS")
    .option("--tcg", "force software emulation even where KVM works")
    .option("--quiet", "do not stream the console")
    .option("--detach", "return once the app is healthy and leave the VM running")
    .option("--health-timeout <seconds>", "override the image's health check timeout")
    .option("--json", "print one JSON object once healthy")
    .action(async (ref: string, opts: { publish: string[]; env: string[]; kilnEnv: string; uefi?: boolean; tcg?: boolean; quiet?: boolean; detach?: boolean; healthTimeout?: string; json?: boolean }) => {
      const outcome = await runImage({
        ref, ports: opts.publish, env: opts.env, firmware: opts.uefi ? "uefi" : "bios", console: !opts.quiet && !opts.json,
        detach: Boolean(opts.detach), kilnEnv: opts.kilnEnv, ...(opts.tcg ? { accelerator: "tcg" as const } : {}),
        ...(opts.healthTimeout ? { healthTimeoutSeconds: Number(opts.healthTimeout) } : {}),
      }, home());
      if (opts.json) {
        process.stdout.write(`${JSON.stringify({ id: outcome.vm.record.id, pid: outcome.vm.record.pid, url: outcome.url, bootToHealthySeconds: outcome.bootToHealthySeconds, accelerator: outcome.vm.record.accelerator, firmware: outcome.vm.record.firmware, console: outcome.vm.consoleFile })}\n`);
      }
      if (opts.detach) return;
      const how = await outcome.stopped;
      process.stderr.write(`kiln: VM stopped (${how})\n`);
    });

  program
    .command("ps")
    .description("list running local VMs")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }) => {
      const vms = await listVms(home());
      if (opts.json) return void process.stdout.write(`${JSON.stringify(vms.map(({ dir: _dir, ...vm }) => vm), null, 2)}\n`);
      process.stdout.write(`${"ID".padEnd(10)} ${"NAME".padEnd(28)} ${"IMAGE".padEnd(28)} ${"PORTS".padEnd(24)} STARTED\n`);
      for (const vm of vms) {
        const ports = vm.forwards.map((f) => `${f.hostPort}->${f.guestPort}`).join(",");
        process.stdout.write(`${vm.id.padEnd(10)} ${vm.name.padEnd(28)} ${vm.image.padEnd(28)} ${ports.padEnd(24)} ${vm.startedAt}\n`);
      }
    });

  program
    .command("stop")
    .description("stop a running local VM (ACPI power button, then kill after a timeout)")
    .argument("<id-or-name>", "from kiln ps")
    .option("--timeout <seconds>", "grace period before killing", "30")
    .action(async (id: string, opts: { timeout: string }) => {
      const result = await stopVm(home(), id, Number(opts.timeout) * 1000);
      process.stdout.write(`stopped ${result.id} (${result.how})\n`);
    });
}
