/**
 * The classic DOS partition table. We use MBR rather than GPT because syslinux's mbr.bin
 * chain-loads the active partition on BIOS machines with no further setup, and every
 * hypervisor and cloud still boots it.
 */

export interface MbrPartition {
  bootable: boolean;
  type: number;
  startLba: number;
  sectors: number;
}

const SECTOR = 512;
const BOOT_CODE_MAX = 440;
const ENTRY_OFFSET = 446;
const ENTRY_SIZE = 16;
const MAX_U32 = 0xffffffff;
const HEADS = 255;
const SECTORS_PER_TRACK = 63;
const CHS_LIMIT = 1024 * HEADS * SECTORS_PER_TRACK;

export function buildMbr(opts: { bootCode?: Buffer; diskSignature: number; partitions: readonly MbrPartition[] }): Buffer {
  validateMbr(opts);
  const sector = Buffer.alloc(SECTOR);
  opts.bootCode?.copy(sector, 0);
  sector.writeUInt32LE(opts.diskSignature, 440);
  sector.writeUInt16LE(0, 444);
  opts.partitions.forEach((p, i) => writeEntry(sector, ENTRY_OFFSET + i * ENTRY_SIZE, p));
  sector[510] = 0x55;
  sector[511] = 0xaa;
  return sector;
}

export function parseMbr(sector: Buffer): { diskSignature: number; partitions: MbrPartition[] } {
  if (sector.length < SECTOR) throw new Error(`MBR: need ${SECTOR} bytes, got ${sector.length}`);
  if (sector[510] !== 0x55 || sector[511] !== 0xaa) throw new Error("MBR: missing 0x55AA boot signature");
  const partitions: MbrPartition[] = [];
  for (let i = 0; i < 4; i++) {
    const off = ENTRY_OFFSET + i * ENTRY_SIZE;
    const status = sector.readUInt8(off);
    const type = sector.readUInt8(off + 4);
    if (type === 0) continue;
    if (status !== 0x00 && status !== 0x80) {
      throw new Error(`MBR: partition ${i + 1} has invalid status byte 0x${status.toString(16)}`);
    }
    partitions.push({
      bootable: status === 0x80,
      type,
      startLba: sector.readUInt32LE(off + 8),
      sectors: sector.readUInt32LE(off + 12),
    });
  }
  return { diskSignature: sector.readUInt32LE(440), partitions };
}

/** What the kernel shows as PARTUUID= for partitions of an MBR disk. */
export function partUuid(diskSignature: number, partitionNumber: number): string {
  if (!isU32(diskSignature)) throw new Error(`invalid disk signature ${diskSignature}`);
  if (!Number.isInteger(partitionNumber) || partitionNumber < 1 || partitionNumber > 255) {
    throw new Error(`invalid partition number ${partitionNumber}`);
  }
  return `${hex(diskSignature, 8)}-${hex(partitionNumber, 2)}`;
}

/**
 * CHS address in the 3-byte on-disk form (head, sector | cylinder high bits, cylinder low).
 * Past what CHS can address we write the conventional "use LBA" sentinel.
 */
export function encodeChs(lba: number): [number, number, number] {
  if (lba >= CHS_LIMIT) return [0xfe, 0xff, 0xff];
  const cylinder = Math.floor(lba / (HEADS * SECTORS_PER_TRACK));
  const rest = lba % (HEADS * SECTORS_PER_TRACK);
  const head = Math.floor(rest / SECTORS_PER_TRACK);
  const sector = (rest % SECTORS_PER_TRACK) + 1;
  return [head, sector | ((cylinder >> 2) & 0xc0), cylinder & 0xff];
}

function writeEntry(buf: Buffer, off: number, p: MbrPartition): void {
  buf[off] = p.bootable ? 0x80 : 0x00;
  buf.set(encodeChs(p.startLba), off + 1);
  buf[off + 4] = p.type;
  buf.set(encodeChs(p.startLba + p.sectors - 1), off + 5);
  buf.writeUInt32LE(p.startLba, off + 8);
  buf.writeUInt32LE(p.sectors, off + 12);
}

function validateMbr(opts: { bootCode?: Buffer; diskSignature: number; partitions: readonly MbrPartition[] }): void {
  if (opts.bootCode !== undefined && opts.bootCode.length > BOOT_CODE_MAX) {
    throw new Error(`MBR: boot code is ${opts.bootCode.length} bytes; at most ${BOOT_CODE_MAX} fit before the disk signature`);
  }
  if (!isU32(opts.diskSignature)) throw new Error(`MBR: disk signature ${opts.diskSignature} is not a 32-bit unsigned integer`);
  if (opts.partitions.length > 4) throw new Error(`MBR: ${opts.partitions.length} partitions given; a DOS table holds at most 4`);
  opts.partitions.forEach((p, i) => validatePartition(p, i + 1));
  if (opts.partitions.filter((p) => p.bootable).length > 1) {
    throw new Error("MBR: more than one partition is marked bootable");
  }
  const byStart = opts.partitions.map((p, i) => ({ ...p, n: i + 1 })).sort((a, b) => a.startLba - b.startLba);
  for (let i = 1; i < byStart.length; i++) {
    const prev = byStart[i - 1]!;
    const cur = byStart[i]!;
    if (prev.startLba + prev.sectors > cur.startLba) {
      throw new Error(
        `MBR: partition ${prev.n} (sectors ${prev.startLba}..${prev.startLba + prev.sectors - 1}) overlaps partition ${cur.n} (starts at ${cur.startLba})`,
      );
    }
  }
}

function validatePartition(p: MbrPartition, n: number): void {
  if (!Number.isInteger(p.type) || p.type < 1 || p.type > 0xff) {
    throw new Error(`MBR: partition ${n} has invalid type ${p.type} (1..255; 0 means unused)`);
  }
  if (!Number.isInteger(p.startLba) || p.startLba < 1) {
    throw new Error(`MBR: partition ${n} starts at sector ${p.startLba}; it must be an integer ≥ 1 (sector 0 is the MBR)`);
  }
  if (!Number.isInteger(p.sectors) || p.sectors < 1) {
    throw new Error(`MBR: partition ${n} has ${p.sectors} sectors; it must be a positive integer`);
  }
  if (p.startLba + p.sectors - 1 > MAX_U32) {
    throw new Error(`MBR: partition ${n} ends past sector 2^32-1 (2 TiB); a DOS table cannot address it`);
  }
}

function isU32(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= MAX_U32;
}

function hex(n: number, width: number): string {
  return n.toString(16).padStart(width, "0");
}
