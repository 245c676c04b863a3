// Issue 12, hole 5: a symlink in the app directory whose target lies outside it must be refused
// by every baker, naming the link and where it points, never followed; links that stay inside
// the app are kept. The app sits at base/app next to base/canary, which holds "host" secrets.
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, readlink, symlink, writeFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { baker as javaBaker } from "../../bakers/java/index.js";
import { baker as nativeBaker } from "../../bakers/native/index.js";
import { baker as nodeBaker } from "../../bakers/node/index.js";
import { baker as pythonBaker } from "../../bakers/python/index.js";
import type { Baker, Runtime } from "../../src/bake/baker.js";
import type { BakeContext } from "../../src/bake/context.js";
import type { Spec } from "../../src/config/types.js";
import { InputError } from "../../src/errors.js";

const SECRET = "-----BEGIN OPENSSH PRIVATE KEY----- kiln-canary";
let base: string;
let app: string;
let canary: string;
let dest: string;
let ctx: BakeContext;

beforeEach(async () => {
  base = await mkdtemp(path.join(os.tmpdir(), "kiln-app-links-"));
  app = path.join(base, "app");
  canary = path.join(base, "canary");
  dest = path.join(base, "staged");
  await mkdir(app);
  await mkdir(canary);
  await mkdir(dest);
  await writeFile(path.join(canary, "id_ed25519"), SECRET);
  await writeFile(path.join(canary, "settings.py"), `KEY = ${JSON.stringify(SECRET)}\n`);
  await writeFile(path.join(canary, "package.json"), JSON.stringify({ name: "addon", version: "1.0.0" }));
  await writeFile(path.join(canary, "index.js"), `module.exports = ${JSON.stringify(SECRET)};\n`);
  await chmod(path.join(canary, "id_ed25519"), 0o600);
  await mkdir(path.join(base, "cache"));
  await mkdir(path.join(base, "scratch"));
  ctx = { home: { cache: path.join(base, "cache") }, scratch: path.join(base, "scratch"), used: [] } as unknown as BakeContext;
});

afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

function spec(): Spec {
  return { appDir: app, appFile: undefined } as unknown as Spec;
}

const noRuntime: Runtime = { key: "test", files: [], packages: [], path: [] };

async function stage(baker: Baker, runtime: Runtime = noRuntime): Promise<unknown> {
  return baker.stageApp(spec(), ctx, dest, runtime).then(
    () => undefined,
    (error: unknown) => error,
  );
}

/** Every byte staged, links followed the way the image's later stages would. */
async function stagedText(dir: string): Promise<string> {
  let text = "";
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const full = path.join(dir, name);
    const info = await lstat(full);
    if (info.isDirectory()) text += await stagedText(full);
    else if (info.isFile()) text += (await readFile(full)).toString("latin1");
  }
  return text;
}

function expectRefusal(error: unknown, link: string): void {
  expect(error).toBeInstanceOf(InputError);
  expect((error as Error).message).toContain(link);
  expect((error as Error).message).toContain(canary);
}

describe("symlinks out of the app directory are refused by every baker", () => {
  it("native: a directory link to host keys", async () => {
    await writeFile(path.join(app, "server"), "\x7fELF");
    await symlink(canary, path.join(app, "keys"));
    expectRefusal(await stage(nativeBaker), "keys");
  });

  it("java: a file link to a host key", async () => {
    await writeFile(path.join(app, "app.jar"), "PK");
    await symlink(path.join(canary, "id_ed25519"), path.join(app, "id_ed25519"));
    expectRefusal(await stage(javaBaker), "id_ed25519");
  });

  it("python: a module linked to a host file is neither copied nor compiled", async () => {
    await writeFile(path.join(app, "app.py"), "import settings\n");
    await symlink("../canary/settings.py", path.join(app, "settings.py"));
    const runtime: Runtime = { ...noRuntime, files: [{ dest: "/usr/bin/python3", source: "python3", mode: 0o755 }] };
    const error = await stage(pythonBaker, runtime);
    expectRefusal(error, "settings.py");
    expect(await stagedText(dest)).not.toContain(SECRET);
  });

  it("node: a file: dependency that is a link to a host directory", async () => {
    await writeFile(
      path.join(app, "package.json"),
      JSON.stringify({ name: "web", version: "1.0.0", dependencies: { addon: "file:./addon" } }),
    );
    await writeFile(path.join(app, "server.js"), "require('addon');\n");
    await symlink(canary, path.join(app, "addon"));
    const error = await stage(nodeBaker);
    expectRefusal(error, "addon");
    expect(await stagedText(dest)).not.toContain(SECRET);
  });

  it("a chain of links that are each inside the app but end outside it (d -> ., e -> d/..)", async () => {
    await writeFile(path.join(app, "server"), "\x7fELF");
    await symlink(".", path.join(app, "d"));
    await symlink("d/../canary", path.join(app, "e"));
    expectRefusal(await stage(nativeBaker), "e");
  });

  it("links that stay inside the app are kept as links", async () => {
    await mkdir(path.join(app, "static"));
    await writeFile(path.join(app, "static", "index.html"), "hi");
    await writeFile(path.join(app, "server"), "\x7fELF");
    await symlink("static", path.join(app, "current"));
    await symlink("../server", path.join(app, "static", "up"));
    expect(await stage(nativeBaker)).toBeUndefined();
    expect(await readlink(path.join(dest, "current"))).toBe("static");
    expect(await readlink(path.join(dest, "static", "up"))).toBe("../server");
  });
});
