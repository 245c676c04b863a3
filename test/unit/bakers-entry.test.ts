// Issue 18 item 11: the start file a command names must exist in the app; what each baker
// checks (and what it leaves alone: node_modules, -m modules, -e code) from the files alone.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Baker } from "../../src/bake/baker.js";
import { loadBakers } from "../../src/bake/bakers.js";
import type { Spec } from "../../src/config/types.js";

let root: string;
let bakers: Baker[];
let n = 0;
beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "kiln-entry-test-"));
  bakers = await loadBakers();
});
afterAll(() => rm(root, { recursive: true, force: true }));

async function problems(bakerName: string, cmd: string[], files: Record<string, string>): Promise<readonly string[]> {
  const dir = path.join(root, `app${++n}`);
  for (const [rel, text] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
    await writeFile(path.join(dir, rel), text);
  }
  await mkdir(dir, { recursive: true });
  const baker = bakers.find((b) => b.name === bakerName)!;
  return (await baker.entryProblems?.({ appDir: dir, appFile: undefined, cmd } as unknown as Spec)) ?? [];
}

describe("node start files", () => {
  it("accept a script that exists, after options and their values, and node's own resolution of the name", async () => {
    expect(await problems("node", ["node", "-r", "dotenv/config", "--enable-source-maps", "server.js"], { "server.js": "" })).toEqual([]);
    expect(await problems("node", ["node", "server"], { "server.js": "" })).toEqual([]);
    expect(await problems("node", ["node", "lib"], { "lib/index.js": "" })).toEqual([]);
    expect(await problems("node", ["/usr/bin/node", "/app/server.mjs"], { "server.mjs": "" })).toEqual([]);
  });

  it("leave alone what the bake installs or what is not a file", async () => {
    expect(await problems("node", ["node", "node_modules/next/dist/bin/next", "start"], {})).toEqual([]);
    expect(await problems("node", ["node", "-e", "require('http')"], {})).toEqual([]);
  });

  it("name the missing file, the command and the app directory", async () => {
    const [line] = await problems("node", ["node", "--import=tsx", "src/main.ts"], {});
    expect(line).toMatch(/^cmd: node --import=tsx src\/main\.ts: src\/main\.ts does not exist in .*kiln-entry-test-/);
  });
});

describe("python start files", () => {
  it("accept a script or a directory with __main__.py; leave -m modules alone", async () => {
    expect(await problems("python", ["python3", "-u", "app.py"], { "app.py": "" })).toEqual([]);
    expect(await problems("python", ["python3", "-u", "."], { "__main__.py": "" })).toEqual([]);
    expect(await problems("python", ["python3", "-u", "-m", "gunicorn", "app:app"], {})).toEqual([]);
  });

  it("name a missing script", async () => {
    expect(await problems("python", ["python3", "-W", "ignore", "srv.py"], { "app.py": "" })).toEqual([
      expect.stringMatching(/^cmd: python3 -W ignore srv\.py: srv\.py does not exist in /),
    ]);
  });
});

describe("java start files", () => {
  it("name a missing jar", async () => {
    expect(await problems("java", ["java", "-XX:MaxRAMPercentage=75", "-jar", "build/libs/app.jar"], {})).toEqual([
      expect.stringMatching(/^cmd: java -XX:MaxRAMPercentage=75 -jar build\/libs\/app\.jar: build\/libs\/app\.jar does not exist in /),
    ]);
  });
});
