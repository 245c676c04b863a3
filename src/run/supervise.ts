/**
 * The foreground part of `kiln run`, for every hypervisor: stream the console, wait for the
 * health check, shut the VM down cleanly on Ctrl-C/SIGTERM (a second one powers it off).
 */
import { readFile } from "node:fs/promises";
import { UnhealthyError } from "../errors.js";
import type { StoredImage } from "../image/store.js";
import { healthyLine } from "./run-lines.js";
import type { PortForward } from "../providers/qemu-args.js";
import { waitHealthy } from "./health.js";
import { appKilledAtStop, describeStartFailure, diagnoseStart } from "./diagnose.js";
import type { StopHow } from "./console-archive.js";
import { consoleTailOf } from "../console-text.js";

/** How a `kiln run` VM ended ("app-killed": the VM powered off after its init killed the app at stopTimeout). */
export type RunEnding = "clean" | "app-killed" | "killed" | "already-stopped";

async function readTail(file: string | undefined): Promise<string> {
  return file ? consoleTailOf(await readFile(file, "utf8").catch(() => ""), 25) : "";
}

/** What the foreground loop needs from a VM; LocalVm (QEMU) and VirtualBoxVm both have it. */
export interface SupervisedVm {
  readonly consoleFile: string;
  readonly startedAtMs: number;
  readonly exited: Promise<string>;
  followConsole(sink: (text: string) => void): { stop: () => Promise<void> };
  consoleTail(lines?: number): Promise<string>;
  shutdown(graceMs?: number): Promise<"clean" | "killed" | "already-stopped">;
  detach(): void;
  /** Removes the stopped VM's directory, keeping its console; returns the kept console's path. */
  cleanup(ending: { how?: StopHow; failed?: boolean; reason?: string }): Promise<string | undefined>;
}

export async function superviseRun(
  vm: SupervisedVm,
  image: StoredImage,
  forwards: readonly PortForward[],
  options: { console: boolean; detach: boolean; healthTimeoutSeconds?: number },
) {
  const manifest = image.manifest;
  const follower = options.console ? vm.followConsole((text) => process.stderr.write(text)) : undefined;
  let stopping: Promise<RunEnding> | undefined;
  // "clean" when the VM powered off, but its init may have had to kill the app first (stopTimeout).
  const stop = (graceMs: number) =>
    (stopping ??= vm
      .shutdown(graceMs)
      .then(async (how) => (how === "clean" && appKilledAtStop(await vm.consoleTail(200)) ? "app-killed" : how)));
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
    const how = await stop(5000);
    await stopped;
    await follower?.stop();
    const diagnosis = diagnoseStart(await vm.consoleTail(5000), outcome.lastStatus);
    const kept = await vm.cleanup({ how, failed: true, reason: outcome.reason });
    const report = describeStartFailure(diagnosis, {
      port: manifest.port,
      healthPath: manifest.healthcheck.path,
      consoleFile: kept ?? vm.consoleFile,
    });
    // Without the app's own lines (it never ran), the console's last lines are the evidence.
    const tail =
      diagnosis.kind === "boot-failed" || diagnosis.kind === "not-started" ? `\n--- console (last lines) ---\n${await readTail(kept)}` : "";
    throw new UnhealthyError(`${image.ref} never became healthy: ${report.message}\n(health check: ${outcome.reason})${tail}`, {
      hint: report.hint,
    });
  }
  if (options.detach) {
    unhook();
    await follower?.stop();
    vm.detach();
  }
  const appUrl = `http://${health.hostAddress}:${health.hostPort}/`;
  process.stderr.write(healthyLine(image.ref, appUrl, outcome.afterMs));
  return { url: appUrl, bootToHealthySeconds: outcome.afterMs / 1000, stopped };
}
