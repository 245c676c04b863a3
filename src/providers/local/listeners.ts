/**
 * What a process really listens on, read from /proc (Linux): the socket inodes among its open
 * files, matched against the kernel's TCP tables. The local provider observes HAProxy this way
 * instead of trusting the config it once wrote.
 */
import { readFile, readdir, readlink } from "node:fs/promises";

export interface TcpListener {
  /** Dotted IPv4 or a hex IPv6 address, as the kernel shows it. */
  readonly address: string;
  readonly port: number;
  readonly inode: number;
}

/** `/proc/net/tcp` (or tcp6) rows in state 0A (LISTEN). Pure. */
export function parseProcNetTcp(text: string): TcpListener[] {
  return text
    .split("\n")
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f.length >= 10 && f[3] === "0A")
    .map((f) => {
      const [hexAddress = "", hexPort = "0"] = f[1]!.split(":");
      // IPv4 addresses are one little-endian 32-bit word.
      const address =
        hexAddress.length === 8
          ? (hexAddress.match(/../g) ?? [])
              .map((b) => Number.parseInt(b, 16))
              .reverse()
              .join(".")
          : hexAddress;
      return { address, port: Number.parseInt(hexPort, 16), inode: Number(f[9]) };
    });
}

/** The TCP ports `pid` listens on; empty when its files cannot be read (gone, or not ours). */
export async function listeningPorts(pid: number): Promise<TcpListener[]> {
  const fdDir = `/proc/${pid}/fd`;
  const fds = await readdir(fdDir).catch(() => [] as string[]);
  const inodes = new Set<number>();
  for (const fd of fds) {
    const link = await readlink(`${fdDir}/${fd}`).catch(() => "");
    const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1];
    if (inode) inodes.add(Number(inode));
  }
  const tables = await Promise.all(["tcp", "tcp6"].map((t) => readFile(`/proc/${pid}/net/${t}`, "utf8").catch(() => "")));
  return tables.flatMap(parseProcNetTcp).filter((l) => inodes.has(l.inode));
}
