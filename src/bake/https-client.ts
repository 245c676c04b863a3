/**
 * The init's HTTPS client (templates/init/kiln-https.c, linked with BearSSL) and the CA
 * certificates it trusts for AWS: Amazon's roots, taken from Debian's ca-certificates package
 * (pinned in kiln.lock like busybox), never from the build host's trust store.
 */
import { lstat, readFile } from "node:fs/promises";
import path from "node:path";
import { KilnError } from "../errors.js";
import { run } from "../exec.js";
import { lockEntryOf, type DebianPackage } from "../packages/apt.js";
import { resolveDebian, type BakeContext } from "./context.js";
import { compileFreestanding } from "./freestanding.js";

/** Every root an AWS service endpoint's chain ends in (Amazon Trust Services and its cross-signer). */
export const AWS_ROOT_CERTIFICATES = [
  "Amazon_Root_CA_1",
  "Amazon_Root_CA_2",
  "Amazon_Root_CA_3",
  "Amazon_Root_CA_4",
  "Starfield_Services_Root_Certificate_Authority_-_G2",
] as const;

const CA_CERTIFICATES = "ca-certificates";
const MOZILLA_DIR = path.join("usr", "share", "ca-certificates", "mozilla");

/** The PEM bundle of AWS's roots from the pinned ca-certificates package, recorded as used. */
export async function loadAwsRoots(ctx: BakeContext): Promise<{ pem: Buffer; pkg: DebianPackage }> {
  const pkg = await resolveDebian(ctx, CA_CERTIFICATES);
  ctx.used.push(lockEntryOf(pkg, "init"));
  const tree = await ctx.apt.unpack(pkg);
  const parts: Buffer[] = [];
  for (const name of AWS_ROOT_CERTIFICATES) {
    const file = path.join(tree, MOZILLA_DIR, `${name}.crt`);
    // Package content is untrusted: a link here could point anywhere on the build host.
    const info = await lstat(file).catch(() => undefined);
    if (!info?.isFile()) {
      throw new KilnError(`${CA_CERTIFICATES} ${pkg.version} has no regular file ${path.join(MOZILLA_DIR, `${name}.crt`)}`, {
        hint: "the image must trust Amazon's root CAs to fetch secrets; pin a ca-certificates version that ships them in kiln.lock",
      });
    }
    const pem = await readFile(file);
    if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
      throw new KilnError(`${name}.crt in ${CA_CERTIFICATES} ${pkg.version} is not a PEM certificate`);
    }
    parts.push(pem);
  }
  return { pem: Buffer.concat(parts), pkg };
}

/**
 * Compiles kiln-https once per (source, compiler, BearSSL library). Like kiln-exec it has no
 * libc; unlike it, it links Debian's static libbearssl.a (libbearssl-dev on the build host).
 */
export async function buildHttpsClient(ctx: BakeContext): Promise<Buffer> {
  return compileWithBearSsl(ctx, "kiln-https");
}

/** kiln-cwlogs, the CloudWatch Logs shipper: BearSSL for its TLS, SHA-256 and HMAC, built like kiln-https. */
export async function buildLogShipper(ctx: BakeContext): Promise<Buffer> {
  return compileWithBearSsl(ctx, "kiln-cwlogs");
}

/** Compiles templates/init/NAME.c (freestanding) against Debian's static BearSSL library. */
export async function compileWithBearSsl(ctx: BakeContext, name: string): Promise<Buffer> {
  const library = (await run(["gcc", "-print-file-name=libbearssl.a"])).stdout.trim();
  // gcc echoes the bare name when it finds no such library.
  if (!path.isAbsolute(library)) {
    throw new KilnError(
      `the BearSSL library (libbearssl.a) is not installed: kiln compiles the image's TLS clients (${name} among them) against it`,
      {
        hint: "install the Debian package libbearssl-dev (scripts/install-deps.sh does)",
      },
    );
  }
  // -fno-tree-loop-distribute-patterns: gcc must not turn the memcpy/memset it is compiling
  // into calls to themselves. --gc-sections drops the parts of BearSSL nothing reaches.
  return compileFreestanding(ctx, {
    name,
    libraries: [library],
    extraFlags: ["-fno-tree-loop-distribute-patterns", "-ffunction-sections", "-fdata-sections", "-Wl,--gc-sections"],
    hint: `${name} needs BearSSL's headers and static library: install libbearssl-dev`,
  });
}
