// Defence in depth (issue 12): the native baker extracts tarballs in the build sandbox, so even a
// flaw in the extractor cannot write on the host. The archive here holds a symlink to a host
// directory and then a file written through it (the escape of hole 1): whether the extractor
// refuses it or not, nothing may appear in the host directory.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { pack } from "tar-stream";
import { afterAll, describe, expect, it } from "vitest";
import { extractArchive } from "../../bakers/native/extract.js";
import type { BakeContext } from "../../src/bake/context.js";
import { openSandbox } from "../../src/sandbox.js";

const temp = mkdtempSync(path.join(os.tmpdir(), "kiln-sandbox-extract-"));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

async function escapingTarball(file: string, hostDir: string): Promise<void> {
  const p = pack();
  p.entry({ name: "esc", type: "symlink", linkname: hostDir });
  p.entry({ name: "esc/pwned", type: "file", mode: 0o644 }, "written through a link\n");
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of p) chunks.push(chunk as Buffer);
  writeFileSync(file, Buffer.concat(chunks));
}

describe("build sandbox: tarball extraction", () => {
  it("a file written through an archive's symlink to a host directory never reaches the host", async () => {
    const hostDir = path.join(temp, "host-dir");
    mkdirSync(hostDir);
    const file = path.join(temp, "escape.tar");
    await escapingTarball(file, hostDir);
    const sandbox = await openSandbox({ enabled: process.env.KILN_NO_SANDBOX !== "1", warn: () => undefined });
    const ctx = { sandbox } as unknown as BakeContext;
    await extractArchive(ctx, file, path.join(temp, "out")).catch(() => undefined);
    expect(existsSync(path.join(hostDir, "pwned"))).toBe(false);
  });
});
