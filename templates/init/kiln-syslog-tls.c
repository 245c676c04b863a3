/*
 * kiln-syslog-tls: ships the console's lines to a syslog server over TLS (RFC 5425).
 *
 *   kiln-syslog-tls FIFO HOST[:PORT] ADDRESS CAFILE HOSTNAME
 *   kiln-syslog-tls --check CAFILE
 *
 * kiln-log writes one record per line into FIFO: "<unix-time-ms> <severity 0-7> <app-name> <text>\n".
 * Each becomes an RFC 5424 message built exactly as kiln-log's udp/tcp modes build theirs,
 *   <PRI>1 TIMESTAMP HOSTNAME APP-NAME - - - TEXT      (facility user: PRI = 8 + severity)
 * with the record's own time (RFC 3339 UTC, milliseconds), sent as an octet-counted frame
 * "LEN SP MESSAGE" over one persistent TLS connection to ADDRESS:PORT (6514). The handshake
 * sends HOST as SNI and requires a chain to a certificate in CAFILE (PEM) that names HOST;
 * nothing is sent to a server that fails that. A lost or refused connection is retried with
 * backoff (1 s doubling to 60 s) and its reason printed on stderr (the console).
 *
 * It never holds up the app: everything is non-blocking around one poll loop, lines wait in a
 * bounded queue (256 KiB) while the server is away, and when the queue is full this program
 * stops reading the FIFO, so kiln-log drops lines and later reports how many (its contract).
 * Lines handed to TLS just before a connection breaks are lost with it (TCP gives no receipt).
 * When kiln-log closes the FIFO (power off) the queue is flushed for up to 3 s, then it exits.
 * --check loads CAFILE as the trusted set and says why it cannot serve (the init validates
 * KILN_SYSLOG_CA with it).
 *
 * Built like kiln-https: no libc (raw system calls), BearSSL's static library. The system-call
 * and C-library helpers below are copies of kiln-https.c's (kept apart so each helper stays
 * one file; a shared header is a later cleanup).
 */
#include <bearssl.h>

#include "kiln-freestanding.h"

/* ---- system calls (x86-64) ---------------------------------------------------------- */
enum { SYS_read = 0, SYS_write = 1, SYS_open = 2, SYS_close = 3, SYS_poll = 7, SYS_socket = 41, SYS_connect = 42,
  SYS_sendto = 44, SYS_recvfrom = 45, SYS_getsockopt = 55, SYS_arch_prctl = 158, SYS_clock_gettime = 228,
  SYS_exit_group = 231, SYS_getrandom = 318 };
enum { EINTR = 4, EAGAIN = 11, EINPROGRESS = 115 };
#define O_NONBLOCK 04000
#define O_CLOEXEC 02000000
#define SOCK_NONBLOCK 04000
#define SOCK_CLOEXEC 02000000
#define MSG_DONTWAIT 0x40
#define MSG_NOSIGNAL 0x4000
#define POLLIN 1
#define POLLOUT 4
#define POLLERR 8
#define POLLHUP 16

struct timespec { long sec, nsec; };

static long clock_ms(int which) {
  struct timespec t = { 0, 0 };
  sys3(SYS_clock_gettime, which, (long)&t, 0);
  return t.sec * 1000 + t.nsec / 1000000;
}
static long monotonic_ms(void) { return clock_ms(1); }

/* ---- usage and the trusted set ------------------------------------------------------- */
__attribute__((noreturn)) static void usage(const char *why) {
  say("kiln-syslog-tls: ");
  say(why);
  say("\nusage: kiln-syslog-tls FIFO HOST[:PORT] ADDRESS CAFILE HOSTNAME | kiln-syslog-tls --check CAFILE\n");
  quit(2);
}

static const char *ca_path = "CAFILE";
__attribute__((noreturn)) static void bad_cafile(const char *why) {
  say("kiln-syslog-tls: ");
  say(ca_path);
  say(": ");
  say(why);
  say("\n");
  quit(2);
}

