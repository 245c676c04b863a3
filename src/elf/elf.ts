import { InputError } from "../errors.js";

/**
 * A reader for the parts of an ELF file kiln needs to copy a program into an image: its
 * interpreter and the shared libraries it asks for, and named sections of kernel modules.
 *
 * Dynamic linking data is found through program headers alone, the same way the dynamic
 * loader finds it, because shipped binaries are often stripped of section headers. Every
 * offset read from the file is bounds-checked, so a truncated or hostile file produces an
 * InputError instead of a RangeError or a silently wrong answer.
 */

export interface ElfInfo {
  bits: 32 | 64;
  littleEndian: boolean;
  machine: number;
  /** "x86-64", "aarch64", "i386", "arm", "riscv", or "machine 0xNN". */
  machineName: string;
  type: "exec" | "dyn" | "rel" | "core" | "other";
  interpreter?: string;
  needed: string[];
  runpath: string[];
  rpath: string[];
  soname?: string;
  /** No PT_INTERP and no DT_NEEDED: nothing else has to be copied for it to run. */
  isStatic: boolean;
  isPie: boolean;
}

const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);
const ELFCLASS32 = 1;
const ELFCLASS64 = 2;
const ELFDATA2LSB = 1;
const ELFDATA2MSB = 2;
const EV_CURRENT = 1;

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;

const DT_NULL = 0n;
const DT_NEEDED = 1n;
const DT_STRTAB = 5n;
const DT_STRSZ = 10n;
const DT_SONAME = 14n;
const DT_RPATH = 15n;
const DT_RUNPATH = 29n;
const DT_FLAGS_1 = 0x6ffffffbn;
const DF_1_PIE = 0x08000000;

const SHT_NOBITS = 8;
const SHN_UNDEF = 0;
/** Marks header counts too large for their 16-bit field; the real value lives in section 0. */
const XNUM = 0xffff;

const MACHINE_NAMES: ReadonlyMap<number, string> = new Map([
  [3, "i386"],
  [40, "arm"],
  [62, "x86-64"],
  [183, "aarch64"],
  [243, "riscv"],
]);

const FILE_TYPES: readonly ElfInfo["type"][] = ["other", "rel", "exec", "dyn", "core"];

interface ElfHeader {
  type: number;
  machine: number;
  phoff: number;
  phentsize: number;
  phnum: number;
  shoff: number;
  shentsize: number;
  shnum: number;
  shstrndx: number;
}

interface Segment {
  type: number;
  offset: number;
  vaddr: bigint;
  filesz: number;
}

interface Section {
  nameOffset: number;
  type: number;
  offset: number;
  size: number;
  link: number;
  info: number;
}

export function isElf(buf: Buffer): boolean {
  return buf.length >= ELF_MAGIC.length && buf.subarray(0, ELF_MAGIC.length).equals(ELF_MAGIC);
}

export function parseElf(buf: Buffer, label = "file"): ElfInfo {
  const file = ElfFile.open(buf, label);
  const segments = file.programHeaders();
  const interpreter = readInterpreter(file, segments);
  const dynamic = readDynamic(file, segments);
  const type = FILE_TYPES[file.header.type] ?? "other";
  const info: ElfInfo = {
    bits: file.is64 ? 64 : 32,
    littleEndian: file.littleEndian,
    machine: file.header.machine,
    machineName: describeMachine(file.header.machine),
    type,
    needed: dynamic.needed,
    runpath: dynamic.runpath,
    rpath: dynamic.rpath,
    isStatic: interpreter === undefined && dynamic.needed.length === 0,
    isPie: type === "dyn" && isPositionIndependentExecutable(dynamic.flags1, interpreter, dynamic.soname),
  };
  if (interpreter !== undefined) info.interpreter = interpreter;
  if (dynamic.soname !== undefined) info.soname = dynamic.soname;
  return info;
}

/**
 * The contents of the named section, as a view into `buf`, or undefined when the file has
 * no section headers or no such section. SHT_NOBITS sections (.bss) yield an empty buffer.
 */
