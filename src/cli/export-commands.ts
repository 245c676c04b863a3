/** export: an image in another disk format (VirtualBox, VMware, Hyper-V/Azure, OpenStack, OVA). */
import path from "node:path";
import type { Command } from "commander";
import { InputError } from "../errors.js";
import type { KilnHome } from "../home.js";
import { describeFormats, exportFormat, FORMATS, inspectDiskFile, parseFormats } from "../image/formats.js";
import { OVA_TARGETS, type OvaTarget } from "../image/ova.js";
import { formatBytes } from "../progress.js";

export function registerExportCommands(program: Command, home: () => KilnHome): void {
  program
    .command("export")
    .description("write an image in another disk format; conversions are cached per digest")
    .argument("<ref>", "name:version or sha256:…")
    .requiredOption("--format <format>", `one of:\n${describeFormats()}`)
    .option("-o, --output <file>", "where to write it (default: ./<name>-<version>.<ext>)")
    .option(
      "--hypervisor <name>",
      `for --format ova: the hypervisor whose virtual hardware the OVF describes (${OVA_TARGETS.join(" or ")}; default virtualbox)`,
    )
    .option("--json", "print one JSON object with the result")
    .addHelpText("after", "\nThe same image (same digest) gives the same bytes in every format, on every machine.")
    .action(async (ref: string, opts: { format: string; output?: string; hypervisor?: string; json?: boolean }) => {
      const formats = parseFormats(opts.format);
      const problems: string[] = [];
      if (formats.length > 1) problems.push(`--format takes one format, got ${formats.join(", ")}`);
      const target = (opts.hypervisor ?? "virtualbox").toLowerCase() as OvaTarget;
      if (!OVA_TARGETS.includes(target)) problems.push(`--hypervisor ${opts.hypervisor}: expected ${OVA_TARGETS.join(" or ")}`);
      if (opts.hypervisor !== undefined && !formats.includes("ova"))
        problems.push("--hypervisor applies to --format ova only (disk formats carry no virtual hardware)");
      if (problems.length) throw new InputError(problems.join("\n"), { hint: "e.g. kiln export myapp:1.0 --format vdi -o myapp.vdi" });
      const format = formats[0]!;
      const [{ requireTools }, { sha256File }, { ImageStore }] = await Promise.all([
        import("../exec.js"),
        import("../fsutil.js"),
        import("../image/store.js"),
      ]);
      await requireTools(["qemu-img"]);

      const image = await new ImageStore(home()).resolve(ref);
      const dest = path.resolve(
        opts.output ??
          `${image.manifest.name}-${image.manifest.version}${format === "vmdk-stream" ? "-stream" : ""}.${FORMATS[format].extension}`,
      );
      const result = await exportFormat(image, format, dest, format === "ova" ? { ovaTarget: target } : {});
      const info = FORMATS[format].qemuFormat ? await inspectDiskFile(dest, FORMATS[format].qemuFormat) : undefined;
      const digest = `sha256:${await sha256File(dest)}`;
      if (opts.json) {
        process.stdout.write(
          `${JSON.stringify(
            {
              ref: image.ref,
              digest: image.digest,
              format,
              file: dest,
              bytes: result.bytes,
              sha256: digest,
              virtualBytes: info?.virtualBytes ?? image.manifest.layout.totalBytes,
              cached: result.cached,
              seconds: Number(result.seconds.toFixed(3)),
              ...(format === "ova" ? { hypervisor: target } : {}),
            },
            null,
            2,
          )}\n`,
        );
        return;
      }
      const detail = [
        format === "ova" ? `for ${target}` : "",
        formatBytes(result.bytes),
        `disk ${formatBytes(info?.virtualBytes ?? image.manifest.layout.totalBytes)}`,
        result.cached ? "cached" : `${result.seconds.toFixed(2)}s`,
      ].filter(Boolean);
      process.stdout.write(`${image.ref} -> ${dest}  (${format}, ${detail.join(", ")})  ${digest}\n`);
    });
}
