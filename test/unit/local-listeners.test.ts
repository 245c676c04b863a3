// The kernel's TCP table as the local provider reads it to observe HAProxy's real port (issue 18, item 2).
import { describe, expect, it } from "vitest";
import { parseProcNetTcp } from "../../src/providers/local/listeners.js";

// Recorded from /proc/net/tcp on the build machine (Debian 12): a listener on 127.0.0.1:38739,
// one on 0.0.0.0:2024, and an established connection that is no listener.
const table = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:9753 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1833227 1 000000004c07ba86 100 0 0 10 0
   1: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1521 1 0000000075819a2e 100 0 0 10 0
   2: 0100007F:9753 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 1833300 1 0000000000000000 20 4 30 10 -1
`;

describe("listeners in /proc/net/tcp", () => {
  it("reads address, port and inode of LISTEN rows only", () => {
    expect(parseProcNetTcp(table)).toEqual([
      { address: "127.0.0.1", port: 38739, inode: 1833227 },
      { address: "0.0.0.0", port: 2024, inode: 1521 },
    ]);
  });
  it("an empty or foreign text gives nothing", () => {
    expect(parseProcNetTcp("")).toEqual([]);
    expect(parseProcNetTcp("garbage\nmore garbage")).toEqual([]);
  });
});
