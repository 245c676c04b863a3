/**
 * kiln run: boot an image in a local VM, stream its console, wait for the health check, and
 * shut it down cleanly (ACPI power button, then kill after a grace period) on Ctrl-C/SIGTERM.
 */
import { InputError } from "../errors.js";
import type { KilnHome } from "../home.js";
import { ImageStore } from "../image/store.js";
import { LocalVm } from "../providers/qemu.js";
import { parsePortForward, type Accelerator, type DiskBus, type Firmware, type PortForward } from "../providers/qemu-args.js";
import { superviseRun, type RunEnding } from "./supervise.js";
import { bootEnv } from "./seed.js";

export interface RunOptions {
  readonly ref: string;
  readonly ports: readonly string[];
  readonly env: readonly string[];
  /** --env-file contents (read by the caller); -e values win over them. */
  readonly envFiles?: readonly { readonly name: string; readonly text: string }[];
  readonly firmware: Firmware;
  readonly accelerator?: Accelerator;
  /** The root disk's controller (default virtio): nvme as on EC2 Nitro, ide as in VirtualBox. */
  readonly diskBus?: DiskBus;
  /** Stream the console to stderr (the default for an interactive run). */
  readonly console: boolean;
  /** Return as soon as the app is healthy, leaving the VM running. */
  readonly detach: boolean;
  readonly kilnEnv?: string;
  readonly healthTimeoutSeconds?: number;
}

export interface RunOutcome {
  readonly vm: LocalVm;
  readonly url: string | undefined;
  readonly bootToHealthySeconds: number | undefined;
  /** Resolves when the VM has stopped (after Ctrl-C/SIGTERM or the guest powering off). */
  readonly stopped: Promise<RunEnding>;
}

export function resolveForwards(ports: readonly string[], guestPort: number | undefined): PortForward[] {
  const forwards: PortForward[] = [];
  const problems: string[] = [];
  for (const value of ports) {
    const parsed = parsePortForward(value);
    if ("problem" in parsed) problems.push(parsed.problem);
    else forwards.push(parsed);
  }
  if (problems.length)
    throw new InputError(problems.join("\n"), { hint: "e.g. -p 8080:8080 forwards 127.0.0.1:8080 to the app's port 8080" });
  if (forwards.length === 0 && guestPort !== undefined) forwards.push({ hostAddress: "127.0.0.1", hostPort: guestPort, guestPort });
  return forwards;
}

export async function runImage(options: RunOptions, home: KilnHome): Promise<RunOutcome> {
  const env = bootEnv(options.kilnEnv, options.env, options.envFiles);
  const image = await new ImageStore(home).resolve(options.ref);
  const manifest = image.manifest;
  const forwards = resolveForwards(options.ports, manifest.port);
  const vm = await LocalVm.start({
    image,
    home,
    firmware: options.firmware,
    forwards,
    env,
    ...(options.accelerator ? { accelerator: options.accelerator } : {}),
    ...(options.diskBus ? { diskBus: options.diskBus } : {}),
  });
  process.stderr.write(
    `Booting ${image.ref} (${image.digest.slice(0, 19)}) under ${vm.record.accelerator.toUpperCase()}, ${options.firmware.toUpperCase()}; console: kiln logs ${vm.record.id}\n`,
  );
  const outcome = await superviseRun(vm, image, forwards, {
    console: options.console,
    detach: options.detach,
    ...(options.healthTimeoutSeconds !== undefined ? { healthTimeoutSeconds: options.healthTimeoutSeconds } : {}),
  });
  return { vm, ...outcome };
}