export function readSection(buf: Buffer, name: string, label = "file"): Buffer | undefined {
  const file = ElfFile.open(buf, label);
  const sections = file.sectionHeaders();
  if (sections.length === 0) return undefined;
  const names = sections[file.sectionNameTableIndex(sections)];
  if (names === undefined) return undefined;
  file.requireRange(names.offset, names.size, "the section name table");
  for (const [index, section] of sections.entries()) {
    if (section.nameOffset >= names.size) continue;
    const sectionName = file.cString(names.offset + section.nameOffset, names.offset + names.size, `the name of section ${index}`);
    if (sectionName !== name) continue;
    if (section.type === SHT_NOBITS) return Buffer.alloc(0);
    file.requireRange(section.offset, section.size, `section ${name}`);
    return buf.subarray(section.offset, section.offset + section.size);
  }
  return undefined;
}

export function describeMachine(machine: number): string {
  return MACHINE_NAMES.get(machine) ?? `machine 0x${machine.toString(16).padStart(2, "0")}`;
}

/**
 * Linkers since binutils 2.33 mark PIEs with DF_1_PIE. Older ones leave only a heuristic:
 * a position-independent object with an interpreter but no soname is a program, not a
 * library (glibc's libc.so.6 has an interpreter too, but also a soname).
 */
function isPositionIndependentExecutable(flags1: number, interpreter: string | undefined, soname: string | undefined): boolean {
  if ((flags1 & DF_1_PIE) !== 0) return true;
  return interpreter !== undefined && soname === undefined;
}

function readInterpreter(file: ElfFile, segments: readonly Segment[]): string | undefined {
  const interp = segments.find((s) => s.type === PT_INTERP);
  if (interp === undefined) return undefined;
  file.requireRange(interp.offset, interp.filesz, "the PT_INTERP segment");
  return file.cString(interp.offset, interp.offset + interp.filesz, "the interpreter path");
}

interface DynamicInfo {
  needed: string[];
  runpath: string[];
  rpath: string[];
  soname?: string;
  flags1: number;
}

function readDynamic(file: ElfFile, segments: readonly Segment[]): DynamicInfo {
  const result: DynamicInfo = { needed: [], runpath: [], rpath: [], flags1: 0 };
  const dynamic = segments.find((s) => s.type === PT_DYNAMIC);
  if (dynamic === undefined) return result;
  file.requireRange(dynamic.offset, dynamic.filesz, "the PT_DYNAMIC segment");

  const entrySize = file.is64 ? 16 : 8;
  const stringRefs: { tag: bigint; offset: number }[] = [];
  let strtab: bigint | undefined;
  let strsz: number | undefined;
  for (let at = dynamic.offset; at + entrySize <= dynamic.offset + dynamic.filesz; at += entrySize) {
    const tag = file.signedWord(at);
    if (tag === DT_NULL) break;
    const valueAt = at + entrySize / 2;
    if (tag === DT_STRTAB) strtab = file.address(valueAt);
    else if (tag === DT_STRSZ) strsz = file.word(valueAt);
    else if (tag === DT_FLAGS_1) result.flags1 = file.word(valueAt);
    else if (tag === DT_NEEDED || tag === DT_SONAME || tag === DT_RPATH || tag === DT_RUNPATH) {
      stringRefs.push({ tag, offset: file.word(valueAt) });
    }
  }
  if (stringRefs.length === 0) return result;
  if (strtab === undefined) file.fail("the dynamic section names libraries but has no DT_STRTAB");

  const table = locateStringTable(file, segments, strtab, strsz);
  for (const ref of stringRefs) {
    if (ref.offset >= table.end - table.start) file.fail(`a dynamic string offset (${ref.offset}) lies outside the string table`);
    const value = file.cString(table.start + ref.offset, table.end, "a dynamic string");
    if (ref.tag === DT_NEEDED) result.needed.push(value);
    else if (ref.tag === DT_SONAME) result.soname = value;
    else if (ref.tag === DT_RPATH) result.rpath.push(...splitSearchPath(value));
    else result.runpath.push(...splitSearchPath(value));
  }
  return result;
}

