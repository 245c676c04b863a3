// The native baker's tarball input, for real: a tarball of files (a static C server in bin/ and a
// data file it serves, under one top-level directory as release tarballs have) is baked with
// `--cmd`, booted in QEMU (BIOS, TCG), and must answer HTTP with the data file and the boot-time
// env (-e, --kiln-env), as uid 1000, on a read-only root without any shell.
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { bake } from "../../src/bake/bake.js";
import { boot, httpGet, quiet, sharedHome, trackRuns } from "./harness.js";

const home = sharedHome();
const running = trackRuns();

// One request per connection; answers every path with what the process sees of the image.
const SERVER_C = String.raw`
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
static const char *env_or(const char *n, const char *d) { const char *v = getenv(n); return v && *v ? v : d; }
int main(void) {
  char data[128] = "missing";
  FILE *f = fopen("static/hello.txt", "r");
  if (f) { size_t n = fread(data, 1, sizeof data - 1, f); data[n] = 0; if (n && data[n - 1] == '\n') data[n - 1] = 0; fclose(f); }
  int fd = open("/kiln-write-probe", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const char *root_write = fd >= 0 ? "written" : strerror(errno);
  char shells[128] = "";
  const char *candidates[] = {"/bin/sh", "/bin/bash", "/bin/busybox", "/usr/bin/sh", "/usr/bin/bash"};
  for (int i = 0; i < 5; i++) if (access(candidates[i], F_OK) == 0) { strcat(shells, shells[0] ? ",\"" : "\""); strcat(shells, candidates[i]); strcat(shells, "\""); }
  int port = atoi(env_or("PORT", "8080"));
  int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET; a.sin_port = htons(port); a.sin_addr.s_addr = htonl(INADDR_ANY);
  if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 16) < 0) { perror("bind"); return 1; }
  printf("probe-server listening on %d\n", port); fflush(stdout);
  for (;;) {
    int c = accept(s, NULL, NULL);
    if (c < 0) continue;
    char req[1024]; if (read(c, req, sizeof req) <= 0) { close(c); continue; }
    char body[1024];
    snprintf(body, sizeof body, "{\"message\":\"%s\",\"env\":\"%s\",\"image\":\"%s\",\"uid\":%u,\"data\":\"%s\",\"rootWrite\":\"%s\",\"shells\":[%s]}\n",
             env_or("GREETING", "hello"), env_or("KILN_ENV", "?"), env_or("KILN_IMAGE", "?"), (unsigned)getuid(), data, root_write, shells);
    char head[256];
    int n = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", strlen(body));
    if (write(c, head, n) < 0 || write(c, body, strlen(body)) < 0) perror("write");
    close(c);
  }
}
`;

describe.sequential("native baker: a tarball of files with a cmd", () => {
  it("bakes probe-1.0.tar.gz with --cmd and boots it: HTTP, data file, -e, KILN_ENV, uid 1000, read-only /, no shell", async () => {
    const work = await mkdtemp(path.join(os.tmpdir(), "kiln-tarball-"));
    const top = path.join(work, "probe-1.0");
    await mkdir(path.join(top, "bin"), { recursive: true });
    await mkdir(path.join(top, "static"), { recursive: true });
    await writeFile(path.join(work, "server.c"), SERVER_C);
    await writeFile(path.join(top, "static", "hello.txt"), "from the tarball\n");
    execFileSync("gcc", ["-static", "-O2", "-o", path.join(top, "bin", "probe-server"), path.join(work, "server.c")]);
    const out = path.join(work, "dist");
    await mkdir(out);
    const tarball = path.join(out, "probe-1.0.tar.gz");
    execFileSync("tar", ["-C", work, "-czf", tarball, "probe-1.0"]);

    const { image } = await bake(tarball, { cmd: "./bin/probe-server", port: "8080" }, home, quiet);
    const m = image.manifest;
    expect(m).toMatchObject({ name: "probe-1.0", baker: "native", cmd: ["/app/bin/probe-server"], port: 8080 });
    // A static binary needs no libraries: the image carries kernel, init and the app only.
    expect(m.sizes.libs).toBe(0);

    const run = await boot(image.ref, home, { env: ["GREETING=from-seed"], kilnEnv: "test" });
    running.push(run);
    const answer = await httpGet(`http://127.0.0.1:${run.port}/`);
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toEqual({
      message: "from-seed",
      env: "test",
      image: "probe-1.0:0.1.0",
      uid: 1000,
      data: "from the tarball",
      rootWrite: "Read-only file system",
      shells: [],
    });
    await rm(work, { recursive: true, force: true });
    console.log(
      `probe-1.0 (native tarball): runtime ${m.sizes.runtime} B, libs ${m.sizes.libs} B, app ${(m.sizes.app / 1024).toFixed(1)} KiB, kernel ${(m.sizes.kernel / 1048576).toFixed(1)} MiB, init ${(m.sizes.init / 1048576).toFixed(1)} MiB; allocated ${(m.sizes.allocated / 1048576).toFixed(1)} MiB; boot to healthy ${run.bootToHealthySeconds?.toFixed(1)} s`,
    );
  }, 900_000);
});
