/*
 * kiln-exec: the last step between the init and the app.
 *
 *   kiln-exec NEWROOT WORKDIR UID GID ENVFILE PROGRAM [ARG...]
 *
 * It chroots into the app's root, drops to an unprivileged uid/gid (no supplementary groups,
 * no_new_privs), changes into WORKDIR and execs PROGRAM with exactly the KEY=VALUE lines of
 * ENVFILE as its environment. It exists because busybox has no applet that both chroots and
 * changes user, and the app's root must not contain a shell or busybox to do it from inside.
 *
 * Built without libc (raw x86-64 syscalls) so it is a few KB, static, and byte-reproducible.
 */
#define SYS_read 0
#define SYS_write 1
#define SYS_open 2
#define SYS_close 3
#define SYS_execve 59
#define SYS_exit 60
#define SYS_chdir 80
#define SYS_setuid 105
#define SYS_setgid 106
#define SYS_setgroups 116
#define SYS_prctl 157
#define SYS_chroot 161
#define PR_SET_NO_NEW_PRIVS 38

static long sys3(long n, long a, long b, long c) {
  long ret;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
  return ret;
}

static long sys5(long n, long a, long b, long c, long d, long e) {
  long ret;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8) : "rcx", "r11", "memory");
  return ret;
}

static unsigned long length(const char *s) {
  unsigned long n = 0;
  while (s[n]) n++;
  return n;
}

static void say(const char *s) { sys3(SYS_write, 2, (long)s, (long)length(s)); }

static void die(const char *what, const char *arg) {
  say("kiln-exec: ");
  say(what);
  if (arg) { say(": "); say(arg); }
  say("\n");
  sys3(SYS_exit, 127, 0, 0);
  for (;;) {}
}

static long number(const char *s) {
  long n = 0;
  if (!*s) die("not a number", s);
  for (; *s; s++) {
    if (*s < '0' || *s > '9') die("not a number", s);
    n = n * 10 + (*s - '0');
  }
  return n;
}

#define ENV_BYTES 65536
#define ENV_MAX 1024
static char env_text[ENV_BYTES + 1];
static char *envp[ENV_MAX + 1];

static void read_env(const char *path) {
  long fd = sys3(SYS_open, (long)path, 0, 0);
  if (fd < 0) die("cannot open env file", path);
  long total = 0;
  for (;;) {
    long got = sys3(SYS_read, fd, (long)(env_text + total), ENV_BYTES - total);
    if (got < 0) die("cannot read env file", path);
    if (got == 0) break;
    total += got;
    if (total == ENV_BYTES) die("env file too large", path);
  }
  sys3(SYS_close, fd, 0, 0);
  env_text[total] = 0;
  int count = 0;
  char *line = env_text;
  for (long i = 0; i <= total; i++) {
    if (env_text[i] == '\n' || env_text[i] == 0) {
      env_text[i] = 0;
      if (*line) {
        if (count == ENV_MAX) die("too many env vars in", path);
        envp[count++] = line;
      }
      line = env_text + i + 1;
    }
  }
  envp[count] = 0;
}

void kiln_main(long *sp) {
  long argc = sp[0];
  char **argv = (char **)(sp + 1);
  if (argc < 7) die("usage", "kiln-exec NEWROOT WORKDIR UID GID ENVFILE PROGRAM [ARG...]");
  long uid = number(argv[3]), gid = number(argv[4]);
  if (uid == 0 || gid == 0) die("refusing to run the app as root", 0);
  read_env(argv[5]);
  if (sys3(SYS_chroot, (long)argv[1], 0, 0) < 0) die("chroot failed", argv[1]);
  if (sys3(SYS_chdir, (long)"/", 0, 0) < 0) die("chdir / failed", 0);
  if (sys3(SYS_setgroups, 0, 0, 0) < 0) die("setgroups failed", 0);
  if (sys3(SYS_setgid, gid, 0, 0) < 0) die("setgid failed", argv[4]);
  if (sys3(SYS_setuid, uid, 0, 0) < 0) die("setuid failed", argv[3]);
  if (sys5(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die("no_new_privs failed", 0);
  if (sys3(SYS_chdir, (long)argv[2], 0, 0) < 0) die("chdir failed", argv[2]);
  sys3(SYS_execve, (long)argv[6], (long)(argv + 6), (long)envp);
  die("exec failed", argv[6]);
}

__asm__(".text\n.global _start\n_start:\n  xor %rbp, %rbp\n  mov %rsp, %rdi\n  and $-16, %rsp\n  call kiln_main\n  hlt\n");