/**
 * DT_STRTAB holds a virtual address; the PT_LOAD segment containing it says where those
 * bytes sit in the file. The table ends at DT_STRSZ or, failing that, the segment's end.
 */
function locateStringTable(
  file: ElfFile,
  segments: readonly Segment[],
  vaddr: bigint,
  size: number | undefined,
): { start: number; end: number } {
  const load = segments.find((s) => s.type === PT_LOAD && vaddr >= s.vaddr && vaddr < s.vaddr + BigInt(s.filesz));
  if (load === undefined) file.fail(`no PT_LOAD segment maps the dynamic string table at 0x${vaddr.toString(16)}`);
  const start = load.offset + Number(vaddr - load.vaddr);
  const segmentEnd = load.offset + load.filesz;
  const end = size === undefined ? segmentEnd : Math.min(start + size, segmentEnd);
  file.requireRange(start, end - start, "the dynamic string table");
  return { start, end };
}

/**
 * Empty entries mean "the current directory" to ld.so, which has no counterpart when
 * resolving libraries for an image, so they are dropped.
 */
function splitSearchPath(value: string): string[] {
  return value.split(":").filter((entry) => entry !== "");
}

/** Bounds-checked, endian- and class-aware access to the raw bytes of one ELF file. */
class ElfFile {
  readonly header: ElfHeader;

  private constructor(
    readonly buf: Buffer,
    readonly label: string,
    readonly is64: boolean,
    readonly littleEndian: boolean,
  ) {
    this.header = this.readHeader();
  }

  static open(buf: Buffer, label: string): ElfFile {
    if (!isElf(buf)) {
      throw new InputError(`${label} is not an ELF file`, {
        hint:
          buf.length < ELF_MAGIC.length ? "the file is empty or nearly so" : "expected a compiled program, shared library or kernel module",
      });
    }
    if (buf.length < 16) throw corrupt(label, "the ELF identification bytes are cut short");
    const elfClass = buf[4];
    const data = buf[5];
    if (elfClass !== ELFCLASS32 && elfClass !== ELFCLASS64) throw corrupt(label, `unknown ELF class ${String(elfClass)}`);
    if (data !== ELFDATA2LSB && data !== ELFDATA2MSB) throw corrupt(label, `unknown ELF data encoding ${String(data)}`);
    if (buf[6] !== EV_CURRENT) throw corrupt(label, `unknown ELF version ${String(buf[6])}`);
    return new ElfFile(buf, label, elfClass === ELFCLASS64, data === ELFDATA2LSB);
  }

  fail(detail: string): never {
    throw corrupt(this.label, detail);
  }

  requireRange(offset: number, size: number, what: string): void {
    if (offset < 0 || size < 0 || offset + size > this.buf.length) {
      this.fail(`${what} (bytes ${offset}..${offset + size}) runs past the end of the ${this.buf.length}-byte file`);
    }
  }

  u16(at: number): number {
    return this.littleEndian ? this.buf.readUInt16LE(at) : this.buf.readUInt16BE(at);
  }

  u32(at: number): number {
    return this.littleEndian ? this.buf.readUInt32LE(at) : this.buf.readUInt32BE(at);
  }

