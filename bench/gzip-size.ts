/** The gzip size of a file (level 6, what `gzip` picks), streamed: disks are hundreds of MiB. */
import { createReadStream } from "node:fs";
import { createGzip } from "node:zlib";

export async function gzipSize(file: string): Promise<number> {
  let bytes = 0;
  const gz = createGzip({ level: 6 });
  gz.on("data", (chunk: Buffer) => (bytes += chunk.length));
  await new Promise<void>((resolve, reject) => {
    createReadStream(file).pipe(gz).on("end", resolve).on("error", reject);
  });
  return bytes;
}
