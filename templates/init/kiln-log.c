/*
 * kiln-log: the app's console. Runs in the initramfs next to the init, for the whole boot.
 *
 *   kiln-log TTYFILE APPNAME HOSTNAME [udp|tcp ADDRESS PORT] [--fifo PATH]...   (up to 2 FIFOs)
 *
 * It allocates a pseudo-terminal, writes the slave's path (/dev/pts/N) to TTYFILE, and from
 * then on reads everything written to that terminal: each line goes to the serial console
 * (its stdout) behind an RFC 3339 UTC timestamp and, when a destination is given, to a remote
 * syslog server as an RFC 5424 message (UDP: one datagram per line; TCP: RFC 6587 octet
 * counting). The init points the app's stdout and stderr at the terminal, and writes its own
 * "kiln-init: " lines there too, so the console keeps their order.
 *
 * Why a terminal and not a pipe: the app's output used to go straight to the console, a tty,
 * where C stdio and Python flush every line; behind a pipe they would buffer whole blocks.
 *
 * A line starting with "<N>" (N = 0..7, the sd-daemon convention) sets its syslog severity
 * (default 6, info) and the prefix is dropped. Lines from the init are sent with APP-NAME
 * "kiln-init". Remote logging never holds up the console: sends do not block, a lost TCP
 * connection is retried at most every few seconds, and lines are dropped (and counted) meanwhile.
 * kiln-log exits once every writer has closed the terminal and it has printed what was left,
 * which is how the init knows the console is complete before powering off.
 *
 * Each --fifo PATH gets every line as one record, "<unix-time-ms> <severity> <app-name> <text>\n",
 * for a log shipper reading the FIFO (kiln-cwlogs). Records are written without blocking and
 * at most PIPE_BUF bytes long, so each write is all or nothing: while the FIFO is full, or has
 * no reader, lines are dropped and counted, and once it accepts again the first record says
 * how many ("kiln-log" as app-name). A shipper that falls behind or dies costs lines, never
 * the console or the app.
 *
 * Built without libc (raw x86-64 syscalls), like kiln-exec: a few KB, static, reproducible.
 */
#define SYS_read 0
#define SYS_write 1
#define SYS_open 2
#define SYS_close 3
#define SYS_poll 7
#define SYS_ioctl 16
#define SYS_socket 41
#define SYS_connect 42
#define SYS_sendto 44
#define SYS_setsockopt 54
#define SYS_exit 60
#define SYS_rename 82
#define SYS_rt_sigaction 13
#define SYS_clock_gettime 228

#define O_WRONLY 01
#define O_RDWR 02
#define O_NONBLOCK 04000
#define O_CREAT 0100
#define O_NOCTTY 0400
#define O_TRUNC 01000
#define O_CLOEXEC 02000000
#define TIOCSPTLCK 0x40045431
#define TIOCGPTN 0x80045430
#define AF_INET 2
#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define SOCK_CLOEXEC 02000000
#define SOL_SOCKET 1
#define SO_SNDTIMEO 21
#define MSG_DONTWAIT 0x40
#define MSG_NOSIGNAL 0x4000
#define POLLIN 1
#define EINTR 4
#define EIO 5
#define EAGAIN 11
#define CLOCK_REALTIME 0
#define CLOCK_MONOTONIC 1

typedef unsigned long size_t;

static long sys3(long n, long a, long b, long c) {
  long ret;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
  return ret;
}

static long sys6(long n, long a, long b, long c, long d, long e, long f) {
  long ret;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9) : "rcx", "r11", "memory");
  return ret;
}

/* gcc may emit calls to these for struct copies even when freestanding. */
void *memset(void *dst, int c, size_t n) {
  volatile unsigned char *d = dst;
  while (n--) *d++ = (unsigned char)c;
  return dst;
}
void *memcpy(void *dst, const void *src, size_t n) {
  volatile unsigned char *d = dst;
  const unsigned char *s = src;
  while (n--) *d++ = *s++;
  return dst;
}

static unsigned long length(const char *s) {
  unsigned long n = 0;
  while (s[n]) n++;
  return n;
}

