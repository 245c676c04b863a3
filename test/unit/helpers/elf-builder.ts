/**
 * Synthesizes small but well-formed ELF images in memory so ELF tests can state exact
 * expectations without depending on whatever binaries the host happens to have.
 *
 * The dynamic string table and dynamic section sit in a second PT_LOAD whose virtual
 * address is shifted away from its file offset, so a reader that confuses the two fails.
 */

export const EM = { I386: 3, MIPS: 8, ARM: 40, X86_64: 62, AARCH64: 183, RISCV: 243 } as const;
export const ET = { REL: 1, EXEC: 2, DYN: 3, CORE: 4 } as const;
export const DF_1_PIE = 0x08000000;

export interface ElfSpec {
  bits?: 32 | 64;
  littleEndian?: boolean;
  machine?: number;
  type?: number;
  interpreter?: string;
  needed?: string[];
  soname?: string;
  runpath?: string;
  rpath?: string;
  flags1?: number;
  /** Leave out DT_STRSZ, so the string table's extent comes from its segment. */
  omitStrsz?: boolean;
  /** false: no program headers at all, as in a relocatable kernel module. */
  programHeaders?: boolean;
  /** When given, section headers are written with these sections plus .shstrtab. */
  sections?: { name: string; data: Buffer }[];
}

export interface ElfLayout {
  phoff: number;
  dynstrOffset: number;
  dynamicOffset: number;
  shoff: number;
  /** Virtual address the second PT_LOAD (dynstr + dynamic) is mapped at. */
  dataVaddr: bigint;
}

const LOAD_BASE = 0x400000n;
const DATA_SHIFT = 0x200000n;
const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT = { NULL: 0, NEEDED: 1, STRTAB: 5, STRSZ: 10, SONAME: 14, RPATH: 15, RUNPATH: 29, FLAGS_1: 0x6ffffffb } as const;

export function buildElf(spec: ElfSpec = {}): Buffer {
  return buildElfWithLayout(spec).image;
}

export function buildElfWithLayout(spec: ElfSpec = {}): { image: Buffer; layout: ElfLayout } {
  const is64 = (spec.bits ?? 64) === 64;
  const sizes = is64 ? { ehdr: 64, phdr: 56, shdr: 64, dyn: 16, align: 8 } : { ehdr: 52, phdr: 32, shdr: 40, dyn: 8, align: 4 };
  const strings = new StringTable();
  const dynamicEntries = dynamicEntriesFor(spec, strings);
  const hasDynamic = dynamicEntries.length > 0;
  const withSegments = spec.programHeaders ?? true;
  const phnum = withSegments ? 2 + (spec.interpreter === undefined ? 0 : 1) + (hasDynamic ? 1 : 0) : 0;

  const phoff = sizes.ehdr;
  const interpOffset = phoff + phnum * sizes.phdr;
  const interp = spec.interpreter === undefined ? Buffer.alloc(0) : Buffer.from(`${spec.interpreter}\0`);
  const dynstrOffset = interpOffset + interp.length;
  const dynstr = hasDynamic ? strings.bytes() : Buffer.alloc(0);
  const dynamicOffset = alignUp(dynstrOffset + dynstr.length, sizes.align);
  const dynamicSize = hasDynamic ? (dynamicEntries.length + 3) * sizes.dyn : 0;
  const dataEnd = dynamicOffset + dynamicSize;
  const dataVaddr = LOAD_BASE + DATA_SHIFT + BigInt(dynstrOffset);

  const sectionNames = new StringTable();
  const sections = (spec.sections ?? []).map((s) => ({ ...s, nameOffset: sectionNames.add(s.name) }));
  const shstrtabName = sectionNames.add(".shstrtab");
  let cursor = dataEnd;
  const placed = sections.map((s) => {
    const offset = cursor;
    cursor += s.data.length;
    return { ...s, offset };
  });
  const shstrtab = sectionNames.bytes();
  const shstrtabOffset = cursor;
  const shoff = spec.sections === undefined ? 0 : alignUp(shstrtabOffset + shstrtab.length, sizes.align);
  const shnum = spec.sections === undefined ? 0 : placed.length + 2;
  const total = spec.sections === undefined ? dataEnd : shoff + shnum * sizes.shdr;

  const w = new Writer(Buffer.alloc(total), is64, spec.littleEndian ?? true);
  writeHeader(w, spec, { phoff, phnum, shoff, shnum, shstrndx: shnum === 0 ? 0 : shnum - 1, sizes });

  const phdrs: Segment[] = [];
  if (withSegments) {
    phdrs.push({ type: PT_LOAD, offset: 0, vaddr: LOAD_BASE, size: dynstrOffset });
    phdrs.push({ type: PT_LOAD, offset: dynstrOffset, vaddr: dataVaddr, size: dataEnd - dynstrOffset });
    if (spec.interpreter !== undefined)
      phdrs.push({ type: PT_INTERP, offset: interpOffset, vaddr: LOAD_BASE + BigInt(interpOffset), size: interp.length });
    if (hasDynamic)
      phdrs.push({ type: PT_DYNAMIC, offset: dynamicOffset, vaddr: dataVaddr + BigInt(dynamicOffset - dynstrOffset), size: dynamicSize });
  }
  phdrs.forEach((p, i) => writeProgramHeader(w, phoff + i * sizes.phdr, p));
  interp.copy(w.buf, interpOffset);
  dynstr.copy(w.buf, dynstrOffset);

  if (hasDynamic) {
    const tail: [number, number | bigint][] = [[DT.STRTAB, dataVaddr]];
    if (!spec.omitStrsz) tail.push([DT.STRSZ, dynstr.length]);
    [...dynamicEntries, ...tail, [DT.NULL, 0] as [number, number]].forEach(([tag, value], i) => {
      w.word(dynamicOffset + i * sizes.dyn, tag);
      w.word(dynamicOffset + i * sizes.dyn + sizes.dyn / 2, value);
    });
  }

  if (spec.sections !== undefined) {
    for (const s of placed) s.data.copy(w.buf, s.offset);
    shstrtab.copy(w.buf, shstrtabOffset);
    const headers = [
      ...placed.map((s) => ({ name: s.nameOffset, type: 1, offset: s.offset, size: s.data.length })),
      { name: shstrtabName, type: 3, offset: shstrtabOffset, size: shstrtab.length },
    ];
    headers.forEach((h, i) => writeSectionHeader(w, shoff + (i + 1) * sizes.shdr, h));
  }
  return { image: w.buf, layout: { phoff, dynstrOffset, dynamicOffset, shoff, dataVaddr } };
}

