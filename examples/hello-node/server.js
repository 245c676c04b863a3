// A plain HTTP server. It reads its port from PORT (kiln sets it from the image's port),
// reports what the image told it, and exits cleanly on SIGTERM so shutdowns are graceful.
const http = require("node:http");
const os = require("node:os");

const port = Number(process.env.PORT || 8080);
const started = Date.now();

const server = http.createServer((req, res) => {
  if (req.url === "/healthz") {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("ok\n");
    return;
  }
  const body = {
    message: process.env.GREETING || "hello from kiln",
    image: process.env.KILN_IMAGE,
    env: process.env.KILN_ENV,
    uid: process.getuid(),
    node: process.version,
    hostname: os.hostname(),
    uptimeMs: Date.now() - started,
  };
  res.writeHead(200, { "content-type": "application/json" });
  res.end(`${JSON.stringify(body)}\n`);
});

server.listen(port, "0.0.0.0", () => console.log(`hello-node listening on ${port}`));

process.on("SIGTERM", () => {
  console.log("hello-node: SIGTERM, closing");
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
});
