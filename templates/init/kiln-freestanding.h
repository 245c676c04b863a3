/*
 * The ground every kiln TLS program stands on without libc (x86-64 Linux): its integer types,
 * raw system calls, exiting, writing messages, and the string and address helpers they all use. Included first by kiln-https.c,
 * kiln-cwlogs.c and kiln-syslog-tls.c (one translation unit each; unused helpers are dropped).
 */
typedef unsigned long size;
typedef long ssize;

__attribute__((unused)) static long sys3(long n, long a, long b, long c) {
  long r;
  __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
  return r;
}

__attribute__((unused)) static long sys6(long n, long a, long b, long c, long d, long e, long f) {
  long r;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9) : "rcx", "r11", "memory");
  return r;
}

__attribute__((unused)) static long sys5(long n, long a, long b, long c, long d, long e) { return sys6(n, a, b, c, d, e, 0); }

/* errno as the C library functions below report it to BearSSL. */
static int last_errno;

__attribute__((noreturn)) static void quit(int code) {
  for (;;) sys3(231 /* exit_group */, code, 0, 0);
}

static size text_length(const char *s) {
  size n = 0;
  while (s[n]) n++;
  return n;
}

__attribute__((unused)) static int same_text(const char *a, const char *b) {
  while (*a && *a == *b) a++, b++;
  return *a == *b;
}

/* Writes all of it (retrying interrupted writes): 1, or 0 when the descriptor refuses. */
static int write_all(int fd, const void *data, size len) {
  const char *p = data;
  while (len > 0) {
    long n = sys3(1 /* write */, fd, (long)p, (long)len);
    if (n == -4 /* EINTR */) continue;
    if (n <= 0) return 0;
    p += n;
    len -= (size)n;
  }
  return 1;
}

static void say(const char *s) { write_all(2, s, text_length(s)); }

__attribute__((unused)) static void say_number(unsigned long v) {
  char digits[24];
  int i = sizeof digits;
  digits[--i] = 0;
  do digits[--i] = (char)('0' + v % 10); while ((v /= 10) && i > 0);
  say(digits + i);
}

/* A dotted-quad IPv4 address, nothing before or after it: 1, or 0. */
__attribute__((unused)) static int parse_ipv4(const char *s, unsigned char out[4]) {
  for (int i = 0; i < 4; i++) {
    unsigned v = 0, digits = 0;
    while (*s >= '0' && *s <= '9' && digits < 4) v = v * 10 + (unsigned)(*s++ - '0'), digits++;
    if (digits == 0 || v > 255) return 0;
    out[i] = (unsigned char)v;
    if (i < 3 && *s++ != '.') return 0;
  }
  return *s == 0;
}
