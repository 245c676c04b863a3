/*
 * hello-native: a small HTTP/1.1 server in C for kiln's native baker.
 *
 *   ./server --listen 8080 [--fail-health] [--fail-requests]
 *
 * Answers GET /healthz with "ok" and every other path with a short JSON document that shows
 * what the image gave the process (KILN_ENV, KILN_IMAGE, uid, GREETING). One request per
 * connection, one connection at a time: enough for health checks and demos. SIGTERM stops
 * the accept loop so the init's graceful shutdown is observable.
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t stopping = 0;
/* --fail-health: /healthz answers 503, for tests of releases that never become healthy. */
static int fail_health = 0;
/* --fail-requests: healthy, but every other path answers 500, for tests of canaries that fail. */
static int fail_requests = 0;

static void on_term(int sig) {
  (void)sig;
  stopping = 1;
}

static const char *env_or(const char *name, const char *fallback) {
  const char *value = getenv(name);
  return value && *value ? value : fallback;
}

static void respond(int fd, const char *status, const char *type, const char *body) {
  char head[256];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                   status, type, strlen(body));
  if (write(fd, head, (size_t)n) < 0 || write(fd, body, strlen(body)) < 0) perror("write");
}

static void serve(int fd) {
  char request[2048];
  ssize_t got = read(fd, request, sizeof request - 1);
  if (got <= 0) return;
  request[got] = 0;
  char method[8] = {0}, target[512] = {0};
  if (sscanf(request, "%7s %511s", method, target) != 2) {
    respond(fd, "400 Bad Request", "text/plain", "bad request\n");
    return;
  }
  if (strcmp(target, "/healthz") == 0) {
    if (fail_health) respond(fd, "503 Service Unavailable", "text/plain", "failing on purpose\n");
    else respond(fd, "200 OK", "text/plain", "ok\n");
    return;
  }
  if (fail_requests) {
    respond(fd, "500 Internal Server Error", "text/plain", "failing on purpose\n");
    return;
  }
  char body[1024];
  snprintf(body, sizeof body,
           "{\"message\":\"%s\",\"image\":\"%s\",\"env\":\"%s\",\"uid\":%u,\"runtime\":\"native\"}\n",
           env_or("GREETING", "hello from kiln (native)"), env_or("KILN_IMAGE", "?"), env_or("KILN_ENV", "?"),
           (unsigned)getuid());
  respond(fd, "200 OK", "application/json", body);
}

int main(int argc, char **argv) {
  int port = 8080;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) port = atoi(argv[++i]);
    else if (strcmp(argv[i], "--fail-health") == 0) fail_health = 1;
    else if (strcmp(argv[i], "--fail-requests") == 0) fail_requests = 1;
  }
  if (getenv("PORT") && port == 8080) port = atoi(getenv("PORT"));

  struct sigaction sa = {0};
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  /* A client that resets the connection mid-response (HAProxy closes health checks that way)
   * must cost that write an EPIPE, not the whole server a SIGPIPE. */
  signal(SIGPIPE, SIG_IGN);

  int listener = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {0};
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)port);
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(listener, 64) < 0) {
    perror("hello-native: bind/listen");
    return 1;
  }
  printf("hello-native listening on %d\n", port);
  fflush(stdout);
  while (!stopping) {
    int fd = accept(listener, NULL, NULL);
    if (fd < 0) {
      if (errno == EINTR) continue;
      perror("accept");
      break;
    }
    serve(fd);
    close(fd);
  }
  printf("hello-native: SIGTERM, stopped\n");
  fflush(stdout);
  close(listener);
  return 0;
}
