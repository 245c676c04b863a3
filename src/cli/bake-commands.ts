/** bake, images, inspect, rm. */
import type { Command } from "commander";
import { bake } from "../bake/bake.js";
import type { KilnHome } from "../home.js";
import { requireTools } from "../exec.js";
import { ensureFormat, parseFormats, type DiskFormat, type FormatFile } from "../image/formats.js";
import { ImageStore, type StoredImage } from "../image/store.js";
import { printAmis, removeAmiCommand } from "./aws-commands.js";
import { formatBytes, stderrProgress } from "../progress.js";

function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

function summary(image: StoredImage) {
  const m = image.manifest;
  return {
    ref: image.ref,
    name: m.name,
    version: m.version,
    digest: image.digest,
    baker: m.baker,
    bakedAt: m.bakedAt,
    rawBytes: m.sizes.rawDisk,
    allocatedBytes: m.sizes.allocated,
    disk: image.disk,
  };
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
          format?: string;
          json?: boolean;
          frozen?: boolean;
          sandbox: boolean;
        },
      ) => {
        const { json, format, frozen, sandbox, ...overrides } = opts;
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
        if (json) {
          printJson({
            ...summary(result.image),
            seconds: Number(result.seconds.toFixed(3)),
            layers: m.layers,
            sizes: m.sizes,
            lockChanged: result.lockChanged,
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

  program
    .command("images")
    .description("list the images in the local store (or, with --region, the AMIs kiln registered there)")
    .option("--region <region>", "list AMIs in this AWS region instead (same as kiln amis)")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean; region?: string }) => {
      if (opts.region) return printAmis(opts.region, undefined, opts.json);
      const images = await new ImageStore(home()).list();
      if (opts.json) return printJson(images.map(summary));
      if (images.length === 0) return void process.stdout.write("no images yet: kiln bake ./myapp\n");
      process.stdout.write(`${"IMAGE".padEnd(32)} ${"DIGEST".padEnd(20)} ${"SIZE".padStart(10)}  BAKED\n`);
      for (const i of images)
        process.stdout.write(
          `${i.ref.padEnd(32)} ${i.digest.slice(0, 19).padEnd(20)} ${formatBytes(i.manifest.sizes.allocated).padStart(10)}  ${i.manifest.bakedAt}\n`,
        );
    });

  program
    .command("inspect")
    .description("show an image's layers, files and sizes, and packages with versions")
    .argument("<ref>", "name:version or sha256:…")
    .option("--json", "print the manifest as JSON")
    .action(async (ref: string, opts: { json?: boolean }) => {
      const image = await new ImageStore(home()).resolve(ref);
      const m = image.manifest;
      if (opts.json) return printJson({ ...m, disk: image.disk });
      const out: string[] = [
        `${image.ref}  ${image.digest}`,
        `baker ${m.baker}; cmd ${JSON.stringify(m.cmd)}; port ${m.port ?? "-"}; health ${m.healthcheck.path}`,
        `kernel ${m.kernel.package} ${m.kernel.version} (${m.kernel.release})`,
        "",
        "Partitions:",
        ...m.layout.partitions.map(
          (p) =>
            `  ${String(p.number)} ${p.name.padEnd(7)} offset ${formatBytes(p.offsetBytes).padStart(10)}  slot ${formatBytes(p.sizeBytes).padStart(10)}  content ${formatBytes(p.contentBytes).padStart(10)}`,
        ),
        "",
        "Contents (uncompressed):",
        ...(["kernel", "init", "libs", "runtime", "app"] as const).map((k) => `  ${k.padEnd(8)} ${formatBytes(m.sizes[k]).padStart(10)}`),
        `  raw disk ${formatBytes(m.sizes.rawDisk).padStart(10)}, allocated ${formatBytes(m.sizes.allocated)}`,
        "",
        "Packages:",
        ...m.packages.map((p) => `  ${p.name.padEnd(34)} ${p.version.padEnd(22)} ${p.source.padEnd(32)} ${p.role}`),
        "",
        "System files:",
        ...m.files.map((f) => `  ${f.path.padEnd(48)} ${formatBytes(f.bytes).padStart(10)}  ${f.kind}`),
      ];
      process.stdout.write(`${out.join("\n")}\n`);
    });

  program
    .command("rm")
    .description("remove an image from the local store (or, with --region, its AMI and snapshot)")
    .argument("<ref>", "name:version")
    .option("--region <region>", "deregister the AMI in this AWS region instead (same as kiln rmi)")
    .option("--json", "print JSON")
    .action(async (ref: string, opts: { json?: boolean; region?: string }) => {
      if (opts.region) return removeAmiCommand(ref, opts.region);
      const removed = await new ImageStore(home()).remove(ref);
      if (opts.json) return printJson(removed);
      process.stdout.write(
        `removed ${removed.ref} (${removed.digest.slice(0, 19)})${removed.imageRemoved ? "" : "; the image stays, another ref points at it"}\n`,
      );
    });
}
