/** Bytes a directory tree takes on disk: allocated blocks, so a sparse raw disk counts what it really uses. */
import { lstat, readdir } from "node:fs/promises";
import path from "node:path";

export async function diskUsage(root: string): Promise<number> {
  const info = await lstat(root).catch(() => undefined);
  if (!info) return 0;
  // st_blocks is in 512-byte units whatever the file system's block size.
  let bytes = info.blocks * 512;
  if (info.isDirectory()) for (const name of await readdir(root)) bytes += await diskUsage(path.join(root, name));
  return bytes;
}
