/*
 * kiln-cwlogs: ships the console's lines to CloudWatch Logs. Runs in the initramfs next to
 * kiln-log when the user-data sets KILN_CLOUDWATCH_LOGS.
 *
 *   kiln-cwlogs FIFO REGION GROUP STREAM ENDPOINT ADDRESS CAFILE [IMDS_ADDRESS:PORT]
 *   kiln-cwlogs sign REGION HOST AMZDATE ACCESS_KEY SECRET_KEY TOKEN|- TARGET   (body on stdin)
 *
 * It creates FIFO (made under a temporary name, opened, then renamed, so the init can wait for
 * the name and kiln-log finds a reader as soon as it exists) and reads kiln-log's records from
 * it, one a line: "<unix-time-ms> <severity 0-7> <app-name> <text>". Lines are batched and sent
 * with PutLogEvents to GROUP/STREAM at ENDPOINT (https://HOST[:PORT], verified against CAFILE,
 * or http://IP:PORT for an emulator on 127.0.0.1, 10.0.2.2 or 169.254.2.2), connecting to
 * ADDRESS (the init resolves the name: no resolver here). Requests are signed (SigV4, service
 * "logs") with the instance role's credentials from IMDSv2, fetched again 5 minutes before they
 * expire and after the service refuses them.
 *
 * It never holds up the app: kiln-log writes to the FIFO without blocking and drops (and counts)
 * lines while the FIFO is full. Memory is bounded: one batch (at most ~1 MB) here, the FIFO's
 * pipe buffer in the kernel, nothing else. While a batch cannot be delivered (endpoint down,
 * throttled), it is retried with exponential backoff and jitter and nothing more is read, so
 * the FIFO fills and kiln-log's drop count becomes the "lines dropped" record once it drains.
 *
 * SIGTERM (the init, powering off, once kiln-log has written its last line) makes it ship what
 * the FIFO still holds, with at most a few quick attempts, and exit.
 *
 * The "sign" form prints the Authorization header for one request, so tests can compare the
 * signature with an independent SigV4 implementation.
 *
 * Built like kiln-https: no libc, linked statically with BearSSL (TLS, SHA-256, HMAC).
 */
#include <bearssl.h>

#include "kiln-freestanding.h"

/* ---- system calls (x86-64) ---------------------------------------------------------- */
enum { SYS_read = 0, SYS_write = 1, SYS_open = 2, SYS_close = 3, SYS_poll = 7, SYS_rt_sigaction = 13, SYS_rt_sigprocmask = 14,
  SYS_signalfd4 = 289, SYS_nanosleep = 35,
  SYS_socket = 41, SYS_connect = 42, SYS_setsockopt = 54, SYS_fcntl = 72, SYS_rename = 82, SYS_unlink = 87,
  SYS_mknod = 133, SYS_arch_prctl = 158, SYS_clock_gettime = 228, SYS_exit_group = 231, SYS_getrandom = 318 };
enum { EINTR = 4, EAGAIN = 11 };

static int starts_with(const char *s, const char *prefix) {
  while (*prefix) if (*s++ != *prefix++) return 0;
  return 1;
}

__attribute__((noreturn)) static void usage(const char *why) {
  say("kiln-cwlogs: ");
  say(why);
  say("\nusage: kiln-cwlogs FIFO REGION GROUP STREAM ENDPOINT ADDRESS CAFILE [IMDS_ADDRESS:PORT]\n");
  quit(2);
}

/* ---- text building ------------------------------------------------------------------- */
/* A bounded buffer: appends past the end are cut and flagged, never written out of bounds. */
struct text {
  char *p;
  size n, cap;
  int overflow;
};

static void add(struct text *t, const char *s, size n) {
  if (n > t->cap - t->n) { t->overflow = 1; return; }
  for (size i = 0; i < n; i++) t->p[t->n + i] = s[i];
  t->n += n;
}
static void add0(struct text *t, const char *s) { add(t, s, text_length(s)); }
static void add_number(struct text *t, unsigned long v, int width) {
  char digits[24];
  int n = 0;
  do digits[n++] = (char)('0' + v % 10); while ((v /= 10) && n < 20);
  while (n < width) digits[n++] = '0';
  while (n) add(t, &digits[--n], 1);
}
static void add_hex(struct text *t, const unsigned char *bytes, size n) {
  static const char hex[] = "0123456789abcdef";
  for (size i = 0; i < n; i++) {
    char pair[2] = { hex[bytes[i] >> 4], hex[bytes[i] & 15] };
    add(t, pair, 2);
  }
}
/* NUL-terminates in place (the last byte of the buffer is kept for it). */
static char *finish(struct text *t) {
  if (t->n >= t->cap) t->n = t->cap - 1;
  t->p[t->n] = 0;
  return t->p;
}

/* ---- time ---------------------------------------------------------------------------- */
struct timespec { long sec, nsec; };

static long clock_ms(int which) {
  struct timespec t = { 0, 0 };
  sys3(SYS_clock_gettime, which, (long)&t, 0);
  return t.sec * 1000 + t.nsec / 1000000;
}
static long monotonic_ms(void) { return clock_ms(1); }
static long unix_seconds(void) { return clock_ms(0) / 1000; }

static void sleep_ms(long ms) {
  struct timespec t = { ms / 1000, (ms % 1000) * 1000000 };
  while (sys3(SYS_nanosleep, (long)&t, (long)&t, 0) == -EINTR) {}
}

