/*
 * What a kiln TLS program needs without libc: the process entry (with the stack-protector canary
 * Debian's libbearssl.a reads at %fs:0x28) and the few C library functions BearSSL calls.
 * Included last by the program's .c file, which defines before it: KILN_PROGRAM (its name, for
 * messages), the types `size`/`ssize`/`size_t`, sys3(), quit(), say(), text_length(), last_errno,
 * run(argc, argv), and the SYS_* numbers used below.
 */
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
void __stack_chk_fail(void) { say(KILN_PROGRAM ": stack smashing detected\n"); quit(127); }
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
