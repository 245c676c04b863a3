/**
 * A Node app with a node_modules of many tiny files (issue 16, item 5): `packages` packages of
 * `filesPerPackage` files each (package.json, index.js, lib/*.js), plus server.js. Content is
 * derived from the names, so two trees made with the same numbers are byte-identical.
 */
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";

export interface BigTree {
  readonly root: string;
  readonly files: number;
}

export async function makeBigNodeApp(root: string, packages = 500, filesPerPackage = 100): Promise<BigTree> {
  await mkdir(root, { recursive: true });
  await writeFile(path.join(root, "server.js"), "require('pkg-0');\n");
  await writeFile(path.join(root, "package.json"), JSON.stringify({ name: "big", version: "1.0.0", main: "server.js" }));
  let files = 2;
  for (let p = 0; p < packages; p++) {
    const dir = path.join(root, "node_modules", `pkg-${p}`);
    await mkdir(path.join(dir, "lib"), { recursive: true });
    const writes = [
      writeFile(path.join(dir, "package.json"), JSON.stringify({ name: `pkg-${p}`, version: `1.${p}.0`, main: "index.js" })),
      writeFile(path.join(dir, "index.js"), `module.exports = require('./lib/f-0.js');\n`),
    ];
    for (let f = 0; f < filesPerPackage - 2; f++)
      writes.push(writeFile(path.join(dir, "lib", `f-${f}.js`), `exports.n = ${p * filesPerPackage + f};\n`));
    await Promise.all(writes);
    files += filesPerPackage;
  }
  return { root, files };
}
