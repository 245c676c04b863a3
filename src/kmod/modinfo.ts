import { posix } from "node:path";
import { isElf, readSection } from "../elf/elf.js";
import { InputError } from "../errors.js";

/**
 * What a kernel module says about itself in its .modinfo section: the same data depmod
 * and modprobe use, read straight from the .ko so no host module tools are needed.
 */

export interface ModuleInfo {
  name: string;
  depends: string[];
  aliases: string[];
  /** Modules to load first if they exist; unlike `depends`, their absence is not an error. */
  softdepsPre: string[];
  vermagic?: string;
}

const COMPRESSION_MAGIC: readonly { format: string; magic: Buffer }[] = [
  { format: "xz", magic: Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) },
  { format: "zstd", magic: Buffer.from([0x28, 0xb5, 0x2f, 0xfd]) },
  { format: "gzip", magic: Buffer.from([0x1f, 0x8b]) },
];

/** The kernel treats '-' and '_' in module names as the same character; we keep '_'. */
export function normalizeModuleName(name: string): string {
  return name.replaceAll("-", "_");
}

export function parseModinfo(buf: Buffer, fileName: string): ModuleInfo {
  rejectCompressed(buf, fileName);
  const section = isElf(buf) ? readSection(buf, ".modinfo", fileName) : undefined;
  if (section === undefined) {
    throw new InputError(`${fileName} is not a kernel module: it has no .modinfo section`, {
      hint: "expected a .ko file from a kernel's lib/modules directory",
    });
  }

  const info: ModuleInfo = { name: nameFromFileName(fileName), depends: [], aliases: [], softdepsPre: [] };
  for (const [key, value] of modinfoFields(section)) {
    if (key === "name" && value !== "") info.name = normalizeModuleName(value);
    else if (key === "depends")
      info.depends.push(
        ...value
          .split(",")
          .map((d) => d.trim())
          .filter((d) => d !== "")
          .map(normalizeModuleName),
      );
    else if (key === "alias" && value !== "") info.aliases.push(value);
    else if (key === "softdep") info.softdepsPre.push(...softdepsBefore(value));
    // Kept verbatim, trailing space included: the kernel compares vermagic byte for byte.
    else if (key === "vermagic") info.vermagic = value;
  }
  info.depends = unique(info.depends);
  info.aliases = unique(info.aliases);
  info.softdepsPre = unique(info.softdepsPre);
  return info;
}

/** The section is a run of NUL-terminated `key=value` strings, keys repeating freely. */
function modinfoFields(section: Buffer): [string, string][] {
  const fields: [string, string][] = [];
  for (const entry of section.toString("utf8").split("\0")) {
    const eq = entry.indexOf("=");
    if (eq > 0) fields.push([entry.slice(0, eq), entry.slice(eq + 1)]);
  }
  return fields;
}

/** `softdep=pre: a b post: c` names modules to load before (pre) and after (post) this one. */
function softdepsBefore(value: string): string[] {
  const tokens = value
    .replace(/\b(pre|post):/g, " $1: ")
    .split(/\s+/)
    .filter((t) => t !== "");
  const pre: string[] = [];
  let phase: "pre" | "post" | undefined;
  for (const token of tokens) {
    if (token === "pre:" || token === "post:") phase = token === "pre:" ? "pre" : "post";
    else if (phase === "pre") pre.push(normalizeModuleName(token));
  }
  return pre;
}

function nameFromFileName(fileName: string): string {
  return normalizeModuleName(posix.basename(fileName).replace(/\.ko(\.(xz|zst|gz))?$/, ""));
}

function rejectCompressed(buf: Buffer, fileName: string): void {
  const match = COMPRESSION_MAGIC.find(({ magic }) => buf.length >= magic.length && buf.subarray(0, magic.length).equals(magic));
  if (match === undefined) return;
  throw new InputError(`${fileName} is a ${match.format}-compressed kernel module`, {
    hint: "decompress it before reading its module information",
  });
}

function unique(values: readonly string[]): string[] {
  return [...new Set(values)];
}
