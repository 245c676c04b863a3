/**
 * The foreground part of `kiln run`, for every hypervisor: stream the console, wait for the
 * health check, shut the VM down cleanly on Ctrl-C/SIGTERM (a second one powers it off).
 */
import { UnhealthyError } from "../errors.js";
import type { StoredImage } from "../image/store.js";
import { formatSeconds } from "../progress.js";
import type { PortForward } from "../providers/qemu-args.js";
import { waitHealthy } from "./health.js";

/** What the foreground loop needs from a VM; LocalVm (QEMU) and VirtualBoxVm both have it. */
export interface SupervisedVm {
  readonly consoleFile: string;
  readonly startedAtMs: number;
  readonly exited: Promise<string>;
  followConsole(sink: (text: string) => void): { stop: () => Promise<void> };
  consoleTail(lines?: number): Promise<string>;
  shutdown(graceMs?: number): Promise<"clean" | "killed" | "already-stopped">;
  detach(): void;
}

export async function superviseRun(
  vm: SupervisedVm,
  image: StoredImage,
  forwards: readonly PortForward[],
  options: { console: boolean; detach: boolean; healthTimeoutSeconds?: number },
) {
  const manifest = image.manifest;
  const follower = options.console ? vm.followConsole((text) => process.stderr.write(text)) : undefined;
  let stopping: Promise<"clean" | "killed" | "already-stopped"> | undefined;
  const stop = (graceMs: number) => (stopping ??= vm.shutdown(graceMs));
  const onSignal = () => {
    if (stopping) {
      process.stderr.write("\nkiln: powering the VM off\n");
      void vm.shutdown(0);
      return;
    }
    process.stderr.write("\nkiln: shutting down the VM (ACPI power button; Ctrl-C again to power off)\n");
    void stop(20_000);
  };
  const unhook = () => {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const stopped = vm.exited.then(async () => {
    unhook();
    await follower?.stop();
    // The guest powered itself off: still let the VM go through shutdown (VirtualBox unregisters it).
    return stopping ? await stopping : await stop(0).then(() => "already-stopped" as const);
  });

  const health = forwards.find((f) => f.guestPort === manifest.port) ?? forwards[0];
  if (!health) return { url: undefined, bootToHealthySeconds: undefined, stopped };
  const url = `http://${health.hostAddress}:${health.hostPort}${manifest.healthcheck.path}`;
  const outcome = await waitHealthy(
    url,
    (options.healthTimeoutSeconds ?? manifest.healthcheck.timeoutSeconds) * 1000,
    vm.exited,
    vm.startedAtMs,
  );
  if (!outcome.healthy) {
    await stop(5000);
    await stopped;
    throw new UnhealthyError(
      `${image.ref} never became healthy: ${outcome.reason}\n--- console (last lines) ---\n${await vm.consoleTail(25)}`,
      {
        hint: `check that the app listens on 0.0.0.0:${manifest.port ?? "PORT"} and answers ${manifest.healthcheck.path}; the full console is in ${vm.consoleFile}`,
      },
    );
  }
  if (options.detach) {
    unhook();
    await follower?.stop();
    vm.detach();
  }
  process.stderr.write(
    `kiln: ${image.ref} is healthy at http://${health.hostAddress}:${health.hostPort}/ after ${formatSeconds(outcome.afterMs)} (boot to healthy)\n`,
  );
  return { url: `http://${health.hostAddress}:${health.hostPort}/`, bootToHealthySeconds: outcome.afterMs / 1000, stopped };
}