/* Days since 1970-01-01 <-> civil dates (Howard Hinnant's algorithms). */
static long days_from_civil(long y, long m, long d) {
  y -= m <= 2;
  long era = (y >= 0 ? y : y - 399) / 400, yoe = y - era * 400;
  long doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1, doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

/* SigV4's x-amz-date: YYYYMMDDTHHMMSSZ. */
static void add_amz_date(struct text *t, long seconds) {
  long days = seconds / 86400, secs = seconds % 86400;
  long z = days + 719468, era = z / 146097, doe = z - era * 146097;
  long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  long doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
  long day = doy - (153 * mp + 2) / 5 + 1, month = mp < 10 ? mp + 3 : mp - 9, year = yoe + era * 400 + (month <= 2);
  add_number(t, (unsigned long)year, 4);
  add_number(t, (unsigned long)month, 2);
  add_number(t, (unsigned long)day, 2);
  add(t, "T", 1);
  add_number(t, (unsigned long)(secs / 3600), 2);
  add_number(t, (unsigned long)(secs / 60 % 60), 2);
  add_number(t, (unsigned long)(secs % 60), 2);
  add(t, "Z", 1);
}

/* IMDS's Expiration, "2026-01-31T23:59:59Z" -> Unix seconds; 0 when it is not that shape. */
static long parse_iso8601(const char *s) {
  long v[6] = { 0 };
  const char seps[] = "--T::Z";
  for (int i = 0; i < 6; i++) {
    int digits = 0;
    while (*s >= '0' && *s <= '9') v[i] = v[i] * 10 + (*s++ - '0'), digits++;
    if (!digits || *s++ != seps[i]) return 0;
  }
  return days_from_civil(v[0], v[1], v[2]) * 86400 + v[3] * 3600 + v[4] * 60 + v[5];
}

static unsigned long random_number(void) {
  unsigned long r = 0;
  sys3(SYS_getrandom, (long)&r, sizeof r, 0);
  return r;
}

/* ---- SHA-256, HMAC and the SigV4 signature ------------------------------------------- */
static void sha256_hex(struct text *t, const void *data, size n) {
  br_sha256_context c;
  unsigned char digest[32];
  br_sha256_init(&c);
  br_sha256_update(&c, data, n);
  br_sha256_out(&c, digest);
  add_hex(t, digest, 32);
}

static void hmac(unsigned char out[32], const void *key, size key_len, const char *msg, size msg_len) {
  br_hmac_key_context kc;
  br_hmac_context hc;
  br_hmac_key_init(&kc, &br_sha256_vtable, key, key_len);
  br_hmac_init(&hc, &kc, 0);
  br_hmac_update(&hc, msg, msg_len);
  br_hmac_out(&hc, out);
}

struct credentials {
  char access_key[128], secret_key[128], token[4096];
  long expires; /* Unix seconds; 0: none yet */
};

/*
 * Signs a POST of BODY to "/" with the headers kiln-cwlogs sends (content-type, host,
 * x-amz-date, x-amz-security-token when there is a token, x-amz-target) and writes the
 * Authorization header's value into OUT.
 */
static void sign_request(struct text *out, const struct credentials *cr, const char *region, const char *host,
                         const char *amz_date, const char *target, const char *body, size body_len) {
  static char canonical_buf[8192], scope_buf[128], to_sign_buf[512];
  int has_token = cr->token[0] != 0;
  struct text canonical = { canonical_buf, 0, sizeof canonical_buf, 0 };
  add0(&canonical, "POST\n/\n\ncontent-type:application/x-amz-json-1.1\nhost:");
  add0(&canonical, host);
  add0(&canonical, "\nx-amz-date:");
  add0(&canonical, amz_date);
  if (has_token) {
    add0(&canonical, "\nx-amz-security-token:");
    add0(&canonical, cr->token);
  }
  add0(&canonical, "\nx-amz-target:");
  add0(&canonical, target);
  add0(&canonical, has_token ? "\n\ncontent-type;host;x-amz-date;x-amz-security-token;x-amz-target\n"
                             : "\n\ncontent-type;host;x-amz-date;x-amz-target\n");
  sha256_hex(&canonical, body, body_len);

  struct text scope = { scope_buf, 0, sizeof scope_buf, 0 };
  add(&scope, amz_date, 8);
  add0(&scope, "/");
  add0(&scope, region);
  add0(&scope, "/logs/aws4_request");

  struct text to_sign = { to_sign_buf, 0, sizeof to_sign_buf, 0 };
  add0(&to_sign, "AWS4-HMAC-SHA256\n");
  add0(&to_sign, amz_date);
  add0(&to_sign, "\n");
  add(&to_sign, scope.p, scope.n);
  add0(&to_sign, "\n");
  sha256_hex(&to_sign, canonical.p, canonical.n);

  /* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), "logs"), "aws4_request") */
  char secret[160];
  struct text k = { secret, 0, sizeof secret, 0 };
  add0(&k, "AWS4");
  add0(&k, cr->secret_key);
  unsigned char key[32], signature[32];
  hmac(key, k.p, k.n, amz_date, 8);
  hmac(key, key, 32, region, text_length(region));
  hmac(key, key, 32, "logs", 4);
  hmac(key, key, 32, "aws4_request", 12);
  hmac(signature, key, 32, to_sign.p, to_sign.n);

  add0(out, "AWS4-HMAC-SHA256 Credential=");
  add0(out, cr->access_key);
  add0(out, "/");
  add(out, scope.p, scope.n);
  add0(out, has_token ? ", SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature="
                      : ", SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=");
  add_hex(out, signature, 32);
}

/* ---- trust anchors from CAFILE ------------------------------------------------------- */
__attribute__((noreturn)) static void bad_cafile(const char *why) {
  say("kiln-cwlogs: the CA file: ");
  say(why);
  say("\n");
  quit(2);
}

#include "kiln-trust-anchors.h"

/* ---- one HTTP exchange (plain or verified TLS), answer read until the server closes ---- */
struct peer {
  unsigned char address[4];
  unsigned port;
  int tls;
  const char *server_name; /* SNI and the name the certificate must carry */
};

static int sock_read(void *ctx, unsigned char *buf, size_t len) {
  for (;;) {
    long n = sys3(SYS_read, *(int *)ctx, (long)buf, (long)len);
    if (n > 0) return (int)n;
    if (n == -EINTR) continue;
    last_errno = n == 0 ? 32 : (int)-n;
    return -1;
  }
}

static int sock_write(void *ctx, const unsigned char *buf, size_t len) {
  for (;;) {
    long n = sys3(SYS_write, *(int *)ctx, (long)buf, (long)len);
    if (n > 0) return (int)n;
    if (n == -EINTR) continue;
    last_errno = n == 0 ? 32 : (int)-n;
    return -1;
  }
}

/* Why the last exchange got no answer, in words a person can act on (for the console line). */
static const char *no_answer = "no answer from the endpoint";

static const char *errno_text(long e) {
  switch (e) {
    case 111: return "connection refused";
    case 110: case 115: case 11: return "timed out";
    case 101: case 113: return "endpoint unreachable";
    default: return "no answer from the endpoint";
  }
}

static const char *tls_text(int err) {
  switch (err) {
    case BR_ERR_X509_NOT_TRUSTED: return "TLS: certificate not trusted (its chain leads to no CA in the CA file)";
    case BR_ERR_X509_BAD_SERVER_NAME: return "TLS: certificate name mismatch";
    case BR_ERR_X509_EXPIRED: return "TLS: certificate expired or not yet valid";
    case BR_ERR_X509_TIME_UNKNOWN: return "TLS: the clock is not set";
    case BR_ERR_IO: return errno_text(last_errno);
    default: return "TLS handshake or protocol failure";
  }
}

static int connect_to(const struct peer *p) {
  long fd = sys3(SYS_socket, 2 /* AF_INET */, 1 /* SOCK_STREAM */ | 0x80000 /* CLOEXEC */, 0);
  if (fd < 0) return -1;
  /* 10 s for the connect and every read and write: a silent server only delays the next batch. */
  struct { long sec, usec; } limit = { 10, 0 };
  sys5(SYS_setsockopt, fd, 1 /* SOL_SOCKET */, 20 /* SO_RCVTIMEO */, (long)&limit, sizeof limit);
  sys5(SYS_setsockopt, fd, 1, 21 /* SO_SNDTIMEO */, (long)&limit, sizeof limit);
  struct { unsigned short family, port; unsigned char addr[4]; unsigned char zero[8]; } sa = { 2, 0, { 0 }, { 0 } };
  sa.port = (unsigned short)((p->port >> 8) | ((p->port & 0xff) << 8));
  for (int i = 0; i < 4; i++) sa.addr[i] = p->address[i];
  long r;
  do r = sys3(SYS_connect, fd, (long)&sa, sizeof sa); while (r == -EINTR);
  if (r < 0) {
    no_answer = errno_text(-r);
    sys3(SYS_close, fd, 0, 0);
    return -1;
  }
  return (int)fd;
}

static br_ssl_client_context client;
static br_x509_minimal_context x509;
static unsigned char iobuf[BR_SSL_BUFSIZE_BIDI];

struct answer {
  int status;       /* HTTP status; 0 when there was no usable answer (connection, TLS) */
  char body[16384]; /* the start of the body, NUL-terminated */
};

/* Splits "HTTP/1.x NNN ...\r\n...\r\n\r\nbody" into status and body. */
static void parse_answer(struct answer *a, const char *raw, size n) {
  a->status = 0;
  a->body[0] = 0;
  if (n < 12 || !starts_with(raw, "HTTP/1.")) return;
  int status = 0;
  for (int i = 9; i < 12; i++) {
    if (raw[i] < '0' || raw[i] > '9') return;
    status = status * 10 + raw[i] - '0';
  }
  for (size i = 0; i + 3 < n; i++) {
    if (raw[i] == '\r' && raw[i + 1] == '\n' && raw[i + 2] == '\r' && raw[i + 3] == '\n') {
      size j = 0;
      for (i += 4; i < n && j + 1 < sizeof a->body; i++) a->body[j++] = raw[i];
      a->body[j] = 0;
      a->status = status;
      return;
    }
  }
}

/* Sends HEAD then BODY and reads the answer ("Connection: close": the server ends it). */
static void exchange(const struct peer *p, const char *head, size head_len, const char *body, size body_len, struct answer *a) {
  static char raw[sizeof a->body + 4096];
  size got = 0;
  a->status = 0;
  a->body[0] = 0;
  no_answer = "no answer from the endpoint";
  int fd = connect_to(p);
  if (fd < 0) return;
  if (!p->tls) {
    write_all(fd, head, head_len);
    write_all(fd, body, body_len);
    for (;;) {
      long n = sys3(SYS_read, fd, (long)(raw + got), (long)(sizeof raw - got));
      if (n == -EINTR) continue;
      if (n <= 0) break;
      got += (size)n;
      if (got == sizeof raw) break;
    }
  } else {
    unsigned char seed[32];
    sys3(SYS_getrandom, (long)seed, sizeof seed, 0);
    long now = unix_seconds();
    br_ssl_client_init_full(&client, &x509, anchors, anchor_count);
    /* BearSSL counts days from 1 January of year 0; the Unix epoch is day 719528 of that count. */
    br_x509_minimal_set_time(&x509, (uint32_t)(now / 86400 + 719528), (uint32_t)(now % 86400));
    br_ssl_engine_set_buffer(&client.eng, iobuf, sizeof iobuf, 1);
    br_ssl_engine_inject_entropy(&client.eng, seed, sizeof seed);
    if (br_ssl_client_reset(&client, p->server_name, 0)) {
      br_sslio_context io;
      br_sslio_init(&io, &client.eng, sock_read, &fd, sock_write, &fd);
      if (br_sslio_write_all(&io, head, head_len) == 0 && br_sslio_write_all(&io, body, body_len) == 0 && br_sslio_flush(&io) == 0) {
        for (;;) {
          int n = br_sslio_read(&io, raw + got, sizeof raw - got);
          if (n <= 0) break;
          got += (size)n;
          if (got == sizeof raw) break;
        }
      }
    }
  }
  sys3(SYS_close, fd, 0, 0);
  parse_answer(a, raw, got);
  if (!a->status) no_answer = p->tls ? tls_text(br_ssl_engine_last_error(&client.eng)) : "no HTTP answer from the endpoint";
}

/* ---- JSON ---------------------------------------------------------------------------- */
/* The string value of "key" in a flat JSON object (IMDS's credentials); 0 when absent. */
static int json_string(const char *json, const char *key, char *out, size cap) {
  size klen = text_length(key);
  for (const char *p = json; *p; p++) {
    if (*p != '"' || !starts_with(p + 1, key) || p[1 + klen] != '"') continue;
    p += klen + 2;
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
    if (*p++ != ':') continue;
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
    if (*p++ != '"') return 0;
    size n = 0;
    /* Credentials are base64 and ISO dates: an escape means something unexpected, refuse it. */
    while (*p && *p != '"' && *p != '\\' && n + 1 < cap) out[n++] = *p++;
    if (*p != '"') return 0;
    out[n] = 0;
    return 1;
  }
  return 0;
}

/* Decodes one UTF-8 sequence at s (n bytes left): its length, or 0 when it is not valid UTF-8. */
static int utf8_length(const unsigned char *s, size n) {
  unsigned c = s[0];
  int len;
  unsigned min;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) len = 2, min = 0x80;
  else if (c >= 0xe0 && c <= 0xef) len = 3, min = 0x800;
  else if (c >= 0xf0 && c <= 0xf4) len = 4, min = 0x10000;
  else return 0;
  if ((size)len > n) return 0;
  unsigned v = c & (0x7f >> len);
  for (int i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    v = v << 6 | (s[i] & 0x3f);
  }
  /* Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not valid UTF-8. */
  if (v < min || (v >= 0xd800 && v <= 0xdfff) || v > 0x10ffff) return 0;
  return len;
}