  /** An address-sized field that holds an offset, size or count. */
  word(at: number): number {
    if (!this.is64) return this.u32(at);
    const value = this.littleEndian ? this.buf.readBigUInt64LE(at) : this.buf.readBigUInt64BE(at);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`a size or offset (0x${value.toString(16)}) is impossibly large`);
    return Number(value);
  }

  /** Kept as a bigint: 64-bit virtual addresses do not fit in a double. */
  address(at: number): bigint {
    if (!this.is64) return BigInt(this.u32(at));
    return this.littleEndian ? this.buf.readBigUInt64LE(at) : this.buf.readBigUInt64BE(at);
  }

  signedWord(at: number): bigint {
    if (!this.is64) return BigInt(this.littleEndian ? this.buf.readInt32LE(at) : this.buf.readInt32BE(at));
    return this.littleEndian ? this.buf.readBigInt64LE(at) : this.buf.readBigInt64BE(at);
  }

  /** A NUL-terminated string starting at `start` that must end before `limit`. */
  cString(start: number, limit: number, what: string): string {
    const length = this.buf.subarray(start, limit).indexOf(0);
    if (length === -1) this.fail(`${what} is not NUL-terminated`);
    return this.buf.toString("utf8", start, start + length);
  }

  programHeaders(): Segment[] {
    const { phoff, phentsize } = this.header;
    const count =
      this.header.phnum === XNUM
        ? (this.sectionZero()?.info ?? this.fail("the program header count overflows but there is no section 0 to hold it"))
        : this.header.phnum;
    if (count === 0) return [];
    if (phentsize < (this.is64 ? 56 : 32)) this.fail(`program header entries are ${phentsize} bytes, too small`);
    this.requireRange(phoff, count * phentsize, "the program header table");
    const segments: Segment[] = [];
    for (let i = 0; i < count; i++) {
      const at = phoff + i * phentsize;
      segments.push(
        this.is64
          ? { type: this.u32(at), offset: this.word(at + 8), vaddr: this.address(at + 16), filesz: this.word(at + 32) }
          : { type: this.u32(at), offset: this.word(at + 4), vaddr: this.address(at + 8), filesz: this.word(at + 16) },
      );
    }
    return segments;
  }

  sectionHeaders(): Section[] {
    const zero = this.sectionZero();
    if (zero === undefined) return [];
    const count = this.header.shnum === 0 ? zero.size : this.header.shnum;
    this.requireRange(this.header.shoff, count * this.header.shentsize, "the section header table");
    const sections: Section[] = [];
    for (let i = 0; i < count; i++) sections.push(this.readSectionHeader(this.header.shoff + i * this.header.shentsize));
    return sections;
  }

  /** -1 when the file declares no section name table. */
  sectionNameTableIndex(sections: readonly Section[]): number {
    const index = this.header.shstrndx === XNUM ? (sections[0]?.link ?? SHN_UNDEF) : this.header.shstrndx;
    if (index === SHN_UNDEF) return -1;
    if (index >= sections.length) this.fail(`the section name table index ${index} is past the last of ${sections.length} sections`);
    return index;
  }

  /** Section 0 is reserved; it carries header counts that overflowed their fields. */
  private sectionZero(): Section | undefined {
    const { shoff, shentsize } = this.header;
    if (shoff === 0) return undefined;
    if (shentsize < (this.is64 ? 64 : 40)) this.fail(`section header entries are ${shentsize} bytes, too small`);
    this.requireRange(shoff, shentsize, "the section header table");
    return this.readSectionHeader(shoff);
  }

  private readSectionHeader(at: number): Section {
    return this.is64
      ? {
          nameOffset: this.u32(at),
          type: this.u32(at + 4),
          offset: this.word(at + 24),
          size: this.word(at + 32),
          link: this.u32(at + 40),
          info: this.u32(at + 44),
        }
      : {
          nameOffset: this.u32(at),
          type: this.u32(at + 4),
          offset: this.word(at + 16),
          size: this.word(at + 20),
          link: this.u32(at + 24),
          info: this.u32(at + 28),
        };
  }

  private readHeader(): ElfHeader {
    this.requireRange(0, this.is64 ? 64 : 52, "the ELF header");
    const common = { type: this.u16(16), machine: this.u16(18) };
    return this.is64
      ? {
          ...common,
          phoff: this.word(32),
          shoff: this.word(40),
          phentsize: this.u16(54),
          phnum: this.u16(56),
          shentsize: this.u16(58),
          shnum: this.u16(60),
          shstrndx: this.u16(62),
        }
      : {
          ...common,
          phoff: this.word(28),
          shoff: this.word(32),
          phentsize: this.u16(42),
          phnum: this.u16(44),
          shentsize: this.u16(46),
          shnum: this.u16(48),
          shstrndx: this.u16(50),
        };
  }
}

function corrupt(label: string, detail: string): InputError {
  return new InputError(`${label} is a truncated or corrupt ELF file: ${detail}`, {
    hint: "re-copy or re-download it; if it came from a package, reinstall the package",
  });
}