/* Mozilla's set has about 150 roots; a DN and a key take about 1 KiB. */
#define MAX_ANCHORS 320
#define ANCHOR_ARENA_BYTES (512 * 1024)
#include "kiln-trust-anchors.h"

/* ---- arguments ----------------------------------------------------------------------- */
static char server_name[256];
static unsigned port_number = 6514;
static unsigned char address[4];
static const char *host_name;

static void parse_target(const char *arg) {
  size i = 0;
  for (; arg[i] && arg[i] != ':'; i++) {
    char c = arg[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
    if (!ok || i >= 253) usage("HOST must be a DNS name or an IPv4 address (letters, digits, dots, hyphens)");
    server_name[i] = c;
  }
  if (i == 0) usage("HOST is empty");
  server_name[i] = 0;
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

/* RFC 5424 HOSTNAME and APP-NAME: printable US-ASCII without spaces, 255 and 48 at most. */
static int is_syslog_name(const char *s, size n, size max) {
  if (n == 0 || n > max) return 0;
  for (size i = 0; i < n; i++) if (s[i] < 33 || s[i] > 126) return 0;
  return 1;
}

/* ---- the queue of octet-counted frames ----------------------------------------------- */
#define QUEUE_SIZE (256 * 1024)
#define READ_SIZE 4096
#define READ_ROOM (32 * 1024)
#define RECORD_MAX 8192
static char queue[QUEUE_SIZE];
static size q_start, q_end;

static size queue_room(void) { return QUEUE_SIZE - (q_end - q_start); }

static void enqueue(const char *p, size n) {
  if (QUEUE_SIZE - q_end < n) {
    size used = q_end - q_start;
    for (size i = 0; i < used; i++) queue[i] = queue[q_start + i];
    q_start = 0;
    q_end = used;
  }
  for (size i = 0; i < n; i++) queue[q_end++] = p[i];
}

struct buf { char *p; size n, cap; };
static void put(struct buf *b, const char *s, size n) {
  for (size i = 0; i < n && b->n < b->cap; i++) b->p[b->n++] = s[i];
}
static void putnum(struct buf *b, unsigned long v, int width) {
  char tmp[24];
  int n = 0;
  do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
  while (n < width) tmp[n++] = '0';
  while (n) put(b, &tmp[--n], 1);
}

/* RFC 3339 UTC with milliseconds, as kiln-log writes it (days -> date: Howard Hinnant's algorithm). */
static void put_timestamp(struct buf *b, unsigned long ms) {
  long sec = (long)(ms / 1000), days = sec / 86400, secs = sec % 86400;
  long z = days + 719468, era = z / 146097, doe = z - era * 146097;
  long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  long doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
  long day = doy - (153 * mp + 2) / 5 + 1, month = mp < 10 ? mp + 3 : mp - 9, year = yoe + era * 400 + (month <= 2);
  putnum(b, (unsigned long)year, 4); put(b, "-", 1);
  putnum(b, (unsigned long)month, 2); put(b, "-", 1);
  putnum(b, (unsigned long)day, 2); put(b, "T", 1);
  putnum(b, (unsigned long)(secs / 3600), 2); put(b, ":", 1);
  putnum(b, (unsigned long)(secs / 60 % 60), 2); put(b, ":", 1);
  putnum(b, (unsigned long)(secs % 60), 2); put(b, ".", 1);
  putnum(b, ms % 1000, 3); put(b, "Z", 1);
}

static unsigned long malformed, overflowed;

/* "LEN SP <PRI>1 TIMESTAMP HOSTNAME APP-NAME - - - TEXT" into the queue, if it fits. Records are
   read in small pieces while the queue has room, but a frame is longer than its record (the host
   name, the date): one that does not fit is dropped and counted, and the count goes out first
   once there is room again. NOTE_ROOM keeps space for that note. */
#define NOTE_ROOM 512
static void push_frame(unsigned long ms, int severity, const char *app, size app_len, const char *text, size text_len) {
  static char message[RECORD_MAX + 512];
  struct buf m = { message, 0, sizeof message };
  put(&m, "<", 1);
  putnum(&m, (unsigned long)(8 + severity), 1);
  put(&m, ">1 ", 3);
  put_timestamp(&m, ms);
  put(&m, " ", 1);
  put(&m, host_name, text_length(host_name));
  put(&m, " ", 1);
  put(&m, app, app_len);
  put(&m, " - - - ", 7);
  put(&m, text, text_len);
  char head[24];
  struct buf h = { head, 0, sizeof head };
  putnum(&h, m.n, 1);
  put(&h, " ", 1);
  if (h.n + m.n + NOTE_ROOM > queue_room()) { overflowed++; return; }
  enqueue(head, h.n);
  enqueue(message, m.n);
}

static void push_overflow_note(void) {
  if (!overflowed || queue_room() < 2 * NOTE_ROOM) return;
  char note[96];
  struct buf t = { note, 0, sizeof note };
  putnum(&t, overflowed, 1);
  const char *why = " lines dropped: the syslog server was away and the queue was full";
  put(&t, why, text_length(why));
  overflowed = 0;
  const char *app = "kiln-syslog-tls";
  push_frame((unsigned long)clock_ms(0), 4, app, text_length(app), note, t.n);
}

/* One FIFO record (without its newline) -> one frame in the queue. */
static void take_record(const char *r, size n) {
  size i = 0;
  unsigned long ms = 0;
  int digits = 0;
  while (i < n && r[i] >= '0' && r[i] <= '9' && digits < 16) ms = ms * 10 + (unsigned long)(r[i++] - '0'), digits++;
  int ok = digits > 0 && i + 3 < n && r[i] == ' ' && r[i + 1] >= '0' && r[i + 1] <= '7' && r[i + 2] == ' ';
  int severity = ok ? r[i + 1] - '0' : 0;
  size app = i + 3, app_end = app;
  while (ok && app_end < n && r[app_end] != ' ') app_end++;
  if (!ok || !is_syslog_name(r + app, app_end - app, 48)) {
    if (malformed++ == 0) say("kiln-syslog-tls: skipping records not in the form '<unix-time-ms> <severity 0-7> <app-name> <text>'\n");
    return;
  }
  size text = app_end < n ? app_end + 1 : n;
  push_overflow_note();
  push_frame(ms, severity, r + app, app_end - app, r + text, n - text);
}

static char record[RECORD_MAX];
static size record_len;
static int record_cut; /* a record longer than RECORD_MAX: the rest is skipped up to its newline */

static void take_bytes(const char *p, size n) {
  for (size i = 0; i < n; i++) {
    if (p[i] == '\n') {
      if (!record_cut) take_record(record, record_len);
      record_len = 0;
      record_cut = 0;
    } else if (record_len < RECORD_MAX) {
      record[record_len++] = p[i];
    } else if (!record_cut) {
      take_record(record, record_len);
      record_cut = 1;
    }
  }
}

/* ---- the connection ------------------------------------------------------------------ */
enum { DOWN, CONNECTING, TLS };
static int state = DOWN;
static int sock = -1;
static int established;
static long deadline_ms, next_attempt_ms, backoff_ms = 1000;
static br_ssl_client_context client;
static br_x509_minimal_context x509;
static unsigned char iobuf[BR_SSL_BUFSIZE_BIDI];
static const char *last_reason;
static unsigned long repeats;

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

/* Why the TLS engine stopped, in words a person can act on (as kiln-https says it). */
static const char *tls_text(int err) {
  switch (err) {
    case BR_ERR_X509_NOT_TRUSTED: return "certificate not trusted (its chain leads to no CA in the trusted set)";
    case BR_ERR_X509_BAD_SERVER_NAME: return "certificate name mismatch (the certificate is not for this host name)";
    case BR_ERR_X509_EXPIRED: return "certificate expired or not yet valid";
    case BR_ERR_X509_TIME_UNKNOWN: return "certificate validity cannot be checked: the clock is not set";
    case BR_ERR_X509_NOT_CA: return "certificate chain invalid (an issuer is not a CA)";
    case BR_ERR_X509_BAD_SIGNATURE: return "certificate chain invalid (a signature does not verify)";
    case BR_ERR_X509_DN_MISMATCH: return "certificate chain invalid (issuer and subject names do not chain)";
    case BR_ERR_X509_FORBIDDEN_KEY_USAGE: return "certificate not usable for a TLS server (key usage)";
    case BR_ERR_X509_WEAK_PUBLIC_KEY: return "certificate key too weak";
    case BR_ERR_X509_CRITICAL_EXTENSION: return "certificate has an unsupported critical extension";
    case BR_ERR_X509_EMPTY_CHAIN: return "the server sent no certificate";
    case BR_ERR_BAD_CIPHER_SUITE: case BR_ERR_UNSUPPORTED_VERSION: case BR_ERR_BAD_VERSION:
      return "no TLS version or cipher suite in common with the server";
    case BR_ERR_IO: return errno_text(last_errno);
    default: break;
  }
  if (err >= BR_ERR_X509_OK && err < 64) return "certificate could not be verified (malformed or unsupported)";
  if (err & BR_ERR_RECV_FATAL_ALERT) return "the server aborted the TLS connection (it sent a fatal alert)";
  if (err & BR_ERR_SEND_FATAL_ALERT) return "TLS protocol error (the server's messages were refused)";
  return "TLS protocol error";
}

/* Closes the connection and schedules the next try; a reason repeated while the server stays
   away is printed at the 1st, 2nd, 4th, 8th... time, so a wrong setting does not flood the console. */
static void drop_connection(const char *reason) {
  if (sock >= 0) sys3(SYS_close, sock, 0, 0);
  sock = -1;
  state = DOWN;
  int was_up = established;
  established = 0;
  if (was_up) backoff_ms = 1000;
  next_attempt_ms = monotonic_ms() + backoff_ms;
  repeats = (!was_up && last_reason == reason) ? repeats + 1 : 1;
  last_reason = reason;
  if ((repeats & (repeats - 1)) == 0) {
    say("kiln-syslog-tls: ");
    say(server_name);
    say(":");
    say_number(port_number);
    say(was_up ? ": connection lost: " : ": ");
    say(reason);
    if (repeats > 1) { say(" (again, "); say_number(repeats); say(" times in a row)"); }
    say("; retrying in ");
    say_number((unsigned long)backoff_ms / 1000);
    say(" s\n");
  }
  if (!was_up) backoff_ms = backoff_ms >= 32000 ? 60000 : backoff_ms * 2;
}

static void start_connect(void) {
  long fd = sys3(SYS_socket, 2 /* AF_INET */, 1 /* SOCK_STREAM */ | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) { drop_connection("cannot create a socket"); return; }
  sock = (int)fd;
  struct { unsigned short family, port; unsigned char addr[4]; unsigned char zero[8]; } sa = { 2, 0, { 0 }, { 0 } };
  sa.port = (unsigned short)((port_number >> 8) | ((port_number & 0xff) << 8));
  for (int i = 0; i < 4; i++) sa.addr[i] = address[i];
  long r;
  do r = sys3(SYS_connect, fd, (long)&sa, sizeof sa); while (r == -EINTR);
  if (r < 0 && r != -EINPROGRESS) { drop_connection(errno_text((int)-r)); return; }
  state = CONNECTING;
  /* Connect and handshake get 15 s together: a silent server cannot hold the queue forever. */
  deadline_ms = monotonic_ms() + 15000;
}

static void start_tls(void) {
  struct timespec now = { 0, 0 };
  sys3(SYS_clock_gettime, 0 /* CLOCK_REALTIME */, (long)&now, 0);
  unsigned char seed[32];
  if (sys3(SYS_getrandom, (long)seed, sizeof seed, 0) != sizeof seed) { drop_connection("no random numbers from the kernel"); return; }
  br_ssl_client_init_full(&client, &x509, anchors, anchor_count);
  /* BearSSL counts days from 1 January of year 0; the Unix epoch is day 719528 of that count. */
  br_x509_minimal_set_time(&x509, (uint32_t)(now.sec / 86400 + 719528), (uint32_t)(now.sec % 86400));
  br_ssl_engine_set_buffer(&client.eng, iobuf, sizeof iobuf, 1);
  br_ssl_engine_inject_entropy(&client.eng, seed, sizeof seed);
  if (!br_ssl_client_reset(&client, server_name, 0)) { drop_connection(tls_text(br_ssl_engine_last_error(&client.eng))); return; }
  state = TLS;
}

/* Moves bytes between the queue, the TLS engine and the socket until nothing moves. */
static void pump(void) {
  br_ssl_engine_context *eng = &client.eng;
  for (;;) {
    unsigned st = br_ssl_engine_current_state(eng);
    if (st & BR_SSL_CLOSED) {
      int err = br_ssl_engine_last_error(eng);
      drop_connection(err == BR_ERR_OK ? "connection closed by the server" : tls_text(err));
      return;
    }
    int moved = 0;
    size len;
    if (st & BR_SSL_SENDREC) {
      unsigned char *b = br_ssl_engine_sendrec_buf(eng, &len);
      long n = sys6(SYS_sendto, sock, (long)b, (long)len, MSG_DONTWAIT | MSG_NOSIGNAL, 0, 0);
      if (n > 0) { br_ssl_engine_sendrec_ack(eng, (size)n); moved = 1; }
      else if (n != -EAGAIN && n != -EINTR) { last_errno = n == 0 ? 32 : (int)-n; drop_connection(errno_text(last_errno)); return; }
    }
    if (st & BR_SSL_RECVREC) {
      unsigned char *b = br_ssl_engine_recvrec_buf(eng, &len);
      long n = sys6(SYS_recvfrom, sock, (long)b, (long)len, MSG_DONTWAIT, 0, 0);
      if (n > 0) { br_ssl_engine_recvrec_ack(eng, (size)n); moved = 1; }
      else if (n == 0) { drop_connection("connection closed by the server"); return; }
      else if (n != -EAGAIN && n != -EINTR) { last_errno = (int)-n; drop_connection(errno_text(last_errno)); return; }
    }
    if (st & BR_SSL_RECVAPP) {
      /* A syslog server has nothing to say; whatever it sends is read and dropped. */
      br_ssl_engine_recvapp_buf(eng, &len);
      br_ssl_engine_recvapp_ack(eng, len);
      moved = 1;
    }
    if (st & BR_SSL_SENDAPP) {
      if (!established) {
        established = 1;
        backoff_ms = 1000;
        if (last_reason) {
          say("kiln-syslog-tls: ");
          say(server_name);
          say(": connected again\n");
        }
        last_reason = 0;
      }
      if (q_end > q_start) {
        unsigned char *b = br_ssl_engine_sendapp_buf(eng, &len);
        size n = q_end - q_start < len ? q_end - q_start : len;
        for (size i = 0; i < n; i++) b[i] = (unsigned char)queue[q_start + i];
        br_ssl_engine_sendapp_ack(eng, n);
        q_start += n;
        if (q_start == q_end) q_start = q_end = 0;
        br_ssl_engine_flush(eng, 0);
        moved = 1;
      }
    }
    if (!moved) return;
  }
}

/* ---- main loop ----------------------------------------------------------------------- */
struct pollfd { int fd; short events, revents; };

static int run(int argc, char **argv) {
  if (argc == 3 && same_text(argv[1], "--check")) {
    ca_path = argv[2];
    load_anchors(argv[2]);
    say_number(anchor_count);
    say(" certificates\n");
    return 0;
  }
  if (argc != 6) usage("wrong number of arguments");
  parse_target(argv[2]);
  if (!parse_ipv4(argv[3], address)) usage("ADDRESS must be an IPv4 address");
  host_name = argv[5];
  if (!is_syslog_name(host_name, text_length(host_name), 255)) usage("HOSTNAME must be printable ASCII without spaces");
  ca_path = argv[4];
  load_anchors(argv[4]);
  long fifo = sys3(SYS_open, (long)argv[1], O_NONBLOCK | O_CLOEXEC /* O_RDONLY */, 0);
  if (fifo < 0) usage("cannot open FIFO for reading");

  int closing = 0;
  long closing_deadline = 0;
  start_connect();
  static char chunk[READ_SIZE];
  for (;;) {
    long now = monotonic_ms();
    if (state == DOWN && now >= next_attempt_ms) start_connect();
    if (state == TLS) pump();
    unsigned st = state == TLS ? br_ssl_engine_current_state(&client.eng) : 0;
    if (closing && ((q_end == q_start && !(st & BR_SSL_SENDREC) && state != CONNECTING) || now >= closing_deadline)) return 0;

    struct pollfd fds[2];
    int count = 0;
    /* Read the FIFO only while the queue has room: when it has not, the FIFO fills and kiln-log
       drops and counts lines; that is its contract, and it never waits on this program. */
    if (!closing && queue_room() >= READ_ROOM) fds[count++] = (struct pollfd){ (int)fifo, POLLIN, 0 };
    int sock_slot = -1;
    short want = state == CONNECTING ? POLLOUT : (short)(((st & BR_SSL_SENDREC) ? POLLOUT : 0) | ((st & BR_SSL_RECVREC) ? POLLIN : 0));
    if (state != DOWN && want) { sock_slot = count; fds[count++] = (struct pollfd){ sock, want, 0 }; }
    long wait = -1;
    if (state == DOWN) wait = next_attempt_ms - now;
    else if (!established) wait = deadline_ms - now;
    if (closing && (wait < 0 || closing_deadline - now < wait)) wait = closing_deadline - now;
    if (wait < 0 && (state == DOWN || !established || closing)) wait = 0;
    long ready = sys3(SYS_poll, (long)fds, count, wait);
    if (ready == -EINTR) continue;
    now = monotonic_ms();

    if (count > 0 && fds[0].fd == (int)fifo && fds[0].revents) {
      long n = sys3(SYS_read, fifo, (long)chunk, READ_SIZE);
      if (n > 0) take_bytes(chunk, (size)n);
      else if (n == 0 || (n != -EAGAIN && n != -EINTR)) {
        /* kiln-log let go of the FIFO: it is shutting down. Deliver what is queued, then leave. */
        closing = 1;
        closing_deadline = now + 3000;
      }
    }
    if (state == CONNECTING && sock_slot >= 0 && fds[sock_slot].revents) {
      int err = 0;
      unsigned err_len = sizeof err;
      sys6(SYS_getsockopt, sock, 1 /* SOL_SOCKET */, 4 /* SO_ERROR */, (long)&err, (long)&err_len, 0);
      if (err) drop_connection(errno_text(err));
      else start_tls();
    }
    if (state != DOWN && !established && now >= deadline_ms) drop_connection("timed out (no TLS connection within 15 s)");
  }
}

/* ---- process entry and the C library functions BearSSL calls ------------------------ */
#define KILN_PROGRAM "kiln-syslog-tls"
#include "kiln-bearssl-runtime.h"