/* A JSON string's contents: UTF-8 passes through, quotes, backslashes and control characters
   are escaped, and each byte that is not part of valid UTF-8 becomes U+FFFD. */
static void add_json_text(struct text *t, const char *s, size n) {
  static const char hex[] = "0123456789abcdef";
  for (size i = 0; i < n;) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      char esc[2] = { '\\', (char)c };
      add(t, esc, 2);
      i++;
    } else if (c < 0x20) {
      char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
      add(t, esc, 6);
      i++;
    } else {
      int len = utf8_length((const unsigned char *)s + i, n - i);
      if (len) add(t, s + i, (size)len), i += (size)len;
      else add0(t, "\\ufffd"), i++;
    }
  }
}

/* ---- credentials from IMDSv2 --------------------------------------------------------- */
static struct peer imds = { { 169, 254, 169, 254 }, 80, 0, "169.254.169.254" };
static char imds_token[256];
static struct credentials creds;

/* One IMDS request; the answer's body is in a->body. */
static void imds_call(const char *method, const char *path, struct answer *a) {
  static char head_buf[1024];
  struct text head = { head_buf, 0, sizeof head_buf, 0 };
  add0(&head, method);
  add0(&head, " /latest/");
  add0(&head, path);
  add0(&head, " HTTP/1.0\r\nHost: ");
  add0(&head, imds.server_name);
  if (method[0] == 'P') {
    add0(&head, "\r\nX-aws-ec2-metadata-token-ttl-seconds: 21600");
  } else {
    add0(&head, "\r\nX-aws-ec2-metadata-token: ");
    add0(&head, imds_token);
  }
  add0(&head, "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  exchange(&imds, head.p, head.n, "", 0, a);
}

/* Fetches the role's credentials: 1 on success. A refused token is replaced once. */
static int fetch_credentials(void) {
  static struct answer a;
  static char role[128];
  for (int attempt = 0; attempt < 2; attempt++) {
    if (!imds_token[0]) {
      imds_call("PUT", "api/token", &a);
      if (a.status != 200 || !a.body[0] || text_length(a.body) >= sizeof imds_token) return 0;
      for (size i = 0; i <= text_length(a.body); i++) imds_token[i] = a.body[i];
    }
    imds_call("GET", "meta-data/iam/security-credentials/", &a);
    if (a.status == 401) { imds_token[0] = 0; continue; }
    if (a.status != 200) return 0;
    size n = 0;
    while (a.body[n] && a.body[n] != '\n' && a.body[n] != '\r' && n + 1 < sizeof role) role[n] = a.body[n], n++;
    role[n] = 0;
    if (!n) return 0;
    /* The name goes into the next request line: only IAM's role-name characters may. */
    for (size i = 0; i < n; i++) {
      char c = role[i];
      int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
      for (const char *allowed = "+=,.@_-"; *allowed && !ok; allowed++) ok = c == *allowed;
      if (!ok) return 0;
    }
    static char path_buf[256];
    struct text path = { path_buf, 0, sizeof path_buf, 0 };
    add0(&path, "meta-data/iam/security-credentials/");
    add0(&path, role);
    imds_call("GET", finish(&path), &a);
    if (a.status == 401) { imds_token[0] = 0; continue; }
    static struct credentials fresh;
    char expiration[64];
    if (a.status != 200 || !json_string(a.body, "AccessKeyId", fresh.access_key, sizeof fresh.access_key)
        || !json_string(a.body, "SecretAccessKey", fresh.secret_key, sizeof fresh.secret_key)) return 0;
    if (!json_string(a.body, "Token", fresh.token, sizeof fresh.token)) fresh.token[0] = 0;
    fresh.expires = json_string(a.body, "Expiration", expiration, sizeof expiration) ? parse_iso8601(expiration) : 0;
    /* No usable expiry: ask again in 15 minutes rather than trust the keys forever. */
    if (!fresh.expires) fresh.expires = unix_seconds() + 15 * 60 + 5 * 60;
    creds = fresh;
    return 1;
  }
  return 0;
}

/* Credentials good for at least 5 more minutes, fetched when needed: 1 when there are some. */
static int ensure_credentials(void) {
  if (creds.expires && unix_seconds() < creds.expires - 5 * 60) return 1;
  return fetch_credentials() || (creds.expires && unix_seconds() < creds.expires);
}

/* ---- CloudWatch Logs ------------------------------------------------------------------ */
static struct peer endpoint;
static char host_header[300]; /* HOST or HOST:PORT, as sent and signed */
static const char *region, *group, *stream;

/* PutLogEvents limits: 1 MiB counting 26 bytes per event (the JSON here is always larger),
   10 000 events, a 24 h span. Batches are sent after FLUSH_MS or when full. */
#define BATCH_BYTES (1024 * 1024 - 4096)
#define BATCH_EVENTS 10000
#define BATCH_SPAN_MS (24L * 3600 * 1000 - 60 * 1000)
#define FLUSH_MS 1000

static char batch_buf[BATCH_BYTES + 64];
static struct text batch = { batch_buf, 0, sizeof batch_buf, 0 };
static size batch_prefix; /* bytes of {"logGroupName":...,"logEvents":[ at the start of batch */
static long batch_events, batch_first_ts, batch_last_ts, batch_started_ms;

static void start_batch(void) {
  batch.n = 0;
  batch.overflow = 0;
  add0(&batch, "{\"logGroupName\":\"");
  add_json_text(&batch, group, text_length(group));
  add0(&batch, "\",\"logStreamName\":\"");
  add_json_text(&batch, stream, text_length(stream));
  add0(&batch, "\",\"logEvents\":[");
  batch_prefix = batch.n;
  batch_events = 0;
}

/* POSTs one CloudWatch Logs action; the answer's status and body land in a. */
static void call_logs(const char *action, const char *body, size body_len, struct answer *a) {
  static char target_buf[64], date_buf[32], auth_buf[512], head_buf[8192];
  struct text target = { target_buf, 0, sizeof target_buf, 0 };
  add0(&target, "Logs_20140328.");
  add0(&target, action);
  struct text date = { date_buf, 0, sizeof date_buf, 0 };
  add_amz_date(&date, unix_seconds());
  struct text auth = { auth_buf, 0, sizeof auth_buf, 0 };
  sign_request(&auth, &creds, region, host_header, finish(&date), finish(&target), body, body_len);

  struct text head = { head_buf, 0, sizeof head_buf, 0 };
  add0(&head, "POST / HTTP/1.1\r\nHost: ");
  add0(&head, host_header);
  add0(&head, "\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: ");
  add0(&head, target.p);
  add0(&head, "\r\nX-Amz-Date: ");
  add0(&head, date.p);
  if (creds.token[0]) {
    add0(&head, "\r\nX-Amz-Security-Token: ");
    add0(&head, creds.token);
  }
  add0(&head, "\r\nAuthorization: ");
  add(&head, auth.p, auth.n);
  add0(&head, "\r\nContent-Length: ");
  add_number(&head, body_len, 1);
  add0(&head, "\r\nConnection: close\r\n\r\n");
  exchange(&endpoint, head.p, head.n, body, body_len, a);
}

static int error_is(const struct answer *a, const char *type) {
  size n = text_length(type);
  for (const char *p = a->body; *p; p++)
    if (starts_with(p, type) && (p[n] == '"' || p[n] == 0)) return 1;
  return 0;
}

static void create_stream(void) {
  static char body_buf[1200];
  static struct answer a;
  struct text body = { body_buf, 0, sizeof body_buf, 0 };
  add0(&body, "{\"logGroupName\":\"");
  add_json_text(&body, group, text_length(group));
  add0(&body, "\",\"logStreamName\":\"");
  add_json_text(&body, stream, text_length(stream));
  add0(&body, "\"}");
  call_logs("CreateLogStream", body.p, body.n, &a); /* ResourceAlreadyExistsException is fine */
}

/* SIGTERM arrives on a signalfd (blocked as a signal), so waits can end early for it. */
static int stop_fd = -1;
static int stopping;

struct pollfd { int fd; short events, revents; };

/* Waits MS milliseconds, or less when SIGTERM arrives (then stopping is set). */
static void wait_or_stop(long ms) {
  if (stop_fd < 0) { sleep_ms(ms); return; }
  struct pollfd pfd = { stop_fd, 1 /* POLLIN */, 0 };
  if (sys3(SYS_poll, (long)&pfd, 1, ms) > 0) stopping = 1;
}

/* Transitions only, so a long outage is two console lines, not one per attempt. */
static int failing;
static unsigned long failed_attempts;

static void report_failure(const char *why) {
  failed_attempts++;
  if (failing) return;
  failing = 1;
  say("kiln-cwlogs: cannot deliver logs to CloudWatch Logs (");
  say(why);
  say("): retrying with backoff\n");
}

static void report_success(void) {
  if (!failing) return;
  failing = 0;
  char note[96];
  struct text t = { note, 0, sizeof note, 0 };
  add0(&t, "kiln-cwlogs: delivering again, after ");
  add_number(&t, failed_attempts, 1);
  add0(&t, " failed attempts\n");
  write_all(2, t.p, t.n);
  failed_attempts = 0;
}

/* Sends the batch until it is accepted, or refused for good (then it is dropped, said once). */
static void send_batch(void) {
  static struct answer a;
  if (!batch_events) return;
  add0(&batch, "]}");
  long delay = 250;
  for (;;) {
    const char *why = 0;
    if (!ensure_credentials()) {
      why = "no instance role credentials from the instance metadata";
    } else {
      call_logs("PutLogEvents", batch.p, batch.n, &a);
      if (a.status == 200) break;
      if (a.status == 400 && error_is(&a, "ResourceNotFoundException")) {
        create_stream();
        call_logs("PutLogEvents", batch.p, batch.n, &a);
        if (a.status == 200) break;
      }
      if (a.status == 0) why = no_answer;
      else if (error_is(&a, "ThrottlingException")) why = "throttled";
      else if (a.status >= 500) why = "the service failed";
      else if (a.status == 403 || error_is(&a, "ExpiredTokenException") || error_is(&a, "UnrecognizedClientException")
               || error_is(&a, "InvalidSignatureException")) {
        why = "credentials refused";
        creds.expires = 0; /* fetch again before the next attempt */
      } else if (error_is(&a, "AccessDeniedException")) {
        /* A new role's policy takes seconds to apply everywhere: wait for it rather than drop. */
        why = "access denied: the instance role needs logs:CreateLogStream and logs:PutLogEvents on the group";
      } else if (a.status == 400 && error_is(&a, "ResourceNotFoundException")) {
        why = "the log group does not exist";
      } else {
        say("kiln-cwlogs: CloudWatch Logs refused a batch of log lines, dropped: ");
        say(a.body);
        say("\n");
        break;
      }
    }
    report_failure(why);
    /* Powering off: a few quick attempts, then the batch is given up (the init waits 5 s at most). */
    if (stopping && delay >= 2000) break;
    /* Exponential backoff with jitter (half to all of the delay), up to 10 s between attempts. */
    wait_or_stop(stopping ? delay / 2 : delay / 2 + (long)(random_number() % (unsigned long)(delay / 2 + 1)));
    if (delay < 10000) delay *= 2;
  }
  if (a.status == 200) report_success();
  start_batch();
}

/* One kiln-log record -> one event. Malformed records are skipped: kiln-log is the only writer. */
static void take_record(const char *line, size n) {
  long ts = 0;
  size i = 0;
  while (i < n && line[i] >= '0' && line[i] <= '9') ts = ts * 10 + (line[i++] - '0');
  if (i == 0 || i + 3 > n || line[i] != ' ' || line[i + 1] < '0' || line[i + 1] > '7' || line[i + 2] != ' ') return;
  i += 3;
  size app = i;
  while (i < n && line[i] != ' ') i++;
  size app_len = i - app;
  if (i < n) i++;
  if (i >= n) return; /* CloudWatch refuses empty messages; an empty line says nothing */
  /* The app's lines go as written; the init's and kiln-log's keep their console prefix. */
  static char event_buf[8192 + 512];
  struct text event = { event_buf, 0, sizeof event_buf, 0 };
  /* Events must be in time order within a batch: a clock stepped back reuses the last time. */
  if (batch_events && ts < batch_last_ts) ts = batch_last_ts;
  if (batch_events && (batch_events == BATCH_EVENTS || ts - batch_first_ts > BATCH_SPAN_MS)) send_batch();
  add0(&event, batch_events ? ",{\"timestamp\":" : "{\"timestamp\":");
  add_number(&event, (unsigned long)ts, 1);
  add0(&event, ",\"message\":\"");
  if ((app_len == 9 && starts_with(line + app, "kiln-init ")) || (app_len == 8 && starts_with(line + app, "kiln-log "))) {
    add(&event, line + app, app_len);
    add0(&event, ": ");
  }
  add_json_text(&event, line + i, n - i);
  add0(&event, "\"}");
  if (event.overflow) return;
  if (batch.n + event.n + 2 > BATCH_BYTES) {
    send_batch();
    take_record(line, n); /* again, as the first event of the new batch */
    return;
  }
  if (!batch_events) batch_first_ts = ts, batch_started_ms = monotonic_ms();
  add(&batch, event.p, event.n);
  batch_events++;
  batch_last_ts = ts;
}

/* ---- the FIFO ------------------------------------------------------------------------ */
/* Made under a temporary name and opened read-write before it gets its name: kiln-log's
   non-blocking open finds a reader from the first moment the name exists, and this process
   never sees end-of-file when kiln-log closes its end. */
static int open_fifo(const char *path) {
  static char tmp_buf[512];
  struct text tmp = { tmp_buf, 0, sizeof tmp_buf, 0 };
  add0(&tmp, path);
  add0(&tmp, ".new");
  finish(&tmp);
  if (tmp.overflow) usage("FIFO path too long");
  sys3(SYS_unlink, (long)tmp.p, 0, 0);
  if (sys3(SYS_mknod, (long)tmp.p, 0010000 /* S_IFIFO */ | 0600, 0) < 0) usage("cannot create the FIFO");
  long fd = sys3(SYS_open, (long)tmp.p, 02 /* O_RDWR */ | 04000 /* O_NONBLOCK */ | 02000000 /* O_CLOEXEC */, 0);
  if (fd < 0) usage("cannot open the FIFO");
  /* A bigger pipe rides out a slow request; the kernel caps it (pipe-max-size, 1 MiB by default). */
  sys3(SYS_fcntl, fd, 1031 /* F_SETPIPE_SZ */, 1024 * 1024);
  if (sys3(SYS_rename, (long)tmp.p, (long)path, 0) < 0) usage("cannot name the FIFO");
  return (int)fd;
}

#define RECORD_MAX 8192
static char pending[64 * 1024 + RECORD_MAX];
static size pending_len;
static int skipping; /* inside a record longer than RECORD_MAX: dropped up to its newline */

/* Reads what the FIFO holds and turns complete records into events. */
static void drain_fifo(int fd) {
  for (;;) {
    long n = sys3(SYS_read, fd, (long)(pending + pending_len), (long)(sizeof pending - pending_len));
    if (n == -EINTR) continue;
    if (n <= 0) return; /* -EAGAIN: empty for now */
    pending_len += (size)n;
    size start = 0;
    for (size i = 0; i < pending_len; i++) {
      if (pending[i] != '\n') continue;
      if (!skipping) take_record(pending + start, i - start);
      skipping = 0;
      start = i + 1;
    }
    if (pending_len - start > RECORD_MAX) skipping = 1, start = pending_len;
    for (size i = start; i < pending_len; i++) pending[i - start] = pending[i];
    pending_len -= start;
  }
}

__attribute__((noreturn)) static void ship(int fifo) {
  start_batch();
  for (;;) {
    long wait = -1;
    if (batch_events) {
      wait = batch_started_ms + FLUSH_MS - monotonic_ms();
      if (wait < 0) wait = 0;
    }
    struct pollfd pfd[2] = { { fifo, 1 /* POLLIN */, 0 }, { stop_fd, 1, 0 } };
    long ready = sys3(SYS_poll, (long)pfd, stop_fd >= 0 ? 2 : 1, wait);
    if (ready > 0 && pfd[1].revents) stopping = 1;
    if (ready > 0) drain_fifo(fifo);
    if (stopping) {
      drain_fifo(fifo);
      send_batch();
      quit(0);
    }
    if (batch_events && monotonic_ms() - batch_started_ms >= FLUSH_MS) send_batch();
  }
}

/* ---- arguments ----------------------------------------------------------------------- */
/* ENDPOINT: https://HOST[:PORT], or http://IP:PORT only for an emulator on the VM's host. */
static void parse_endpoint(const char *url, const char *address) {
  const char *rest;
  if (starts_with(url, "https://")) endpoint.tls = 1, endpoint.port = 443, rest = url + 8;
  else if (starts_with(url, "http://127.0.0.1:") || starts_with(url, "http://10.0.2.2:") || starts_with(url, "http://169.254.2.2:"))
    endpoint.tls = 0, rest = url + 7;
  else usage("ENDPOINT must be https://HOST[:PORT], or http://127.0.0.1:PORT, http://10.0.2.2:PORT or http://169.254.2.2:PORT");
  size i = 0;
  for (; rest[i] && rest[i] != ':' && rest[i] != '/'; i++) {
    char c = rest[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
    if (!ok || i >= 253) usage("the endpoint's host must be a DNS name or an IPv4 address");
    host_header[i] = c;
  }
  if (i == 0) usage("the endpoint has no host");
  host_header[i] = 0;
  static char name[256];
  for (size j = 0; j <= i; j++) name[j] = host_header[j];
  endpoint.server_name = name;
  if (rest[i] == ':') {
    unsigned v = 0;
    const char *p = rest + i + 1;
    for (; *p >= '0' && *p <= '9' && v <= 65535; p++) v = v * 10 + (unsigned)(*p - '0');
    if (v == 0 || v > 65535 || (*p && !same_text(p, "/"))) usage("the endpoint's port must be a number from 1 to 65535");
    endpoint.port = v;
    /* The Host header (and so the signature) names a port that is not the scheme's default. */
    if (v != (endpoint.tls ? 443u : 80u)) {
      struct text h = { host_header, i, sizeof host_header, 0 };
      add0(&h, ":");
      add_number(&h, v, 1);
      finish(&h);
    }
  } else if (rest[i] && !same_text(rest + i, "/")) {
    usage("the endpoint must have no path");
  } else if (!endpoint.tls) {
    usage("an http endpoint needs its port");
  }
  if (!parse_ipv4(address, endpoint.address)) usage("ADDRESS must be an IPv4 address");
}

static void parse_imds(const char *arg) {
  static char addr[32];
  size i = 0;
  for (; arg[i] && arg[i] != ':' && i + 1 < sizeof addr; i++) addr[i] = arg[i];
  addr[i] = 0;
  unsigned v = 0;
  if (arg[i] == ':') for (const char *p = arg + i + 1; *p >= '0' && *p <= '9' && v <= 65535; p++) v = v * 10 + (unsigned)(*p - '0');
  if (!parse_ipv4(addr, imds.address) || v == 0 || v > 65535) usage("IMDS_ADDRESS:PORT must be an IPv4 address and a port");
  imds.port = v;
  imds.server_name = addr;
}

/* A log group name: 1-512 of [A-Za-z0-9_./#-]; a stream name: 1-512 characters without ':' or '*'. */
static int valid_name(const char *s, int group_rules) {
  size n = text_length(s);
  if (n == 0 || n > 512) return 0;
  for (size i = 0; i < n; i++) {
    char c = s[i];
    if (group_rules) {
      int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '/' || c == '#' || c == '-';
      if (!ok) return 0;
    } else if (c == ':' || c == '*' || (unsigned char)c < 0x20) {
      return 0;
    }
  }
  return 1;
}

static int valid_region(const char *s) {
  size n = text_length(s);
  if (n == 0 || n > 32) return 0;
  for (size i = 0; i < n; i++) if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-')) return 0;
  return 1;
}

/* kiln-cwlogs sign REGION HOST AMZDATE ACCESS SECRET TOKEN|- TARGET < body */
static int sign_command(int argc, char **argv) {
  if (argc != 9) usage("sign takes REGION HOST AMZDATE ACCESS_KEY SECRET_KEY TOKEN|- TARGET");
  static struct credentials c;
  struct text t;
  t = (struct text){ c.access_key, 0, sizeof c.access_key, 0 };
  add0(&t, argv[5]);
  finish(&t);
  t = (struct text){ c.secret_key, 0, sizeof c.secret_key, 0 };
  add0(&t, argv[6]);
  finish(&t);
  t = (struct text){ c.token, 0, sizeof c.token, 0 };
  if (!same_text(argv[7], "-")) add0(&t, argv[7]);
  finish(&t);
  static char body[64 * 1024];
  size n = 0;
  for (;;) {
    long got = sys3(SYS_read, 0, (long)(body + n), (long)(sizeof body - n));
    if (got == -EINTR) continue;
    if (got <= 0 || n + (size)got == sizeof body) break;
    n += (size)got;
  }
  static char out_buf[1024];
  struct text out = { out_buf, 0, sizeof out_buf, 0 };
  sign_request(&out, &c, argv[2], argv[3], argv[4], argv[8], body, n);
  add0(&out, "\n");
  write_all(1, out.p, out.n);
  return 0;
}

static int run(int argc, char **argv) {
  if (argc >= 2 && same_text(argv[1], "sign")) return sign_command(argc, argv);
  if (argc < 8 || argc > 9) usage("wrong number of arguments");
  region = argv[2];
  group = argv[3];
  stream = argv[4];
  if (!valid_region(region)) usage("REGION must be an AWS region name, like eu-west-1");
  if (!valid_name(group, 1)) usage("GROUP must be a log group name (1-512 of A-Z a-z 0-9 _ . / # -)");
  if (!valid_name(stream, 0)) usage("STREAM must be a log stream name (1-512 characters, no ':' or '*')");
  parse_endpoint(argv[5], argv[6]);
  if (endpoint.tls) load_anchors(argv[7]);
  if (argc == 9) parse_imds(argv[8]);
  /* A reader that went away must not kill the writer of a socket: errors are handled where they occur. */
  struct { long handler, flags, restorer, mask; } ignore = { 1 /* SIG_IGN */, 0, 0, 0 };
  sys5(SYS_rt_sigaction, 13 /* SIGPIPE */, (long)&ignore, 0, 8, 0);
  unsigned long term = 1UL << (15 /* SIGTERM */ - 1);
  if (sys5(SYS_rt_sigprocmask, 0 /* SIG_BLOCK */, (long)&term, 0, 8, 0) == 0)
    stop_fd = (int)sys5(SYS_signalfd4, -1, (long)&term, 8, 04000 /* NONBLOCK */ | 02000000 /* CLOEXEC */, 0);
  ship(open_fifo(argv[1]));
}

/* ---- process entry and the C library functions BearSSL calls ------------------------ */
#define KILN_PROGRAM "kiln-cwlogs"
#include "kiln-bearssl-runtime.h"
