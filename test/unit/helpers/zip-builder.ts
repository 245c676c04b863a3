// A minimal zip writer for test jars (no CRCs: kiln's reader does not check them). Entries can
// carry a Unix mode (a "made by Unix" central record, as zip -y writes for symlinks) and raw
// general-purpose flags, so tests can craft the hostile archives a real zip tool would not make.
import { deflateRawSync } from "node:zlib";

export interface ZipInput {
  name: string;
  data: Buffer | string;
  deflate?: boolean;
  /** st_mode in the external attributes' high 16 bits (0o120777 = a symlink). */
  unixMode?: number;
  /** Compression method to declare instead of the real one (e.g. 12, bzip2). */
  method?: number;
  /** Uncompressed size to declare instead of the real one (a lying header). */
  declaredSize?: number;
  flags?: number;
}

export function makeZip(inputs: readonly ZipInput[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const input of inputs) {
    const raw = Buffer.isBuffer(input.data) ? input.data : Buffer.from(input.data);
    const body = input.deflate ? deflateRawSync(raw) : raw;
    const method = input.method ?? (input.deflate ? 8 : 0);
    const size = input.declaredSize ?? raw.length;
    const name = Buffer.from(input.name);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(input.flags ?? 0, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(input.unixMode !== undefined ? (3 << 8) | 20 : 20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(input.flags ?? 0, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(size, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(input.unixMode !== undefined ? (input.unixMode << 16) >>> 0 : 0, 38);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, body);
    centrals.push(central, name);
    offset += local.length + name.length + body.length;
  }
  const dir = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(inputs.length, 8);
  end.writeUInt16LE(inputs.length, 10);
  end.writeUInt32LE(dir.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, dir, end]);
}

/** The first bytes of a class file of the given major version (61 = Java 17). */
export function classFile(major: number): Buffer {
  const b = Buffer.alloc(64);
  b.writeUInt32BE(0xcafebabe, 0);
  b.writeUInt16BE(0, 4);
  b.writeUInt16BE(major, 6);
  return b;
}
