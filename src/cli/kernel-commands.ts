/** kernel build|show: the minimal kernel (`kernel: minimal`) ahead of a bake, and what it is made of. */
import type { Command } from "commander";
import type { KilnHome } from "../home.js";
import type { BuiltKernel, KernelInputs } from "../kernel/build.js";
import { formatBytes } from "../progress.js";

function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** The inputs a bake of the app at `target` would use: its kiln.lock's source pin, else apt's candidate. */
async function inputsFor(home: KilnHome, target: string): Promise<KernelInputs> {
  const [{ AptSource }, { readLock }, build, { installRoot }, path] = await Promise.all([
    import("../packages/apt.js"),
    import("../packages/lock.js"),
    import("../kernel/build.js"),
    import("../home.js"),
    import("node:path"),
  ]);
  const apt = new AptSource(home.cache);
  const pin = (await readLock(path.resolve(target)))?.packages.find((p) => p.name === build.KERNEL_SOURCE_PACKAGE);
  const source = pin
    ? { name: pin.name, version: pin.version, sha256: pin.sha256, source: pin.source, depends: "" }
    : await apt.resolve(build.KERNEL_SOURCE_PACKAGE);
  return build.minimalKernelInputs(source, path.join(installRoot(), "kernel-configs"));
}

function describe(kernel: BuiltKernel): string {
  const r = kernel.record;
  return [
    `kernel ${r.release} (${r.arch}) from ${r.source.name} ${r.source.version}`,
    `  image      ${formatBytes(r.imageBytes)}  sha256:${r.imageSha256}`,
    `  config     sha256:${r.configSha256}  ${kernel.config}`,
    `  compiler   ${r.compiler}`,
    `  build key  ${r.key}${kernel.cached ? "" : `  (built in ${r.buildSeconds}s)`}`,
  ].join("\n");
}

export function registerKernelCommands(program: Command, home: () => KilnHome): void {
  const kernel = program.command("kernel").description("the minimal kernel kiln builds for `kernel: minimal` images");
  kernel
    .command("build")
    .description("build the minimal kernel now (a bake with kernel: minimal otherwise builds it the first time)")
    .argument("[path]", "app directory whose kiln.lock pins the kernel source", ".")
    .option("--json", "print one JSON object with the build record")
    .action(async (target: string, opts: { json?: boolean }) => {
      const [{ AptSource }, { buildMinimalKernel }, { stderrProgress }] = await Promise.all([
        import("../packages/apt.js"),
        import("../kernel/build.js"),
        import("../progress.js"),
      ]);
      const h = home();
      const inputs = await inputsFor(h, target);
      // The build prints its own line every 10 s (files compiled); the step heartbeat would only repeat it.
      const progress = stderrProgress({ heartbeatMs: 600_000 });
      const started = performance.now();
      const built = await progress.step(
        `Kernel ${inputs.source.name} ${inputs.source.version}`,
        () =>
          buildMinimalKernel(inputs, {
            apt: new AptSource(h.cache),
            cache: h.cache,
            onProgress: (done) => progress.info(`  compiling … ${((performance.now() - started) / 1000).toFixed(0)}s, ${done}`),
          }),
        (k) => (k.cached ? "(already built)" : `${formatBytes(k.record.imageBytes)}`),
      );
      if (opts.json) printJson({ ...built.record, cached: built.cached, image: built.image, config: built.config });
      else process.stdout.write(`${describe(built)}\n`);
    });
  kernel
    .command("show")
    .description("show the minimal kernel's build (size, source, compiler, configuration) or what a build would use")
    .argument("[path]", "app directory whose kiln.lock pins the kernel source", ".")
    .option("--config", "print the kernel's full .config (or, before a build, kiln's fragment lines)")
    .option("--json", "print one JSON object")
    .action(async (target: string, opts: { config?: boolean; json?: boolean }) => {
      const [{ findBuiltKernel, kernelBuildKey }, { renderFragment }, { readFile }] = await Promise.all([
        import("../kernel/build.js"),
        import("../kernel/fragment.js"),
        import("node:fs/promises"),
      ]);
      const h = home();
      const inputs = await inputsFor(h, target);
      const key = kernelBuildKey(inputs);
      const built = await findBuiltKernel(h.cache, key);
      if (opts.config) {
        process.stdout.write(built ? await readFile(built.config, "utf8") : renderFragment(inputs.fragments));
        return;
      }
      if (opts.json) {
        printJson({
          key,
          built: built ? { ...built.record, image: built.image, config: built.config } : null,
          source: { name: inputs.source.name, version: inputs.source.version },
          compiler: inputs.compiler,
          options: inputs.fragments.map((f) => `${f.option}=${f.value}`),
        });
        return;
      }
      process.stdout.write(
        built
          ? `${describe(built)}\n`
          : `not built yet: ${inputs.source.name} ${inputs.source.version}, ${inputs.fragments.length} options over tinyconfig, ${inputs.compiler}\n` +
              `  kiln kernel build (or a bake with kernel: minimal) builds it; kiln kernel show --config lists the options\n`,
      );
    });
}
