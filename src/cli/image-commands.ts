/** images, inspect, rm, prune: the local image store (its modules load when a command runs). */
import type { Command } from "commander";
import type { KilnHome } from "../home.js";
import { shortDigest } from "../image/short-digest.js";
import type { CommittedImage, StoreEntry, StoredImage } from "../image/store.js";
import { formatBytes } from "../progress.js";
import { printAmis, removeAmiCommand } from "./aws-commands.js";

function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function summary(image: StoredImage) {
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

/** The warning for a bake that pointed an existing name:version at other content, or undefined. */
export function describeMove(image: CommittedImage): string | undefined {
  if (!image.movedFrom) return undefined;
  return (
    `warning: ${image.ref} moved from ${shortDigest(image.movedFrom)} to ${shortDigest(image.digest)} (same name:version, other content); ` +
    "the old image stays in the store without a name: kiln images --all shows it, kiln prune removes it once no environment needs it"
  );
}

/** One row per ref (the same image twice when two refs name it), then, with --all, the images no ref names. */
function imageRows(entries: readonly StoreEntry[], all: boolean) {
  const rows = entries.flatMap((e) => (e.refs.length ? e.refs : all ? [undefined] : []).map((ref) => ({ ref, entry: e })));
  return rows.sort((a, b) => Number(a.ref === undefined) - Number(b.ref === undefined) || (a.ref ?? "").localeCompare(b.ref ?? ""));
}

async function listImages(home: KilnHome, opts: { json?: boolean; all?: boolean }): Promise<void> {
  const [{ ImageStore }, { whereColumn }] = await Promise.all([import("../image/store.js"), import("../image/usage.js")]);
  const entries = await new ImageStore(home).listAll();
  const rows = imageRows(entries, Boolean(opts.all));
  if (opts.json) {
    return printJson(
      rows.map(({ ref, entry }) => ({
        ...summary(entry.image),
        ref: ref ?? null,
        bakedAs: entry.bakedAs,
        storeBytes: entry.bytes,
        usedBy: entry.usedBy.map(({ app, env, release, role }) => ({ app, env, release, role })),
      })),
    );
  }
  if (rows.length === 0)
    return void process.stdout.write(opts.all ? "the store is empty: kiln bake ./myapp\n" : "no images yet: kiln bake ./myapp\n");
  process.stdout.write(`${"IMAGE".padEnd(32)} ${"DIGEST".padEnd(20)} ${"SIZE".padStart(10)}  ${"BAKED".padEnd(24)}  LIVE IN\n`);
  for (const { ref, entry } of rows) {
    const name = ref ?? `<none> (was ${entry.bakedAs})`;
    process.stdout.write(
      `${name.padEnd(32)} ${shortDigest(entry.digest).padEnd(20)} ${formatBytes(entry.bytes).padStart(10)}  ${entry.image.manifest.bakedAt.padEnd(24)}  ${whereColumn(entry.usedBy) || "-"}\n`,
    );
  }
  const hidden = opts.all ? 0 : entries.filter((e) => e.refs.length === 0).length;
  if (hidden > 0)
    process.stdout.write(`(${hidden} more without a name, from rebakes of the same name:version: kiln images --all; kiln prune)\n`);
}

export function registerImageCommands(program: Command, home: () => KilnHome): void {
  program
    .command("images")
    .description(
      "list the images in the local store and where local environments run them (or, with --region, the AMIs kiln registered there)",
    )
    .option("--all", "also list the images no name:version points at any more (old content of a rebaked name:version)")
    .option("--region <region>", "list AMIs in this AWS region instead (same as kiln amis)")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean; all?: boolean; region?: string }) => {
      if (opts.region) return printAmis(opts.region, undefined, opts.json);
      await listImages(home(), opts);
    });

  program
    .command("inspect")
    .description("show an image's layers, files and sizes, and packages with versions")
    .argument("<ref>", "name:version, or a digest (sha256:… or its first 4+ hex characters)")
    .option("--json", "print the manifest as JSON")
    .action(async (ref: string, opts: { json?: boolean }) => {
      const { ImageStore } = await import("../image/store.js");
      printInspect(await new ImageStore(home()).resolve(ref), Boolean(opts.json));
    });

  program
    .command("rm")
    .description(
      "remove a name:version from the local store, and its image when no other name points at it; refused while a local environment " +
        "runs the image or keeps it for rollback (or, with --region, remove its AMI and snapshot)",
    )
    .argument("<ref>", "name:version, or a digest (sha256:… or its first 4+ hex characters): the image and every name pointing at it")
    .option("--force", "remove it even if a local environment runs it or keeps it for rollback (kiln scale/rollback there then fail)")
    .option("--region <region>", "deregister the AMI in this AWS region instead (same as kiln rmi)")
    .option("--json", "print JSON")
    .action(async (ref: string, opts: { json?: boolean; region?: string; force?: boolean }) => {
      if (opts.region) return removeAmiCommand(ref, opts.region);
      const [{ ImageStore }, { describeUses }] = await Promise.all([import("../image/store.js"), import("../image/usage.js")]);
      const removed = await new ImageStore(home()).remove(ref, { force: Boolean(opts.force) });
      if (removed.usedBy.length > 0)
        process.stderr.write(
          `warning: removed an image that is ${describeUses(removed.usedBy)}; kiln scale and kiln rollback there cannot start it again\n`,
        );
      if (opts.json) return printJson({ ...removed, ref: removed.refs[0] ?? null });
      const names = removed.refs.length ? removed.refs.join(", ") : "image";
      process.stdout.write(
        `removed ${names} (${shortDigest(removed.digest)})${removed.imageRemoved ? "" : "; the image stays, another name points at it"}\n`,
      );
    });

  program
    .command("prune")
    .description("remove the stored images that no name:version points at, no local environment runs and none keeps for rollback")
    .option("--dry-run", "list what would be removed and the space it would free")
    .option("--json", "print JSON")
    .action(async (opts: { dryRun?: boolean; json?: boolean }) => {
      const { pruneImages } = await import("../image/prune.js");
      const result = await pruneImages(home(), { dryRun: Boolean(opts.dryRun) });
      if (opts.json) return printJson(result);
      const verb = result.dryRun ? "would remove" : "removed";
      for (const r of result.removed)
        process.stdout.write(
          `${verb} ${shortDigest(r.digest)}  ${r.bakedAs.padEnd(28)} ${formatBytes(r.bytes).padStart(10)}  baked ${r.bakedAt}\n`,
        );
      for (const k of result.kept) process.stdout.write(`kept   ${shortDigest(k.digest)}  ${k.bakedAs.padEnd(28)} ${k.why}\n`);
      process.stdout.write(
        result.removed.length
          ? `${result.dryRun ? "would free" : "freed"} ${formatBytes(result.bytes)} in ${result.removed.length} image(s)\n`
          : "nothing to prune\n",
      );
    });
}

function printInspect(image: StoredImage, json: boolean): void {
  const m = image.manifest;
  if (json) {
    printJson({ ...m, disk: image.disk });
    return;
  }
  const out: string[] = [
    `${image.ref}  ${image.digest}`,
    `baker ${m.baker}; cmd ${JSON.stringify(m.cmd)}; port ${m.port ?? "-"}; health ${m.healthcheck.path}`,
    m.kernel.build
      ? `kernel minimal ${m.kernel.release}, built by kiln from ${m.kernel.package} ${m.kernel.version} (config sha256 ${m.kernel.build.configSha256.slice(0, 12)}, ${m.kernel.build.compiler})`
      : `kernel ${m.kernel.package} ${m.kernel.version} (${m.kernel.release})`,
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
}