static void write_all(long fd, const char *p, long n) {
  while (n > 0) {
    long w = sys3(SYS_write, fd, (long)p, n);
    if (w == -EINTR) continue;
    if (w <= 0) return;
    p += w;
    n -= w;
  }
}

static void die(const char *what) {
  write_all(2, "kiln-log: ", 10);
  write_all(2, what, (long)length(what));
  write_all(2, "\n", 1);
  sys3(SYS_exit, 1, 0, 0);
  for (;;) {}
}

/* ---- small string building ------------------------------------------------------------ */
struct buf {
  char *p;
  long n, cap;
};

static void put(struct buf *b, const char *s, long n) {
  for (long i = 0; i < n && b->n < b->cap; i++) b->p[b->n++] = s[i];
}
static void puts0(struct buf *b, const char *s) { put(b, s, (long)length(s)); }
static void putnum(struct buf *b, unsigned long v, int width) {
  char tmp[24];
  int n = 0;
  do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
  while (n < width) tmp[n++] = '0';
  while (n) put(b, &tmp[--n], 1);
}

static long number(const char *s) {
  long n = 0;
  if (!*s) return -1;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return -1;
    n = n * 10 + (*s - '0');
  }
  return n;
}

/* ---- time ----------------------------------------------------------------------------- */
struct timespec { long sec, nsec; };

static long monotonic_ms(void) {
  struct timespec t;
  sys3(SYS_clock_gettime, CLOCK_MONOTONIC, (long)&t, 0);
  return t.sec * 1000 + t.nsec / 1000000;
}

/* RFC 3339 UTC with milliseconds: 2025-01-31T23:59:59.123Z (days -> date: Howard Hinnant's algorithm). */
static void put_timestamp(struct buf *b) {
  struct timespec t;
  sys3(SYS_clock_gettime, CLOCK_REALTIME, (long)&t, 0);
  long days = t.sec / 86400, secs = t.sec % 86400;
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
  putnum(b, (unsigned long)(t.nsec / 1000000), 3); put(b, "Z", 1);
}

/* ---- remote syslog -------------------------------------------------------------------- */
struct sockaddr_in {
  unsigned short family, port;
  unsigned int addr;
  char zero[8];
};

static int proto;               /* 0: none, SOCK_DGRAM or SOCK_STREAM */
static struct sockaddr_in dest;
static long sock = -1;
static long next_connect_ms;
static unsigned long dropped;
static const char *app_name, *host_name;

static int parse_ipv4(const char *s, unsigned int *out) {
  unsigned char octets[4];
  for (int i = 0; i < 4; i++) {
    long v = 0;
    int digits = 0;
    while (*s >= '0' && *s <= '9' && digits < 4) { v = v * 10 + (*s++ - '0'); digits++; }
    if (!digits || v > 255) return 0;
    octets[i] = (unsigned char)v;
    if (i < 3 && *s++ != '.') return 0;
  }
  if (*s) return 0;
  *out = (unsigned int)octets[0] | (unsigned int)octets[1] << 8 | (unsigned int)octets[2] << 16 | (unsigned int)octets[3] << 24;
  return 1;
}

static void disconnect(void) {
  if (sock >= 0) sys3(SYS_close, sock, 0, 0);
  sock = -1;
}

static int ensure_connected(void) {
  if (sock >= 0) return 1;
  long now = monotonic_ms();
  if (now < next_connect_ms) return 0;
  next_connect_ms = now + 5000;
  sock = sys3(SYS_socket, AF_INET, proto | SOCK_CLOEXEC, 0);
  if (sock < 0) return 0;
  /* Bounds connect() (TCP) and blocking sends: the console must not wait on the network. */
  long timeout[2] = {1, 0};
  sys6(SYS_setsockopt, sock, SOL_SOCKET, SO_SNDTIMEO, (long)timeout, sizeof timeout, 0);
  if (sys3(SYS_connect, sock, (long)&dest, sizeof dest) < 0) {
    disconnect();
    return 0;
  }
  return 1;
}

static void ship(int severity, const char *app, const char *msg, long n);