function dynamicEntriesFor(spec: ElfSpec, strings: StringTable): [number, number][] {
  const entries: [number, number][] = (spec.needed ?? []).map((n) => [DT.NEEDED, strings.add(n)]);
  if (spec.soname !== undefined) entries.push([DT.SONAME, strings.add(spec.soname)]);
  if (spec.runpath !== undefined) entries.push([DT.RUNPATH, strings.add(spec.runpath)]);
  if (spec.rpath !== undefined) entries.push([DT.RPATH, strings.add(spec.rpath)]);
  if (spec.flags1 !== undefined) entries.push([DT.FLAGS_1, spec.flags1]);
  return entries;
}

interface HeaderFields {
  phoff: number;
  phnum: number;
  shoff: number;
  shnum: number;
  shstrndx: number;
  sizes: { ehdr: number; phdr: number; shdr: number };
}

function writeHeader(w: Writer, spec: ElfSpec, f: HeaderFields): void {
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, w.is64 ? 2 : 1, w.littleEndian ? 1 : 2, 1]).copy(w.buf, 0);
  w.u16(16, spec.type ?? ET.DYN);
  w.u16(18, spec.machine ?? EM.X86_64);
  w.u32(20, 1);
  const o = w.is64 ? { phoff: 32, shoff: 40, ehsize: 52 } : { phoff: 28, shoff: 32, ehsize: 40 };
  w.word(o.phoff, f.phnum === 0 ? 0 : f.phoff);
  w.word(o.shoff, f.shoff);
  [f.sizes.ehdr, f.sizes.phdr, f.phnum, f.sizes.shdr, f.shnum, f.shstrndx].forEach((value, i) => w.u16(o.ehsize + 2 * i, value));
}

interface Segment {
  type: number;
  offset: number;
  vaddr: bigint;
  size: number;
}

function writeProgramHeader(w: Writer, at: number, p: Segment): void {
  w.u32(at, p.type);
  if (w.is64) {
    w.u32(at + 4, 4);
    [p.offset, p.vaddr, p.vaddr, p.size, p.size].forEach((value, i) => w.word(at + 8 + 8 * i, value));
  } else {
    [p.offset, p.vaddr, p.vaddr, p.size, p.size, 4].forEach((value, i) => w.word(at + 4 + 4 * i, value));
  }
}

function writeSectionHeader(w: Writer, at: number, h: { name: number; type: number; offset: number; size: number }): void {
  w.u32(at, h.name);
  w.u32(at + 4, h.type);
  w.word(at + (w.is64 ? 24 : 16), h.offset);
  w.word(at + (w.is64 ? 32 : 20), h.size);
}

class StringTable {
  private readonly parts: string[] = [""];
  private length = 1;

  add(value: string): number {
    const offset = this.length;
    this.parts.push(value);
    this.length += Buffer.byteLength(value) + 1;
    return offset;
  }

  bytes(): Buffer {
    return Buffer.concat(this.parts.map((p) => Buffer.from(`${p}\0`)));
  }
}

class Writer {
  constructor(
    readonly buf: Buffer,
    readonly is64: boolean,
    readonly littleEndian: boolean,
  ) {}

  u16(at: number, value: number): void {
    if (this.littleEndian) this.buf.writeUInt16LE(value, at);
    else this.buf.writeUInt16BE(value, at);
  }

  u32(at: number, value: number): void {
    if (this.littleEndian) this.buf.writeUInt32LE(value, at);
    else this.buf.writeUInt32BE(value, at);
  }

  word(at: number, value: number | bigint): void {
    if (!this.is64) this.u32(at, Number(value));
    else if (this.littleEndian) this.buf.writeBigUInt64LE(BigInt(value), at);
    else this.buf.writeBigUInt64BE(BigInt(value), at);
  }
}

function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}
