/**
 * Hole 9 end to end: a version edited in kiln.lock (its sha256 kept) used to pass `bake --frozen`
 * with the same digest, because cached layers recorded the lock's own entries as used. Now the
 * edit is refused with and without --frozen, and a correct lock still bakes the same digest.
 */
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { bake } from "../../src/bake/bake.js";
import { InputError } from "../../src/errors.js";
import type { Lock } from "../../src/packages/lock.js";
import { quiet, repo, sharedHome } from "./harness.js";

describe("kiln.lock is verified against the packages' bytes", () => {
  it("refuses an edited version on warm caches, and bakes a correct lock to the same digest", async () => {
    execFileSync("make", ["-s", "-C", path.join(repo, "examples", "hello-native")]);
    const app = mkdtempSync(path.join(os.tmpdir(), "kiln-lock-trust-"));
    cpSync(path.join(repo, "examples", "hello-native"), app, { recursive: true });
    const home = sharedHome();
    const first = await bake(app, { name: "lock-trust", version: "1.0.0" }, home, quiet);
    const again = await bake(app, { name: "lock-trust", version: "1.0.0" }, home, quiet, { frozen: true });
    expect(again.image.digest).toBe(first.image.digest);

    const lockFile = path.join(app, "kiln.lock");
    const good = readFileSync(lockFile, "utf8");
    const lock = JSON.parse(good) as Lock;
    const busybox = lock.packages.find((p) => p.name === "busybox-static")!;
    const forged = { ...lock, packages: lock.packages.map((p) => (p === busybox ? { ...p, version: `${p.version}+forged1` } : p)) };
    writeFileSync(lockFile, `${JSON.stringify(forged, null, 2)}\n`);
    for (const frozen of [true, false]) {
      const error = await bake(app, { name: "lock-trust", version: "1.0.0" }, home, quiet, { frozen }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, `frozen=${frozen}`).toBeInstanceOf(InputError);
      expect((error as Error).message).toContain("busybox-static");
      expect((error as Error).message).toContain(`${busybox.version}+forged1`);
      expect((error as Error).message).toContain(busybox.version);
    }
    expect(readFileSync(lockFile, "utf8")).toContain("+forged1"); // a refused bake rewrites nothing
    writeFileSync(lockFile, good);
    const restored = await bake(app, { name: "lock-trust", version: "1.0.0" }, home, quiet, { frozen: true });
    expect(restored.image.digest).toBe(first.image.digest);
  }, 900_000);
});