static void send_frame(const char *frame, long n) {
  if (!ensure_connected()) { dropped++; return; }
  if (proto == SOCK_STREAM) {
    char head[24];
    struct buf h = {head, 0, sizeof head};
    putnum(&h, (unsigned long)n, 1);
    put(&h, " ", 1);
    /* Octet counting: the length prefix and the frame; a short send breaks the stream, so reconnect. */
    if (sys6(SYS_sendto, sock, (long)head, h.n, MSG_DONTWAIT | MSG_NOSIGNAL, 0, 0) != h.n ||
        sys6(SYS_sendto, sock, (long)frame, n, MSG_DONTWAIT | MSG_NOSIGNAL, 0, 0) != n) {
      disconnect();
      dropped++;
    }
  } else {
    /* UDP errors (ICMP port unreachable) are not worth a reconnect; the datagram is gone either way. */
    sys6(SYS_sendto, sock, (long)frame, n, MSG_DONTWAIT | MSG_NOSIGNAL, 0, 0);
  }
}

/* <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA MSG, facility user (1). */
static void ship(int severity, const char *app, const char *msg, long n) {
  static char frame[4608];
  struct buf f = {frame, 0, sizeof frame};
  if (dropped && sock >= 0) {
    unsigned long lost = dropped;
    dropped = 0;
    char note[64];
    struct buf m = {note, 0, sizeof note};
    puts0(&m, "dropped ");
    putnum(&m, lost, 1);
    puts0(&m, " lines while the syslog server was unreachable");
    ship(4, "kiln-log", note, m.n);
  }
  put(&f, "<", 1);
  putnum(&f, (unsigned long)(8 + severity), 1);
  put(&f, ">1 ", 3);
  put_timestamp(&f);
  put(&f, " ", 1);
  puts0(&f, host_name);
  put(&f, " ", 1);
  puts0(&f, app);
  put(&f, " - - - ", 7);
  put(&f, msg, n);
  send_frame(frame, f.n);
}

/* ---- FIFO outputs for log shippers ---------------------------------------------------- */
/* PIPE_BUF: writes up to this size to a pipe are atomic, so a record is never cut in two. */
#define RECORD_MAX 4096
#define MAX_FIFOS 2

struct fifo {
  const char *path;
  long fd;                /* -1: not open (no reader yet, or the reader went away) */
  unsigned long dropped;  /* lines lost since the last record that got through */
};
static struct fifo fifos[MAX_FIFOS];
static int fifo_count;

static long realtime_ms(void) {
  struct timespec t;
  sys3(SYS_clock_gettime, CLOCK_REALTIME, (long)&t, 0);
  return t.sec * 1000 + t.nsec / 1000000;
}

/* "<ms> <severity> <app> <text>\n" with as much of the text as fits in RECORD_MAX (cut between
   UTF-8 characters); *used says how much that was, the caller sends the rest as more records. */
static long format_record(char *out, long ms, int severity, const char *app, const char *text, long n, long *used) {
  struct buf r = {out, 0, RECORD_MAX};
  putnum(&r, (unsigned long)ms, 1);
  put(&r, " ", 1);
  putnum(&r, (unsigned long)severity, 1);
  put(&r, " ", 1);
  puts0(&r, app);
  put(&r, " ", 1);
  long take = RECORD_MAX - 1 - r.n;
  if (take >= n) take = n;
  else while (take > 0 && (text[take] & 0xc0) == 0x80) take--;
  put(&r, text, take);
  r.cap = RECORD_MAX + 1; /* the newline always fits */
  put(&r, "\n", 1);
  *used = take;
  return r.n;
}

/* One non-blocking write of a whole record: 1 if it went in. A reader that is gone closes the
   FIFO here (SIGPIPE is ignored), and the next line tries to open it again. */
static int try_write(struct fifo *f, const char *record, long n) {
  if (f->fd < 0) {
    /* ENXIO while nobody has the FIFO open for reading: the line is dropped, not waited for. */
    f->fd = sys3(SYS_open, (long)f->path, O_WRONLY | O_NONBLOCK | O_CLOEXEC, 0);
    if (f->fd < 0) return 0;
  }
  long w;
  do w = sys3(SYS_write, f->fd, (long)record, n); while (w == -EINTR);
  if (w == n) return 1;
  if (w != -EAGAIN) {
    sys3(SYS_close, f->fd, 0, 0);
    f->fd = -1;
  }
  return 0;
}

