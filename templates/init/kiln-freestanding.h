/*
 * The ground every kiln TLS program stands on without libc (x86-64 Linux): its integer types,
 * raw system calls, exiting, and the string helpers they all use. Included first by kiln-https.c,
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
