/** An independent newc reader for tests, strict about magic, alignment and the trailer. */
import { expect } from "vitest";

export interface Parsed {
  name: string;
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  mtime: number;
  rdevMajor: number;
  rdevMinor: number;
  data: Buffer;
  headerOffset: number;
}

/** Independent newc reader, strict about magic and alignment. */
export function readNewc(buf: Buffer): Parsed[] {
  const out: Parsed[] = [];
  let off = 0;
  for (;;) {
    expect(off % 4).toBe(0);
    expect(buf.toString("ascii", off, off + 6)).toBe("070701");
    const field = (i: number): number => parseInt(buf.toString("ascii", off + 6 + i * 8, off + 14 + i * 8), 16);
    const nameSize = field(11);
    const fileSize = field(6);
    const name = buf.toString("utf8", off + 110, off + 110 + nameSize - 1);
    expect(buf[off + 110 + nameSize - 1]).toBe(0);
    const dataStart = align4(off + 110 + nameSize);
    const entry: Parsed = {
      name,
      ino: field(0),
      mode: field(1),
      uid: field(2),
      gid: field(3),
      nlink: field(4),
      mtime: field(5),
      rdevMajor: field(9),
      rdevMinor: field(10),
      data: buf.subarray(dataStart, dataStart + fileSize),
      headerOffset: off,
    };
    expect(field(12)).toBe(0);
    out.push(entry);
    off = align4(dataStart + fileSize);
    if (name === "TRAILER!!!") break;
  }
  expect(off).toBe(buf.length);
  return out;
}

function align4(n: number): number {
  return Math.ceil(n / 4) * 4;
}