static char record[RECORD_MAX + 1];

/* The "N lines dropped" record, once the FIFO takes it: 1 when nothing is owed any more. */
static int report_drops(struct fifo *f, long ms) {
  if (!f->dropped) return 1;
  char note[80];
  struct buf m = {note, 0, sizeof note};
  putnum(&m, f->dropped, 1);
  puts0(&m, " lines dropped: the log shipper fell behind");
  long used;
  long len = format_record(record, ms, 4, "kiln-log", note, m.n, &used);
  if (!try_write(f, record, len)) return 0;
  f->dropped = 0;
  return 1;
}

static void feed_fifos(int severity, const char *app, const char *text, long n) {
  long ms = realtime_ms();
  for (int i = 0; i < fifo_count; i++) {
    struct fifo *f = &fifos[i];
    /* A line longer than a record goes as several; drops are reported before the next line,
       so the record sits where the gap is. A line lost in part counts as one dropped line. */
    const char *rest = text;
    long left = n, used;
    do {
      if (!report_drops(f, ms)) { f->dropped++; break; }
      long len = format_record(record, ms, severity, app, rest, left, &used);
      if (!try_write(f, record, len)) { f->dropped++; break; }
      rest += used;
      left -= used;
    } while (left > 0);
  }
}

/* Called every second while drops are owed: a quiet app must not keep the count from arriving. */
static int drops_owed(void) {
  int owed = 0;
  for (int i = 0; i < fifo_count; i++) owed |= fifos[i].dropped != 0;
  return owed;
}
static void retry_drop_reports(void) {
  long ms = realtime_ms();
  for (int i = 0; i < fifo_count; i++) report_drops(&fifos[i], ms);
}

/* ---- lines ---------------------------------------------------------------------------- */
#define LINE_MAX 4096
static char line[LINE_MAX];
static long line_len;
static long line_started_ms;

static void emit(void) {
  long n = line_len;
  line_len = 0;
  while (n > 0 && line[n - 1] == '\r') n--;
  const char *text = line;
  int severity = 6;
  if (n >= 3 && text[0] == '<' && text[1] >= '0' && text[1] <= '7' && text[2] == '>') {
    severity = text[1] - '0';
    text += 3;
    n -= 3;
  }
  static char out[LINE_MAX + 64];
  struct buf o = {out, 0, sizeof out};
  put_timestamp(&o);
  put(&o, " ", 1);
  put(&o, text, n);
  put(&o, "\n", 1);
  write_all(1, out, o.n);
  if (!proto && !fifo_count) return;
  const char *prefix = "kiln-init: ";
  const char *app = app_name;
  long plen = (long)length(prefix), i = 0;
  while (i < plen && i < n && text[i] == prefix[i]) i++;
  if (i == plen) app = "kiln-init", text += plen, n -= plen;
  if (proto) ship(severity, app, text, n);
  if (fifo_count) feed_fifos(severity, app, text, n);
}

static void take(const char *p, long n) {
  for (long i = 0; i < n; i++) {
    if (p[i] == '\n') { emit(); continue; }
    if (line_len == LINE_MAX) emit();
    if (line_len == 0) line_started_ms = monotonic_ms();
    line[line_len++] = p[i];
  }
}

struct pollfd { int fd; short events, revents; };

