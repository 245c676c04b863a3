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

typedef unsigned long size;
typedef long ssize;

/* ---- system calls (x86-64) ---------------------------------------------------------- */
static long sys3(long n, long a, long b, long c) {
  long r;
  __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
  return r;
}
static long sys5(long n, long a, long b, long c, long d, long e) {
  long r;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8) : "rcx", "r11", "memory");
  return r;
}
enum { SYS_read = 0, SYS_write = 1, SYS_open = 2, SYS_close = 3, SYS_socket = 41, SYS_connect = 42,
  SYS_setsockopt = 54, SYS_arch_prctl = 158, SYS_clock_gettime = 228, SYS_exit_group = 231, SYS_getrandom = 318 };

static int last_errno;

__attribute__((noreturn)) static void quit(int code) {
  for (;;) sys3(SYS_exit_group, code, 0, 0);
}

static size text_length(const char *s) {
  size n = 0;
  while (s[n]) n++;
  return n;
}

static void write_all(int fd, const void *data, size len) {
  const char *p = data;
  while (len > 0) {
    long n = sys3(SYS_write, fd, (long)p, (long)len);
    if (n == -4) continue; /* EINTR */
    if (n <= 0) quit(1);
    p += n;
    len -= (size)n;
  }
}

static void say(const char *s) { write_all(2, s, text_length(s)); }

static void say_number(unsigned long v) {
  char digits[24];
  int i = sizeof digits;
  digits[--i] = 0;
  do digits[--i] = (char)('0' + v % 10); while ((v /= 10) && i > 0);
  say(digits + i);
}

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
#define MAX_ANCHORS 160
static br_x509_trust_anchor anchors[MAX_ANCHORS];
static size anchor_count;
static unsigned char arena[256 * 1024]; /* DNs and public keys of the anchors */
static size arena_used;
static unsigned char der[16 * 1024];    /* the certificate being decoded */
static size der_len;
static int der_overflow;

static unsigned char *keep(const void *data, size len) {
  if (len > sizeof arena - arena_used) bad_cafile("too many certificates");
  unsigned char *at = arena + arena_used;
  for (size i = 0; i < len; i++) at[i] = ((const unsigned char *)data)[i];
  arena_used += len;
  return at;
}

static void append_der(void *ctx, const void *data, size_t len) {
  (void)ctx;
  if (len > sizeof der - der_len) { der_overflow = 1; return; }
  for (size i = 0; i < len; i++) der[der_len + i] = ((const unsigned char *)data)[i];
  der_len += len;
}

/* The decoder hands the subject DN over in pieces: it lands at the end of the arena. */
static void append_dn(void *ctx, const void *data, size_t len) {
  br_x500_name *dn = ctx;
  keep(data, len);
  dn->len += len;
}

static void add_anchor(void) {
  if (der_overflow) bad_cafile("a certificate is larger than 16 KiB");
  if (anchor_count == MAX_ANCHORS) bad_cafile("too many certificates");
  br_x509_trust_anchor *ta = &anchors[anchor_count];
  br_x509_decoder_context dc;
  ta->dn.data = arena + arena_used;
  ta->dn.len = 0;
  br_x509_decoder_init(&dc, append_dn, &ta->dn);
  br_x509_decoder_push(&dc, der, der_len);
  br_x509_pkey *pk = br_x509_decoder_get_pkey(&dc);
  if (!pk) bad_cafile("a certificate cannot be decoded");
  /* A CA certificate anchors chains; any other certificate is trusted as that one server key. */
  ta->flags = br_x509_decoder_isCA(&dc) ? BR_X509_TA_CA : 0;
  ta->pkey.key_type = pk->key_type;
  if (pk->key_type == BR_KEYTYPE_RSA) {
    ta->pkey.key.rsa.n = keep(pk->key.rsa.n, pk->key.rsa.nlen);
    ta->pkey.key.rsa.nlen = pk->key.rsa.nlen;
    ta->pkey.key.rsa.e = keep(pk->key.rsa.e, pk->key.rsa.elen);
    ta->pkey.key.rsa.elen = pk->key.rsa.elen;
  } else if (pk->key_type == BR_KEYTYPE_EC) {
    ta->pkey.key.ec.curve = pk->key.ec.curve;
    ta->pkey.key.ec.q = keep(pk->key.ec.q, pk->key.ec.qlen);
    ta->pkey.key.ec.qlen = pk->key.ec.qlen;
  } else {
    bad_cafile("a certificate has a key type other than RSA or EC");
  }
  anchor_count++;
}

static int same_text(const char *a, const char *b) {
  while (*a && *a == *b) a++, b++;
  return *a == *b;
}

