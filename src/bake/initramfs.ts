/**
 * Init layer: busybox-static (pinned Debian package), the init script, kiln-exec, kiln-https
 * with Amazon's root CAs (from the pinned ca-certificates package), kiln-cwlogs (the CloudWatch
 * Logs shipper), kiln-syslog-tls with all of that package's roots (src/bake/syslog-tls.ts says
 * why the image always carries them), and the
 * kernel modules with their load-order and alias tables, as a reproducible gzipped cpio.
 * It depends only on the kernel, busybox and kiln's templates, never on the app, so every
 * app baked with the same kernel shares it.
 */
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { buildCpio, gzipDeterministic, type CpioEntry } from "../image/cpio.js";
import { renderAliasTable, renderDepTable } from "../kmod/module-set.js";
import { run, runBinary } from "../exec.js";
import { exists, sha256, cachedSha256, writeFileAtomic } from "../fsutil.js";
import { lockEntryOf, packageIdentity } from "../packages/apt.js";
import { resolveDebian, type BakeContext } from "./context.js";
import { compileFreestanding } from "./freestanding.js";
import { buildHttpsClient, buildLogShipper, loadAwsRoots } from "./https-client.js";
import { buildSyslogTlsClient, loadSystemRoots } from "./syslog-tls.js";
import type { KernelLayer } from "./kernel.js";

export interface InitLayer {
  readonly path: string;
  readonly sha256: string;
  readonly bytes: number;
  readonly cached: boolean;
  readonly busyboxVersion: string;
}

/** Shell scripts the init runs, installed as /bin/NAME. */
const INIT_SCRIPTS = ["kiln-dhcp", "kiln-imds", "kiln-secrets"] as const;

export async function buildInitramfs(kernel: KernelLayer, ctx: BakeContext): Promise<InitLayer> {
  const busyboxPkg = await resolveDebian(ctx, "busybox-static");
  await ctx.apt.verify(busyboxPkg); // the cache key below trusts it
  ctx.used.push(lockEntryOf(busyboxPkg, "init"));
  const kilnExec = await compileFreestanding(ctx, { name: "kiln-exec" });
  const kilnLog = await compileFreestanding(ctx, { name: "kiln-log" });
  const kilnHttps = await buildHttpsClient(ctx);
  const kilnCwlogs = await buildLogShipper(ctx);
  const awsRoots = await loadAwsRoots(ctx);
  const syslogTls = await buildSyslogTlsClient(ctx);
  const systemRoots = await loadSystemRoots(ctx);
  const initScript = await readFile(path.join(ctx.templates, "init", "init"));
  const scripts = await Promise.all(
    INIT_SCRIPTS.map(async (name) => ({ name, data: await readFile(path.join(ctx.templates, "init", name)) })),
  );
  const key = sha256(
    [
      kernel.identity,
      packageIdentity(busyboxPkg),
      sha256(kilnExec),
      sha256(kilnLog),
      sha256(kilnHttps),
      sha256(kilnCwlogs),
      packageIdentity(awsRoots.pkg),
      sha256(awsRoots.pem),
      sha256(syslogTls),
      sha256(systemRoots.pem),
      sha256(initScript),
      ...scripts.map((s) => sha256(s.data)),
      kernel.loadOrder.join(","),
      kernel.kind === "minimal" ? `zstd ${await zstdVersion()}` : "gzip",
    ].join("\0"),
  ).slice(0, 32);
  const out = path.join(ctx.layers, `initramfs-${key}.img`);
  if (await exists(out)) {
    return { path: out, sha256: await cachedSha256(out), bytes: (await stat(out)).size, cached: true, busyboxVersion: busyboxPkg.version };
  }

  const busyboxTree = await ctx.apt.unpack(busyboxPkg);
  const busyboxPath = path.join(busyboxTree, "bin", "busybox");
  const busybox = await readFile(busyboxPath);
  const applets = (await run([busyboxPath, "--list"])).stdout
    .split("\n")
    .map((a) => a.trim())
    .filter((a) => /^[a-z0-9_.[-]+$/.test(a) && a !== "busybox");

  const entries: CpioEntry[] = [
    { path: "init", type: "file", mode: 0o755, data: initScript },
    { path: "bin/busybox", type: "file", mode: 0o755, data: busybox },
    { path: "bin/kiln-exec", type: "file", mode: 0o755, data: kilnExec },
    { path: "bin/kiln-log", type: "file", mode: 0o755, data: kilnLog },
    { path: "bin/kiln-https", type: "file", mode: 0o755, data: kilnHttps },
    { path: "bin/kiln-cwlogs", type: "file", mode: 0o755, data: kilnCwlogs },
    { path: "etc/kiln/aws-roots.pem", type: "file", mode: 0o644, data: awsRoots.pem },
    { path: "bin/kiln-syslog-tls", type: "file", mode: 0o755, data: syslogTls },
    { path: "etc/kiln/ca-bundle.pem", type: "file", mode: 0o644, data: systemRoots.pem },
    ...scripts.map((s): CpioEntry => ({ path: `bin/${s.name}`, type: "file", mode: 0o755, data: s.data })),
    { path: "etc/kiln/image.conf", type: "file", mode: 0o644, data: Buffer.from(`KILN_ALWAYS_MODULES="${kernel.alwaysLoad.join(" ")}"\n`) },
    // A kernel with everything built in (kernel: minimal) has no tables: the init skips its probe loop.
    ...(kernel.modules.size === 0 ? [] : moduleTables(kernel)),
    { path: "dev/console", type: "char", mode: 0o600, major: 5, minor: 1 },
    { path: "dev/null", type: "char", mode: 0o666, major: 1, minor: 3 },
    ...["proc", "sys", "run", "tmp", "mnt"].map((d): CpioEntry => ({ path: d, type: "dir", mode: 0o755 })),
  ];
  for (const applet of applets) entries.push({ path: `bin/${applet}`, type: "symlink", target: "busybox" });
  for (const name of [...kernel.modules.keys()].sort()) {
    entries.push({ path: `lib/modules/${name}.ko`, type: "file", mode: 0o644, data: await readFile(kernel.modules.get(name)!.path) });
  }
  // The minimal kernel unpacks zstd: smaller than gzip and faster to unpack. The Debian kernel's
  // initramfs stays gzip, so its images keep their digests.
  const cpio = buildCpio(entries);
  const image = kernel.kind === "minimal" ? await zstdCompress(cpio) : gzipDeterministic(cpio);
  await writeFileAtomic(out, image);
  return { path: out, sha256: sha256(image), bytes: image.length, cached: false, busyboxVersion: busyboxPkg.version };
}

function moduleTables(kernel: KernelLayer): CpioEntry[] {
  return [
    {
      path: "lib/modules/kiln.alias",
      type: "file",
      mode: 0o644,
      data: Buffer.from(renderAliasTable([...kernel.modules.values()].map((m) => m.info))),
    },
    {
      path: "lib/modules/kiln.deps",
      type: "file",
      mode: 0o644,
      data: Buffer.from(renderDepTable(new Map([...kernel.modules].map(([n, m]) => [n, m.info])), [...kernel.modules.keys()])),
    },
  ];
}

async function zstdVersion(): Promise<string> {
  return (await run(["zstd", "--version"])).stdout.trim();
}

/** One zstd frame at level 19, single-threaded: the same input gives the same bytes. */
async function zstdCompress(data: Buffer): Promise<Buffer> {
  return runBinary(["zstd", "-19", "-T1", "-q", "-c", "--no-progress"], { input: data });
}
