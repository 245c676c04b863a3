/**
 * The init's syslog-over-TLS shipper (templates/init/kiln-syslog-tls.c, linked with BearSSL) and
 * the CA set it trusts by default: every root of Debian's ca-certificates package (Mozilla's
 * set, pinned in kiln.lock), never the build host's trust store.
 *
 * Why the whole set is always in the image: KILN_SYSLOG is boot-time configuration (user-data),
 * so the bake cannot know whether a hosted log service will be used, nor which public CA
 * signs its certificate. The set costs about 130 KB in the gzipped initramfs. A private
 * server's CA comes with the configuration instead (KILN_SYSLOG_CA), and then replaces it.
 */
import { lstat, readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { KilnError } from "../errors.js";
import { lockEntryOf, type DebianPackage } from "../packages/apt.js";
import { resolveDebian, type BakeContext } from "./context.js";
import { compileWithBearSsl } from "./https-client.js";

const CA_CERTIFICATES = "ca-certificates";
const MOZILLA_DIR = path.join("usr", "share", "ca-certificates", "mozilla");
/** Fewer would mean a broken or unexpected package (Debian ships about 140); more than the shipper holds would not load. */
const MIN_ROOTS = 50;
const MAX_ROOTS = 320;

/** One PEM bundle of every root in the pinned ca-certificates package, in name order (reproducible). */
export async function loadSystemRoots(ctx: BakeContext): Promise<{ pem: Buffer; count: number; pkg: DebianPackage }> {
  const pkg = await resolveDebian(ctx, CA_CERTIFICATES);
  ctx.used.push(lockEntryOf(pkg, "init"));
  const dir = path.join(await ctx.apt.unpack(pkg), MOZILLA_DIR);
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith(".crt")).sort();
  if (names.length < MIN_ROOTS || names.length > MAX_ROOTS) {
    throw new KilnError(`${CA_CERTIFICATES} ${pkg.version} has ${names.length} certificates in ${MOZILLA_DIR}`, {
      hint:
        `the image's syslog over TLS trusts that set (${MIN_ROOTS} to ${MAX_ROOTS} roots expected): ` +
        "pin a regular ca-certificates version in kiln.lock",
    });
  }
  const parts: Buffer[] = [];
  for (const name of names) {
    const file = path.join(dir, name);
    // Package content is untrusted: a link here could point anywhere on the build host.
    const info = await lstat(file);
    if (!info.isFile()) throw new KilnError(`${name} in ${CA_CERTIFICATES} ${pkg.version} is not a regular file`);
    const pem = await readFile(file);
    if (!pem.toString("latin1").startsWith("-----BEGIN CERTIFICATE-----")) {
      throw new KilnError(`${name} in ${CA_CERTIFICATES} ${pkg.version} is not a PEM certificate`);
    }
    parts.push(pem, pem.at(-1) === 0x0a ? Buffer.alloc(0) : Buffer.from("\n"));
  }
  return { pem: Buffer.concat(parts), count: names.length, pkg };
}

/** Compiles kiln-syslog-tls once per (source, compiler, BearSSL library), like kiln-https. */
export function buildSyslogTlsClient(ctx: BakeContext): Promise<Buffer> {
  return compileWithBearSsl(ctx, "kiln-syslog-tls");
}