static void load_anchors(const char *file) {
  ca_path = file;
  long fd = sys3(SYS_open, (long)file, 0 /* O_RDONLY */, 0);
  if (fd < 0) bad_cafile("cannot open the file");
  br_pem_decoder_context pc;
  br_pem_decoder_init(&pc);
  static unsigned char chunk[4096];
  int in_certificate = 0;
  for (;;) {
    long n = sys3(SYS_read, fd, (long)chunk, sizeof chunk);
    if (n < 0) bad_cafile("cannot read the file");
    if (n == 0) break;
    size off = 0;
    while (off < (size)n) {
      off += br_pem_decoder_push(&pc, chunk + off, (size)n - off);
      switch (br_pem_decoder_event(&pc)) {
        case BR_PEM_BEGIN_OBJ:
          in_certificate = same_text(br_pem_decoder_name(&pc), "CERTIFICATE")
            || same_text(br_pem_decoder_name(&pc), "X509 CERTIFICATE");
          der_len = 0;
          der_overflow = 0;
          br_pem_decoder_setdest(&pc, in_certificate ? append_der : 0, 0);
          break;
        case BR_PEM_END_OBJ:
          if (in_certificate) add_anchor();
          in_certificate = 0;
          break;
        case BR_PEM_ERROR:
          bad_cafile("not valid PEM");
      }
    }
  }
  sys3(SYS_close, fd, 0, 0);
  if (anchor_count == 0) bad_cafile("holds no certificate");
}

/* ---- arguments ----------------------------------------------------------------------- */
static int parse_ipv4(const char *s, unsigned char out[4]) {
  for (int i = 0; i < 4; i++) {
    unsigned v = 0, digits = 0;
    while (*s >= '0' && *s <= '9' && digits < 4) v = v * 10 + (unsigned)(*s++ - '0'), digits++;
    if (digits == 0 || v > 255) return 0;
    out[i] = (unsigned char)v;
    if (i < 3 && *s++ != '.') return 0;
  }
  return *s == 0;
}

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
    write_all(1, data, (size)n);
    received += (size)n;
  }
  int err = br_ssl_engine_last_error(&client.eng);
  /* Servers often close TCP without a close_notify after a complete answer; the caller's
     protocol (HTTP's Content-Length) detects a truncated one. Before any byte, it is a failure. */
  if (err == BR_ERR_OK || (err == BR_ERR_IO && received > 0 && last_errno == 32)) return 0;
  fail_tls(err);
  return 1;
}

/* ---- process entry: no libc, so set up what compiled code expects -------------------- */
/* Debian's libbearssl is built with -fstack-protector: its functions read the canary at
   %fs:0x28, so %fs must point at a block whose word 5 holds a random canary. */
static unsigned long thread_block[8];

__attribute__((used)) void start_c(long *sp) {
  thread_block[0] = (unsigned long)thread_block;
  sys3(SYS_getrandom, (long)&thread_block[5], sizeof thread_block[5], 0);
  sys3(SYS_arch_prctl, 0x1002 /* ARCH_SET_FS */, (long)thread_block, 0);
  quit(run((int)sp[0], (char **)(sp + 1)));
}

__asm__(".text\n.globl _start\n_start:\n xor %rbp, %rbp\n mov %rsp, %rdi\n and $-16, %rsp\n call start_c\n hlt\n");

/* ---- the C library functions libbearssl.a calls -------------------------------------- */
void *memcpy(void *d, const void *s, size_t n) {
  unsigned char *dp = d;
  const unsigned char *sp = s;
  while (n--) *dp++ = *sp++;
  return d;
}
void *memmove(void *d, const void *s, size_t n) {
  unsigned char *dp = d;
  const unsigned char *sp = s;
  if (dp < sp) while (n--) *dp++ = *sp++;
  else while (n--) dp[n] = sp[n];
  return d;
}
void *memset(void *d, int c, size_t n) {
  unsigned char *dp = d;
  while (n--) *dp++ = (unsigned char)c;
  return d;
}
int memcmp(const void *a, const void *b, size_t n) {
  const unsigned char *ap = a, *bp = b;
  for (; n; n--, ap++, bp++) if (*ap != *bp) return *ap - *bp;
  return 0;
}
size_t strlen(const char *s) { return text_length(s); }
/* _FORTIFY_SOURCE variants: the size checks abort as glibc's do. */
void *__memcpy_chk(void *d, const void *s, size_t n, size_t room) { if (n > room) quit(127); return memcpy(d, s, n); }
void *__memmove_chk(void *d, const void *s, size_t n, size_t room) { if (n > room) quit(127); return memmove(d, s, n); }
void *__memset_chk(void *d, int c, size_t n, size_t room) { if (n > room) quit(127); return memset(d, c, n); }
void __stack_chk_fail(void) { say("kiln-https: stack smashing detected\n"); quit(127); }
int *__errno_location(void) { return &last_errno; }
/* BearSSL's system seeder (unused: entropy is injected) and clock (unused: the time is set). */
int open(const char *file, int flags, ...) {
  long r = sys3(SYS_open, (long)file, flags, 0);
  if (r < 0) { last_errno = (int)-r; return -1; }
  return (int)r;
}
ssize read(int fd, void *buf, size n) { long r = sys3(SYS_read, fd, (long)buf, (long)n); if (r < 0) { last_errno = (int)-r; return -1; } return r; }
int close(int fd) { return (int)sys3(SYS_close, fd, 0, 0); }
long time(long *t) { struct { long sec, nsec; } now = { 0, 0 }; sys3(SYS_clock_gettime, 0, (long)&now, 0); if (t) *t = now.sec; return now.sec; }
