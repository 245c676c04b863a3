// An ES-module HTTP server compiled from TypeScript (npm run build -> dist/). It uses ESM-only
// features on purpose: static imports with .js specifiers, import.meta.url and top-level await.
import { readFile } from "node:fs/promises";
import http from "node:http";
import { reachableShells, rootWrite } from "./probe.js";

interface PackageJson {
  name: string;
  version: string;
  type?: string;
}

const pkg = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8")) as PackageJson;
const port = Number(process.env.PORT ?? 8080);

const server = http.createServer(async (req, res) => {
  if (req.url === "/healthz") {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("ok\n");
    return;
  }
  const body = {
    message: process.env.GREETING ?? "hello from kiln (node esm)",
    image: process.env.KILN_IMAGE,
    env: process.env.KILN_ENV,
    uid: process.getuid?.(),
    runtime: "node",
    node: process.version,
    module: import.meta.url,
    packageType: pkg.type,
    rootWrite: await rootWrite(),
    shells: reachableShells(),
  };
  res.writeHead(200, { "content-type": "application/json" });
  res.end(`${JSON.stringify(body)}\n`);
});

server.listen(port, "0.0.0.0", () => console.log(`${pkg.name} listening on ${port}`));
process.on("SIGTERM", () => {
  console.log(`${pkg.name}: SIGTERM, closing`);
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
});
