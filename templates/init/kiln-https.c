/*
 * kiln-https: one HTTPS exchange with a verified server, for the init (secrets now, logs later).
 *
 *   kiln-https HOST[:PORT] CAFILE [ADDRESS]
 *
 * Connects to ADDRESS (IPv4; HOST itself when HOST is an IPv4 address) on PORT (443), runs a
 * TLS handshake that sends HOST as SNI and requires the server's certificate chain to lead to
 * one of the certificates in CAFILE (PEM) and to name HOST, then copies stdin to the server
 * and the server's answer to stdout until the server closes. The HTTP request on stdin and the
 * reading of the answer are the caller's: this program knows TLS, not HTTP.
 * Name resolution is the caller's too (the init has busybox nslookup): no resolver here.
 *
 * Failures print "kiln-https: HOST:PORT: REASON" on stderr (certificate not trusted, name
 * mismatch, expired, connection refused, ...) and exit 1; a usage error exits 2.
 *
 * Built like kiln-exec: no libc (raw system calls), linked statically with BearSSL's library
 * (libbearssl-dev), which needs only the few C functions defined at the end of this file.
 */
#include <bearssl.h>

#include "kiln-freestanding.h"

/* ---- system calls (x86-64) ---------------------------------------------------------- */
enum { SYS_read = 0, SYS_write = 1, SYS_open = 2, SYS_close = 3, SYS_socket = 41, SYS_connect = 42,
  SYS_setsockopt = 54, SYS_arch_prctl = 158, SYS_clock_gettime = 228, SYS_exit_group = 231, SYS_getrandom = 318 };

/* ---- failures ------------------------------------------------------------------------ */
static const char *server_name = "?";
static unsigned port_number = 443;

__attribute__((noreturn)) static void fail(const char *reason, const char *detail) {
  say("kiln-https: ");
  say(server_name);
  say(":");
  say_number(port_number);
  say(": ");
  say(reason);
  if (detail) say(detail);
  say("\n");
  quit(1);
}

__attribute__((noreturn)) static void usage(const char *why) {
  say("kiln-https: ");
  say(why);
  say("\nusage: kiln-https HOST[:PORT] CAFILE [ADDRESS]   (request on stdin, answer on stdout)\n");
  quit(2);
}

/* A CA file that cannot serve as the trusted set: a setup error, like a usage error. */
static const char *ca_path = "CAFILE";
__attribute__((noreturn)) static void bad_cafile(const char *why) {
  say("kiln-https: ");
  say(ca_path);
  say(": ");
  say(why);
  say("\n");
  quit(2);
}

static const char *errno_text(int e) {
  switch (e) {
    case 111: return "connection refused";
    case 110: case 115: case 11: return "timed out";
    case 101: return "network unreachable";
    case 113: return "host unreachable";
    case 104: return "connection reset by the server";
    case 32: return "connection closed by the server";
    default: return "network error";
  }
}

/* Why the TLS engine stopped, in words a person can act on. */
static void fail_tls(int err) {
  switch (err) {
    case BR_ERR_X509_NOT_TRUSTED: fail("certificate not trusted (its chain leads to no CA in the trusted set)", 0);
    case BR_ERR_X509_BAD_SERVER_NAME: fail("certificate name mismatch (the certificate is not for this host name)", 0);
    case BR_ERR_X509_EXPIRED: fail("certificate expired or not yet valid", 0);
    case BR_ERR_X509_TIME_UNKNOWN: fail("certificate validity cannot be checked: the clock is not set", 0);
    case BR_ERR_X509_NOT_CA: fail("certificate chain invalid (an issuer is not a CA)", 0);
    case BR_ERR_X509_BAD_SIGNATURE: fail("certificate chain invalid (a signature does not verify)", 0);
    case BR_ERR_X509_DN_MISMATCH: fail("certificate chain invalid (issuer and subject names do not chain)", 0);
    case BR_ERR_X509_FORBIDDEN_KEY_USAGE: fail("certificate not usable for a TLS server (key usage)", 0);
    case BR_ERR_X509_WEAK_PUBLIC_KEY: fail("certificate key too weak", 0);
    case BR_ERR_X509_CRITICAL_EXTENSION: fail("certificate has an unsupported critical extension", 0);
    case BR_ERR_X509_EMPTY_CHAIN: fail("the server sent no certificate", 0);
    case BR_ERR_BAD_CIPHER_SUITE: case BR_ERR_UNSUPPORTED_VERSION: case BR_ERR_BAD_VERSION:
      fail("no TLS version or cipher suite in common with the server", 0);
    case BR_ERR_IO: fail(errno_text(last_errno), " (during TLS)");
    default: break;
  }
  if (err >= BR_ERR_X509_OK && err < 64) fail("certificate could not be verified (malformed or unsupported)", 0);
  if (err & BR_ERR_RECV_FATAL_ALERT) fail("the server aborted the TLS handshake (it sent a fatal alert)", 0);
  if (err & BR_ERR_SEND_FATAL_ALERT) fail("TLS protocol error (the server's messages were refused)", 0);
  fail("TLS protocol error", 0);
}

/* ---- trust anchors from CAFILE ------------------------------------------------------- */
#include "kiln-trust-anchors.h"

/* ---- arguments ----------------------------------------------------------------------- */
static char host_buf[256];

