/** bake (its modules load when it runs); the store's own commands (images, inspect, rm, prune) are in image-commands.ts. */
import type { Command } from "commander";
import type { KilnHome } from "../home.js";
import type { DiskFormat, FormatFile } from "../image/formats.js";
import { formatBytes, stderrProgress } from "../progress.js";
import { describeMove, registerImageCommands, summary } from "./image-commands.js";

function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function registerBakeCommands(program: Command, home: () => KilnHome): void {
  program
    .command("bake")
    .description("bake an app directory (or a single executable) into a bootable image")
    .argument("[path]", "app directory or executable", ".")
    .option("--cmd <command>", 'start command (native apps), e.g. "./server --port 8080"')
    .option("--port <port>", "port the app listens on")
    .option("--name <name>", "image name (default: package.json name or the directory name)")
    .option("--version <version>", "image version (default: package.json version or 0.1.0)")
    .option("--baker <baker>", "force a baker instead of detecting one")
    .option("--kernel <kernel>", "debian (Debian's cloud kernel, the default) or minimal (a kernel kiln builds: smaller, boots faster)")
    .option(
      "--format <formats>",
      "also write these disk formats, comma-separated (vdi, vmdk, vmdk-stream, vhd, qcow2, ova; see kiln export --help)",
    )
    .option("--frozen", "fail unless kiln.lock pins exactly the packages this bake uses (CI); kiln.lock is not written")
    .option(
      "--no-sandbox",
      "run archive extraction, dependency installs and compiles on the host instead of in a bubblewrap sandbox " +
        "(hosts without user namespaces; also KILN_NO_SANDBOX=1); the app's code and install scripts then reach your files and credentials",
    )
    .option("--json", "print one JSON object with the result")
    .action(
      async (
        target: string,
        opts: {
          cmd?: string;
          port?: string;
          name?: string;
          version?: string;
          baker?: string;
          kernel?: string;
          format?: string;
          json?: boolean;
          frozen?: boolean;
          sandbox: boolean;
        },
      ) => {
        const { json, format, frozen, sandbox, ...overrides } = opts;
        const [{ bake }, { requireTools }, { ensureFormat, parseFormats }] = await Promise.all([
          import("../bake/bake.js"),
          import("../exec.js"),
          import("../image/formats.js"),
        ]);
        // Formats are checked before any bake work starts.
        const formats: DiskFormat[] = format === undefined ? [] : parseFormats(format);
        if (formats.some((f) => f !== "raw")) await requireTools(["qemu-img"]);
        const progress = stderrProgress();
        const result = await bake(target, overrides, home(), progress, { frozen: Boolean(frozen), noSandbox: !sandbox });
        const converted: FormatFile[] = [];
        for (const f of formats) {
          converted.push(
            await progress.step(
              `Format ${f}`,
              () => ensureFormat(result.image, f),
              (c) => `${formatBytes(c.bytes)}${c.cached ? " (cached)" : ""}`,
            ),
          );
        }
        const m = result.image.manifest;
        const moved = describeMove(result.image);
        if (moved) process.stderr.write(`${moved}\n`);
        if (json) {
          printJson({
            ...summary(result.image),
            seconds: Number(result.seconds.toFixed(3)),
            layers: m.layers,
            sizes: m.sizes,
            lockChanged: result.lockChanged,
            ...(result.image.movedFrom ? { movedFrom: result.image.movedFrom } : {}),
            ...(formats.length
              ? {
                  formats: Object.fromEntries(
                    converted.map((c) => [
                      c.format,
                      { path: c.path, bytes: c.bytes, cached: c.cached, seconds: Number(c.seconds.toFixed(3)) },
                    ]),
                  ),
                }
              : {}),
          });
        } else {
          process.stdout.write(
            `${result.image.ref}  ${result.image.digest}  (${formatBytes(m.sizes.rawDisk)} raw, ${formatBytes(m.sizes.allocated)} allocated, ${result.seconds.toFixed(2)}s)\n`,
          );
          for (const c of converted) process.stdout.write(`  ${c.format.padEnd(12)} ${c.path}  (${formatBytes(c.bytes)})\n`);
        }
      },
    );

  registerImageCommands(program, home);
}
