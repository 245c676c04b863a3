/*
 * kiln-exec: the last step between the init and the app.
 *
 *   kiln-exec [--no-seccomp] NEWROOT WORKDIR UID GID ENVFILE PROGRAM [ARG...]
 *
 * It chroots into the app's root and boxes the app in before it execs PROGRAM, in this order:
 *   rlimits (while still root, to raise the hard NOFILE) -> empty capability bounding set and
 *   ambient set -> unprivileged uid/gid without supplementary groups -> empty inheritable,
 *   permitted and effective sets (checked) -> no_new_privs -> WORKDIR -> seccomp deny-list
 *   (unless --no-seccomp: kiln.yml `seccomp: off`) -> exec with exactly the KEY=VALUE lines of
 *   ENVFILE as its environment.
 * It exists because busybox has no applet that both chroots and changes user, and the app's
 * root must not contain a shell or busybox to do it from inside.
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
#define SYS_capget 125
#define SYS_capset 126
#define SYS_prctl 157
#define SYS_chroot 161
#define SYS_prlimit64 302
#define PR_SET_SECCOMP 22
#define PR_CAPBSET_DROP 24
#define PR_SET_NO_NEW_PRIVS 38
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#define SECCOMP_MODE_FILTER 2
#define RLIMIT_CORE 4
#define RLIMIT_NPROC 6
#define RLIMIT_NOFILE 7
#define EINVAL 22

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

/* ---- rlimits ---------------------------------------------------------------------------- */
struct rlimit64 { unsigned long cur, max; };

/* Servers hold many sockets: 65536 files (soft = hard, so apps that never raise it get it too). */
#define APP_NOFILE 65536
/*
 * Processes and threads of the app's uid. The kernel gives the init half its thread table
 * (threads-max / 2, sized from memory at boot: 1834 with 512 MiB), so an app at that limit
 * leaves the other half to the init; the cap keeps a fork bomb on a large machine from filling
 * a table of hundreds of thousands. No server needs more threads than this.
 */
#define APP_NPROC_CAP 16384

static void set_limit(int resource, unsigned long value, const char *name) {
  struct rlimit64 limit = {value, value};
  if (sys5(SYS_prlimit64, 0, resource, (long)&limit, 0, 0) < 0) die("cannot set rlimit", name);
}

static void set_limits(void) {
  struct rlimit64 inherited;
  if (sys5(SYS_prlimit64, 0, RLIMIT_NPROC, 0, (long)&inherited, 0) < 0) die("cannot read rlimit", "NPROC");
  set_limit(RLIMIT_NPROC, inherited.max < APP_NPROC_CAP ? inherited.max : APP_NPROC_CAP, "NPROC");
  set_limit(RLIMIT_NOFILE, APP_NOFILE, "NOFILE");
  /* No core files: they would hold the app's secrets, and the root is read-only anyway. */
  set_limit(RLIMIT_CORE, 0, "CORE");
}

/* ---- capabilities ------------------------------------------------------------------------ */
struct cap_header { unsigned int version; int pid; };
struct cap_data { unsigned int effective, permitted, inheritable; };
#define CAP_VERSION_3 0x20080522

