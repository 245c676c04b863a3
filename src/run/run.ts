/**
 * kiln run: boot an image in a local VM, stream its console, wait for the health check, and
 * shut it down cleanly (ACPI power button, then kill after a grace period) on Ctrl-C/SIGTERM.
 */
import { InputError, UnhealthyError } from "../errors.js";
import type { KilnHome } from "../home.js";
import { ImageStore } from "../image/store.js";
import { formatSeconds } from "../progress.js";
import { LocalVm } from "../providers/qemu.js";
import { parsePortForward, type Accelerator, type Firmware, type PortForward } from "../providers/qemu-args.js";
import { waitHealthy } from "./health.js";
import { parseEnvFlags } from "./seed.js";

export interface RunOptions {
  readonly ref: string;
  readonly ports: readonly string[];
  readonly env: readonly string[];
  readonly firmware: Firmware;
  readonly accelerator?: Accelerator;
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
  readonly stopped: Promise<"clean" | "killed" | "already-stopped">;
}

export function resolveForwards(ports: readonly string[], guestPort: number | undefined): PortForward[] {
  const forwards: PortForward[] = [];
  const problems: string[] = [];
  for (const value of ports) {
    const parsed = parsePortForward(value);
    if ("problem" in parsed) problems.push(parsed.problem);
    else forwards.push(parsed);
  }
  if (problems.length) throw new InputError(problems.join("\n"), { hint: "e.g. -p 8080:8080 forwards 127.0.0.1:8080 to the app's port 8080" });
  if (forwards.length === 0 && guestPort !== undefined) forwards.push({ hostAddress: "127.0.0.1", hostPort: guestPort, guestPort });
  return forwards;
}

export async function runImage(options: RunOptions, home: KilnHome): Promise<RunOutcome> {
  const image = await new ImageStore(home).resolve(options.ref);
  const manifest = image.manifest;
  const forwards = resolveForwards(options.ports, manifest.port);
  const env = { ...(options.kilnEnv ? { KILN_ENV: options.kilnEnv } : {}), ...parseEnvFlags(options.env) };
  const vm = await LocalVm.start({ image, home, firmware: options.firmware, forwards, env, ...(options.accelerator ? { accelerator: options.accelerator } : {}) });
  process.stderr.write(`Booting ${image.ref} (${image.digest.slice(0, 19)}) under ${vm.record.accelerator.toUpperCase()}, ${options.firmware.toUpperCase()}; console: ${vm.consoleFile}\n`);
  const follower = options.console ? vm.followConsole((text) => process.stderr.write(text)) : undefined;

  let stopping: Promise<"clean" | "killed" | "already-stopped"> | undefined;
  const stop = (graceMs: number) => (stopping ??= vm.shutdown(graceMs));
  const onSignal = () => {
    if (stopping) {
      process.stderr.write("\nkiln: killing the VM\n");
      void vm.shutdown(0);
      return;
    }
    process.stderr.write("\nkiln: shutting down the VM (ACPI power button; Ctrl-C again to kill)\n");
    void stop((manifest.healthcheck.timeoutSeconds > 0 ? 20 : 20) * 1000);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const stopped = vm.exited.then(async () => {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await follower?.stop();
    return stopping ? await stopping : ("already-stopped" as const);
  });

  const health = forwards.find((f) => f.guestPort === manifest.port) ?? forwards[0];
  if (!health) return { vm, url: undefined, bootToHealthySeconds: undefined, stopped };
  const url = `http://${health.hostAddress}:${health.hostPort}${manifest.healthcheck.path}`;
  const timeoutMs = (options.healthTimeoutSeconds ?? manifest.healthcheck.timeoutSeconds) * 1000;
  const outcome = await waitHealthy(url, timeoutMs, vm.exited, vm.startedAtMs);
  if (!outcome.healthy) {
    await stop(5000);
    await stopped;
    const tail = await vm.consoleTail(25);
    throw new UnhealthyError(`${image.ref} never became healthy: ${outcome.reason}\n--- console (last lines) ---\n${tail}`, {
      hint: `check that the app listens on 0.0.0.0:${manifest.port ?? "PORT"} and answers ${manifest.healthcheck.path}; the full console is in ${vm.consoleFile}`,
    });
  }
  if (options.detach) {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await follower?.stop();
    vm.detach();
  }
  process.stderr.write(`kiln: ${image.ref} is healthy at http://${health.hostAddress}:${health.hostPort}/ after ${formatSeconds(outcome.afterMs)} (boot to healthy)\n`);
  return { vm, url: `http://${health.hostAddress}:${health.hostPort}/`, bootToHealthySeconds: outcome.afterMs / 1000, stopped };
}