static void parse_target(const char *arg) {
  size i = 0;
  for (; arg[i] && arg[i] != ':'; i++) {
    char c = arg[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
    if (!ok || i >= 253) usage("HOST must be a DNS name or an IPv4 address (letters, digits, dots, hyphens)");
    host_buf[i] = c;
  }
  if (i == 0) usage("HOST is empty");
  host_buf[i] = 0;
  server_name = host_buf;
  if (arg[i] == ':') {
    const char *p = arg + i + 1;
    unsigned v = 0;
    if (!*p) usage("PORT is empty");
    for (; *p; p++) {
      if (*p < '0' || *p > '9' || v > 65535) usage("PORT must be a number from 1 to 65535");
      v = v * 10 + (unsigned)(*p - '0');
    }
    if (v == 0 || v > 65535) usage("PORT must be a number from 1 to 65535");
    port_number = v;
  }
}

/* ---- socket I/O for the TLS engine --------------------------------------------------- */
static int sock_read(void *ctx, unsigned char *buf, size_t len) {
  for (;;) {
    long n = sys3(SYS_read, *(int *)ctx, (long)buf, (long)len);
    if (n > 0) return (int)n;
    if (n == -4) continue;
    last_errno = n == 0 ? 32 : (int)-n;
    return -1;
  }
}

static int sock_write(void *ctx, const unsigned char *buf, size_t len) {
  for (;;) {
    long n = sys3(SYS_write, *(int *)ctx, (long)buf, (long)len);
    if (n > 0) return (int)n;
    if (n == -4) continue;
    last_errno = n == 0 ? 32 : (int)-n;
    return -1;
  }
}

static int open_connection(const unsigned char address[4]) {
  long fd = sys3(SYS_socket, 2 /* AF_INET */, 1 /* SOCK_STREAM */ | 0x80000 /* CLOEXEC */, 0);
  if (fd < 0) fail("cannot create a socket", 0);
  /* 20 s for the connect and for every read and write: a silent server cannot hang the boot. */
  struct { long sec, usec; } limit = { 20, 0 };
  sys5(SYS_setsockopt, fd, 1 /* SOL_SOCKET */, 20 /* SO_RCVTIMEO */, (long)&limit, sizeof limit);
  sys5(SYS_setsockopt, fd, 1, 21 /* SO_SNDTIMEO */, (long)&limit, sizeof limit);
  struct { unsigned short family, port; unsigned char addr[4]; unsigned char zero[8]; } sa = { 2, 0, { 0 }, { 0 } };
  sa.port = (unsigned short)((port_number >> 8) | ((port_number & 0xff) << 8));
  for (int i = 0; i < 4; i++) sa.addr[i] = address[i];
  long r;
  do r = sys3(SYS_connect, fd, (long)&sa, sizeof sa); while (r == -4);
  if (r < 0) fail(errno_text((int)-r), 0);
  return (int)fd;
}

/* ---- the exchange -------------------------------------------------------------------- */
static br_ssl_client_context client;
static br_x509_minimal_context x509;
static unsigned char iobuf[BR_SSL_BUFSIZE_BIDI];
static unsigned char data[16 * 1024];

static int run(int argc, char **argv) {
  if (argc < 3 || argc > 4) usage("wrong number of arguments");
  parse_target(argv[1]);
  unsigned char address[4];
  const char *where = argc == 4 ? argv[3] : server_name;
  if (!parse_ipv4(where, address)) usage(argc == 4 ? "ADDRESS must be an IPv4 address" : "HOST is a name: pass its IPv4 ADDRESS too");
  ca_path = argv[2];
  load_anchors(argv[2]);

  struct { long sec, nsec; } now;
  if (sys3(SYS_clock_gettime, 0 /* CLOCK_REALTIME */, (long)&now, 0) < 0) fail("cannot read the clock", 0);
  unsigned char seed[32];
  if (sys3(SYS_getrandom, (long)seed, sizeof seed, 0) != sizeof seed) fail("no random numbers from the kernel", 0);

  br_ssl_client_init_full(&client, &x509, anchors, anchor_count);
  /* BearSSL counts days from 1 January of year 0; the Unix epoch is day 719528 of that count. */
  br_x509_minimal_set_time(&x509, (uint32_t)(now.sec / 86400 + 719528), (uint32_t)(now.sec % 86400));
  br_ssl_engine_set_buffer(&client.eng, iobuf, sizeof iobuf, 1);
  br_ssl_engine_inject_entropy(&client.eng, seed, sizeof seed);
  if (!br_ssl_client_reset(&client, server_name, 0)) fail_tls(br_ssl_engine_last_error(&client.eng));

  int fd = open_connection(address);
  br_sslio_context io;
  br_sslio_init(&io, &client.eng, sock_read, &fd, sock_write, &fd);

  for (;;) {
    long n = sys3(SYS_read, 0, (long)data, sizeof data);
    if (n == -4) continue;
    if (n < 0) fail("cannot read the request from stdin", 0);
    if (n == 0) break;
    if (br_sslio_write_all(&io, data, (size)n) < 0) fail_tls(br_ssl_engine_last_error(&client.eng));
  }
  if (br_sslio_flush(&io) < 0) fail_tls(br_ssl_engine_last_error(&client.eng));

  size received = 0;
  for (;;) {
    int n = br_sslio_read(&io, data, sizeof data);
    if (n < 0) break;
    if (!write_all(1, data, (size)n)) quit(1);
    received += (size)n;
  }
  int err = br_ssl_engine_last_error(&client.eng);
  /* Servers often close TCP without a close_notify after a complete answer; the caller's
     protocol (HTTP's Content-Length) detects a truncated one. Before any byte, it is a failure. */
  if (err == BR_ERR_OK || (err == BR_ERR_IO && received > 0 && last_errno == 32)) return 0;
  fail_tls(err);
  return 1;
}

/* ---- process entry and the C library functions BearSSL calls ------------------------ */
#define KILN_PROGRAM "kiln-https"
#include "kiln-bearssl-runtime.h"
