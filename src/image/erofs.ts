/** Read-only root images: EROFS with lz4hc, fixed timestamp, root-owned, UUID from content. */
import { stat } from "node:fs/promises";
import { run } from "../exec.js";

/** Content-derived UUID (from a hex key), so two bakes of the same tree give the same bytes. */
export function uuidFromKey(hexKey: string): string {
  const h = hexKey.padEnd(32, "0");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export async function makeErofs(sourceDir: string, outFile: string, hexKey: string): Promise<number> {
  await run(["mkfs.erofs", "--quiet", "-zlz4hc,12", "-T0", "--all-root", `-U${uuidFromKey(hexKey)}`, "-x-1", outFile, sourceDir]);
  return (await stat(outFile)).size;
}