void kiln_main(long *sp) {
  long given = sp[0];
  char **args = (char **)(sp + 1);
  /* --fifo PATH may appear anywhere; the rest are positional. */
  static char *argv[8];
  long argc = 0;
  for (long k = 0; k < given; k++) {
    const char *a = args[k];
    if (a[0] == '-' && a[1] == '-' && a[2] == 'f' && a[3] == 'i' && a[4] == 'f' && a[5] == 'o' && !a[6]) {
      if (k + 1 >= given || !args[k + 1][0]) die("--fifo needs a path");
      if (fifo_count == MAX_FIFOS) die("at most 2 --fifo outputs");
      fifos[fifo_count].path = args[++k];
      fifos[fifo_count].fd = -1;
      fifo_count++;
    } else if (argc < 8) {
      argv[argc++] = args[k];
    } else {
      argc = 9; /* too many: refused below */
    }
  }
  if (argc != 4 && argc != 7) die("usage: kiln-log TTYFILE APPNAME HOSTNAME [udp|tcp ADDRESS PORT] [--fifo PATH]...");
  if (fifo_count) {
    /* A FIFO whose reader went away makes write() raise SIGPIPE: that must not end the console. */
    long ignore[4] = {1 /* SIG_IGN */, 0, 0, 0};
    sys6(SYS_rt_sigaction, 13 /* SIGPIPE */, (long)ignore, 0, 8, 0, 0);
  }
  app_name = argv[2];
  host_name = argv[3];
  if (argc == 7) {
    const char *p = argv[4];
    if (p[0] == 'u' && p[1] == 'd' && p[2] == 'p' && !p[3]) proto = SOCK_DGRAM;
    else if (p[0] == 't' && p[1] == 'c' && p[2] == 'p' && !p[3]) proto = SOCK_STREAM;
    else die("protocol must be udp or tcp");
    long port = number(argv[6]);
    if (port < 1 || port > 65535) die("bad port");
    dest.family = AF_INET;
    dest.port = (unsigned short)((port >> 8) | (port & 0xff) << 8);
    if (!parse_ipv4(argv[5], &dest.addr)) die("bad IPv4 address");
  }

  long master = sys3(SYS_open, (long)"/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC, 0);
  if (master < 0) die("cannot open /dev/ptmx (is devpts mounted on /dev/pts?)");
  int zero = 0, index = -1;
  if (sys3(SYS_ioctl, master, TIOCSPTLCK, (long)&zero) < 0 || sys3(SYS_ioctl, master, TIOCGPTN, (long)&index) < 0) die("cannot set up the terminal");

  /* Publish the slave's path atomically: the init waits for the file. */
  char path[32], tmp[256];
  struct buf pb = {path, 0, sizeof path - 1};
  puts0(&pb, "/dev/pts/");
  putnum(&pb, (unsigned long)index, 1);
  path[pb.n] = 0;
  struct buf tb = {tmp, 0, sizeof tmp - 1};
  puts0(&tb, argv[1]);
  puts0(&tb, ".new");
  tmp[tb.n] = 0;
  long fd = sys3(SYS_open, (long)tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) die("cannot write the terminal's path");
  write_all(fd, path, pb.n);
  write_all(fd, "\n", 1);
  sys3(SYS_close, fd, 0, 0);
  if (sys3(SYS_rename, (long)tmp, (long)argv[1], 0) < 0) die("cannot write the terminal's path");

  static char chunk[8192];
  for (;;) {
    struct pollfd pfd = {(int)master, POLLIN, 0};
    /* A partial line (a prompt, a progress bar) is printed after half a second without its newline. */
    long wait = -1;
    if (line_len > 0) {
      wait = line_started_ms + 500 - monotonic_ms();
      if (wait < 0) wait = 0;
    }
    int owed = drops_owed();
    if (owed && (wait < 0 || wait > 1000)) wait = 1000;
    long ready = sys3(SYS_poll, (long)&pfd, 1, wait);
    if (ready == -EINTR) continue;
    if (ready == 0) {
      if (line_len > 0 && monotonic_ms() - line_started_ms >= 500) emit();
      if (owed) retry_drop_reports();
      continue;
    }
    long got = sys3(SYS_read, master, (long)chunk, sizeof chunk);
    if (got == -EINTR) continue;
    if (got <= 0) {
      /* EIO: every writer closed the terminal (the init does so before powering off). */
      if (line_len > 0) emit();
      sys3(SYS_exit, 0, 0, 0);
    }
    take(chunk, got);
  }
}

__asm__(".text\n.global _start\n_start:\n  xor %rbp, %rbp\n  mov %rsp, %rdi\n  and $-16, %rsp\n  call kiln_main\n  hlt\n");
