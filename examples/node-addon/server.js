// A Node.js HTTP server whose answer comes partly from a C++ addon (kiln-probe-addon), which
// kiln bake compiles with node-gyp against the image's Node headers.
const http = require("node:http");
const addon = require("kiln-probe-addon");

const port = Number(process.env.PORT || 8080);

const server = http.createServer((req, res) => {
  if (req.url === "/healthz") {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("ok\n");
    return;
  }
  const native = addon.probe();
  const body = {
    message: process.env.GREETING || "hello from kiln (node addon)",
    image: process.env.KILN_IMAGE,
    env: process.env.KILN_ENV,
    uid: native.uid,
    runtime: "node",
    node: process.version,
    rootWrite: native.rootWrite,
    shells: native.shells,
    compiler: native.compiler,
  };
  res.writeHead(200, { "content-type": "application/json" });
  res.end(`${JSON.stringify(body)}\n`);
});

server.listen(port, "0.0.0.0", () => console.log(`node-addon listening on ${port}`));
process.on("SIGTERM", () => {
  console.log("node-addon: SIGTERM, closing");
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
});
