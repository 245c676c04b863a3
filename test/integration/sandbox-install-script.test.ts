// Defence in depth (issue 12): a dependency's install script is the app's code, and npm runs it
// at bake time on the build host. An approved install script (allowScripts, as in
// examples/node-addon) that tries to read the host's AWS credentials and to write a file outside
// its install directory must fail at both, and the bake must fail showing the script's own report.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { bake } from "../../src/bake/bake.js";
import { KilnError } from "../../src/errors.js";
import { quiet, sharedHome } from "./harness.js";

const home = sharedHome();
const temp = mkdtempSync(path.join(os.tmpdir(), "kiln-sandbox-test-"));
const fakeHome = path.join(temp, "home");
const outside = path.join(temp, "outside");
const app = path.join(temp, "app");
const SECRET = "aws_secret_access_key = kiln-test-not-a-real-secret";
const savedHome = process.env.HOME;
afterAll(() => {
  process.env.HOME = savedHome;
  rmSync(temp, { recursive: true, force: true });
});

/** The install script: tries each attack, prints what happened, and fails the install. */
function stealScript(targets: { read: string[]; write: string[] }): string {
  return `const fs = require("fs");
const report = [];
for (const file of ${JSON.stringify(targets.read)}) {
  try { report.push("READ-OK " + file + " " + fs.readFileSync(file, "utf8").trim()); } catch (e) { report.push("read-denied " + file + " " + e.code); }
}
for (const file of ${JSON.stringify(targets.write)}) {
  try { fs.writeFileSync(file, "written by an install script"); report.push("WRITE-OK " + file); } catch (e) { report.push("write-denied " + file + " " + e.code); }
}
console.error(report.join("\\n"));
process.exit(1);
`;
}

const realCredentials = path.join(os.userInfo().homedir, ".aws", "credentials");

describe("build sandbox: an approved install script cannot reach the host", () => {
  it("reading ~/.aws/credentials and writing outside its directory both fail, and the bake reports the script's failure", async () => {
    mkdirSync(path.join(fakeHome, ".aws"), { recursive: true });
    writeFileSync(path.join(fakeHome, ".aws", "credentials"), `[default]\n${SECRET}\n`);
    mkdirSync(outside, { recursive: true });
    mkdirSync(path.join(app, "evil"), { recursive: true });
    const read = [
      path.join(fakeHome, ".aws", "credentials"),
      // The real user's credentials too, when this host has them (never written or changed here).
      ...(existsSync(realCredentials) ? [realCredentials] : []),
      "/etc/shadow",
    ];
    const write = [path.join(outside, "pwned"), path.join(app, "pwned"), path.join(fakeHome, "pwned")];
    writeFileSync(
      path.join(app, "evil", "package.json"),
      JSON.stringify({ name: "evil", version: "1.0.0", scripts: { install: "node steal.js" } }),
    );
    writeFileSync(path.join(app, "evil", "steal.js"), stealScript({ read, write }));
    writeFileSync(
      path.join(app, "package.json"),
      JSON.stringify({
        name: "sandboxed",
        version: "0.1.0",
        main: "server.js",
        dependencies: { evil: "file:./evil" },
        allowScripts: { "file:./evil": true },
      }),
    );
    writeFileSync(path.join(app, "server.js"), "require('http').createServer((q, s) => s.end('ok')).listen(8080);\n");

    process.env.HOME = fakeHome;
    const outcome = await bake(app, {}, home, quiet).catch((error: unknown) => error);
    process.env.HOME = savedHome;

    // Nothing was written on the host, whatever the bake says.
    for (const file of write) expect(existsSync(file), file).toBe(false);
    expect(outcome).toBeInstanceOf(KilnError);
    const message = (outcome as KilnError).message;
    // The script ran (its report is in the error) and every attempt was denied.
    for (const file of read) expect(message).toContain(`read-denied ${file}`);
    for (const file of write) expect(message).toContain(`write-denied ${file}`);
    expect(message).not.toContain("READ-OK");
    expect(message).not.toContain("kiln-test-not-a-real-secret");
    expect(message).toMatch(/npm install .*in the build sandbox/);
  }, 900_000);
});
