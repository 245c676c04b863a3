/** run: boot an image locally. */
import { open } from "node:fs/promises";
import path from "node:path";
import type { Command } from "commander";
import { NotFoundError } from "../errors.js";
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

  program
    .command("logs")
    .description("show the console of a running local VM (app output and init messages)")
    .argument("<id-or-name>", "from kiln ps")
    .option("-f, --follow", "keep printing new output until the VM stops or Ctrl-C")
    .option("--all", "include kernel and init lines, not only the app's")
    .action(async (id: string, opts: { follow?: boolean; all?: boolean }) => {
      const vm = (await listVms(home())).find((v) => v.id === id || v.name === id);
      if (!vm) throw new NotFoundError(`no running VM named ${id}`, { hint: "kiln ps lists the running VMs" });
      const keep = (line: string) => opts.all || !/^(kiln-init: |\[\s*\d+\.\d+\] )/.test(line);
      await followFile(path.join(vm.dir, "console.log"), Boolean(opts.follow), vm.pid, (line) => {
        if (keep(line)) process.stdout.write(`${line}\n`);
      });
    });
}

/** Prints a file line by line; with follow, keeps reading until the process `pid` is gone. */
async function followFile(file: string, follow: boolean, pid: number, onLine: (line: string) => void): Promise<void> {
  const fh = await open(file, "r");
  let offset = 0;
  let pending = "";
  let interrupted = false;
  const stop = () => (interrupted = true);
  process.once("SIGINT", stop);
  try {
    for (;;) {
      const buf = Buffer.alloc(64 * 1024);
      const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
      if (bytesRead > 0) {
        offset += bytesRead;
        pending += buf.subarray(0, bytesRead).toString("utf8").replace(/\r/g, "");
        const lines = pending.split("\n");
        pending = lines.pop() ?? "";
        lines.forEach(onLine);
        continue;
      }
      if (!follow || interrupted || !alive(pid)) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    if (pending) onLine(pending);
  } finally {
    process.off("SIGINT", stop);
    await fh.close();
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