/* While still root: nothing the app execs can ever get a capability back (bounding, ambient). */
static void drop_bounding_and_ambient(void) {
  for (long cap = 0; cap < 64; cap++) {
    long r = sys5(SYS_prctl, PR_CAPBSET_DROP, cap, 0, 0, 0);
    if (r == -EINVAL) break; /* past the kernel's last capability */
    if (r < 0) die("cannot drop a capability from the bounding set", 0);
  }
  if (sys5(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0) die("cannot clear the ambient capabilities", 0);
}

/* After setuid: permitted and effective are gone; clear inheritable too and check all three. */
static void clear_remaining_capabilities(void) {
  struct cap_header header = {CAP_VERSION_3, 0};
  struct cap_data none[2] = {{0, 0, 0}, {0, 0, 0}};
  if (sys3(SYS_capset, (long)&header, (long)none, 0) < 0) die("cannot clear the capability sets", 0);
  struct cap_data left[2];
  if (sys3(SYS_capget, (long)&header, (long)left, 0) < 0) die("cannot read the capability sets", 0);
  for (int i = 0; i < 2; i++) {
    if (left[i].effective | left[i].permitted | left[i].inheritable) die("capabilities left after dropping to the app's uid", 0);
  }
}

/* ---- seccomp ----------------------------------------------------------------------------- */
/*
 * A deny-list of system calls no server needs and attackers use to reach the kernel or other
 * processes. A denied call fails with EPERM rather than killing the app: runtimes probe for
 * features at start-up (libuv tries io_uring, the JVM and Python probe memfd) and must fall back,
 * not die; EPERM is also what most of these calls already return to a process without
 * capabilities, so apps' error paths expect it. Only a call from another ABI (i386 through
 * int 0x80, or x32) is fatal: no x86-64 program makes one except to slip past this table.
 * Unprivileged user namespaces are closed without a rule: the kernel refuses CLONE_NEWUSER to
 * a chrooted process, and every other namespace needs a capability the app does not have.
 */
static const unsigned short denied_syscalls[] = {
  246, 320,                          /* kexec_load, kexec_file_load */
  175, 313, 176,                     /* init_module, finit_module, delete_module */
  165, 166, 155, 161,                /* mount, umount2, pivot_root, chroot */
  428, 429, 430, 431, 432, 433, 442, /* open_tree, move_mount, fsopen, fsconfig, fsmount, fspick, mount_setattr */
  101, 310, 311, 438,                /* ptrace, process_vm_readv, process_vm_writev, pidfd_getfd */
  321, 298,                          /* bpf, perf_event_open */
  250, 248, 249,                     /* keyctl, add_key, request_key */
  323,                               /* userfaultfd: stalls kernel threads at will, a staple of exploits */
  425, 426, 427,                     /* io_uring_setup, io_uring_enter, io_uring_register: large, CVE-rich */
  319,                               /* memfd_create: an executable file outside every noexec mount */
  169, 167, 168, 163,                /* reboot, swapon, swapoff, acct */
  164, 227, 159, 305,                /* settimeofday, clock_settime, adjtimex, clock_adjtime */
  172, 173, 154,                     /* iopl, ioperm, modify_ldt */
  272, 308,                          /* unshare, setns */
  304,                               /* open_by_handle_at: opens files by inode, past any chroot */
  103, 179, 212, 134, 153,           /* syslog, quotactl, lookup_dcookie, uselib, vhangup */
  170, 171,                          /* sethostname, setdomainname */
};
#define DENIED_COUNT (sizeof denied_syscalls / sizeof denied_syscalls[0])

struct sock_filter { unsigned short code; unsigned char jt, jf; unsigned int k; };
struct sock_fprog { unsigned short len; struct sock_filter *filter; };
#define BPF_LD_W_ABS 0x20  /* A = seccomp_data word at k */
#define BPF_JEQ_K 0x15     /* pc += (A == k) ? jt : jf */
#define BPF_JGE_K 0x35     /* pc += (A >= k) ? jt : jf */
#define BPF_RET_K 0x06     /* return k */
#define DATA_NR 0          /* offsetof(struct seccomp_data, nr) */
#define DATA_ARCH 4        /* offsetof(struct seccomp_data, arch) */
#define AUDIT_ARCH_X86_64 0xc000003e
#define X32_SYSCALL_BIT 0x40000000
#define RET_KILL_PROCESS 0x80000000
#define RET_EPERM (0x00050000 | 1)
#define RET_ALLOW 0x7fff0000
#define HEAD 6 /* instructions before the table */

static struct sock_filter program[HEAD + DENIED_COUNT + 2];

static void install_seccomp(void) {
  struct sock_filter *p = program;
  *p++ = (struct sock_filter){BPF_LD_W_ABS, 0, 0, DATA_ARCH};
  *p++ = (struct sock_filter){BPF_JEQ_K, 1, 0, AUDIT_ARCH_X86_64};
  *p++ = (struct sock_filter){BPF_RET_K, 0, 0, RET_KILL_PROCESS};
  *p++ = (struct sock_filter){BPF_LD_W_ABS, 0, 0, DATA_NR};
  *p++ = (struct sock_filter){BPF_JGE_K, 0, 1, X32_SYSCALL_BIT};
  *p++ = (struct sock_filter){BPF_RET_K, 0, 0, RET_KILL_PROCESS};
  /* Entry i jumps over the DENIED_COUNT - i - 1 entries after it and the ALLOW to the EPERM. */
  for (unsigned long i = 0; i < DENIED_COUNT; i++) {
    *p++ = (struct sock_filter){BPF_JEQ_K, (unsigned char)(DENIED_COUNT - i), 0, denied_syscalls[i]};
  }
  *p++ = (struct sock_filter){BPF_RET_K, 0, 0, RET_ALLOW};
  *p++ = (struct sock_filter){BPF_RET_K, 0, 0, RET_EPERM};
  struct sock_fprog prog = {(unsigned short)(p - program), program};
  if (sys5(SYS_prctl, PR_SET_SECCOMP, SECCOMP_MODE_FILTER, (long)&prog, 0, 0) < 0) die("cannot install the seccomp filter", 0);
}

/* ---- main -------------------------------------------------------------------------------- */
#define USAGE "kiln-exec [--no-seccomp] NEWROOT WORKDIR UID GID ENVFILE PROGRAM [ARG...]"

static int same(const char *a, const char *b) {
  while (*a && *a == *b) { a++; b++; }
  return *a == *b;
}

void kiln_main(long *sp) {
  long argc = sp[0];
  char **argv = (char **)(sp + 1);
  int seccomp = 1;
  if (argc > 1 && argv[1][0] == '-') {
    if (!same(argv[1], "--no-seccomp")) die("unknown option", argv[1]);
    seccomp = 0;
    argv++;
    argc--;
  }
  if (argc < 7) die("usage", USAGE);
  long uid = number(argv[3]), gid = number(argv[4]);
  if (uid == 0 || gid == 0) die("refusing to run the app as root", 0);
  read_env(argv[5]);
  if (sys3(SYS_chroot, (long)argv[1], 0, 0) < 0) die("chroot failed", argv[1]);
  if (sys3(SYS_chdir, (long)"/", 0, 0) < 0) die("chdir / failed", 0);
  set_limits();
  drop_bounding_and_ambient();
  if (sys3(SYS_setgroups, 0, 0, 0) < 0) die("setgroups failed", 0);
  if (sys3(SYS_setgid, gid, 0, 0) < 0) die("setgid failed", argv[4]);
  if (sys3(SYS_setuid, uid, 0, 0) < 0) die("setuid failed", argv[3]);
  clear_remaining_capabilities();
  if (sys5(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die("no_new_privs failed", 0);
  if (sys3(SYS_chdir, (long)argv[2], 0, 0) < 0) die("chdir failed", argv[2]);
  if (seccomp) install_seccomp();
  sys3(SYS_execve, (long)argv[6], (long)(argv + 6), (long)envp);
  die("exec failed", argv[6]);
}

__asm__(".text\n.global _start\n_start:\n  xor %rbp, %rbp\n  mov %rsp, %rdi\n  and $-16, %rsp\n  call kiln_main\n  hlt\n");
