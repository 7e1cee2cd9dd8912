/*
 * openshell-launch: confines one program and execs it (issue 13, spec §3.7). Run as root by the
 * supervisor for every shell, command and sftp-server it starts; Node cannot make these calls
 * between fork and exec (see architecture/confinement.md).
 *
 *   openshell-launch [--netns PATH] --uid N --gid N [--groups a,b] [--ro PATH]... [--rw PATH]...
 *                    [--landlock best_effort|hard_requirement|off] [--workdir DIR] [--report-fd N]
 *                    [--check] -- PROGRAM ARGS...
 *
 * In order: setns(CLONE_NEWNET) into --netns; the Landlock ruleset prepared as root (read access
 * for --ro, full access for --rw); the capability bounding set emptied (needs CAP_SETPCAP, so
 * before the uid changes); setgroups/setgid/setuid, then setuid(0) must fail; PR_SET_PDEATHSIG
 * SIGKILL (the program dies with the supervisor); no inheritable or ambient capabilities and none
 * effective or permitted; RLIMIT_CORE 0, RLIMIT_NPROC 512; PR_SET_DUMPABLE 0; no_new_privs;
 * landlock_restrict_self; seccomp (clone3 -> ENOSYS first, then the blocklist, EPERM); descriptors
 * above 2 marked close-on-exec; chdir; execvp.
 * --check does all of it and exits 0 instead of exec'ing (the supervisor's probe).
 *
 * Findings and notes go to --report-fd as one JSON object per line. A failure of any hard step
 * exits 126 with one line on stderr: the program never runs unconfined.
 * Static, raw syscalls only (no libseccomp, no libcap).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define EXIT_REFUSED 126

#ifndef __NR_landlock_create_ruleset
#define __NR_landlock_create_ruleset 444
#endif
#ifndef __NR_landlock_add_rule
#define __NR_landlock_add_rule 445
#endif
#ifndef __NR_landlock_restrict_self
#define __NR_landlock_restrict_self 446
#endif
#ifndef __NR_close_range
#define __NR_close_range 436
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

/* --- syscall numbers of the native architecture ------------------------------------------- */
#if defined(__x86_64__)
#define SECCOMP_ARCH AUDIT_ARCH_X86_64
#define NR_memfd_create 319
#define NR_ptrace 101
#define NR_bpf 321
#define NR_process_vm_readv 310
#define NR_process_vm_writev 311
#define NR_pidfd_open 434
#define NR_pidfd_getfd 438
#define NR_pidfd_send_signal 424
#define NR_io_uring_setup 425
#define NR_mount 165
#define NR_umount2 166
#define NR_pivot_root 155
#define NR_fsopen 430
#define NR_fsconfig 431
#define NR_fsmount 432
#define NR_fspick 433
#define NR_move_mount 429
#define NR_open_tree 428
#define NR_mount_setattr 442
#define NR_setns 308
#define NR_userfaultfd 323
#define NR_perf_event_open 298
#define NR_socket 41
#define NR_unshare 272
#define NR_clone 56
#define NR_clone3 435
#define NR_execveat 322
#define NR_seccomp 317
#define NR_prctl 157
#elif defined(__aarch64__)
#define SECCOMP_ARCH AUDIT_ARCH_AARCH64
#define NR_memfd_create 279
#define NR_ptrace 117
#define NR_bpf 280
#define NR_process_vm_readv 270
#define NR_process_vm_writev 271
#define NR_pidfd_open 434
#define NR_pidfd_getfd 438
#define NR_pidfd_send_signal 424
#define NR_io_uring_setup 425
#define NR_mount 40
#define NR_umount2 39
#define NR_pivot_root 41
#define NR_fsopen 430
#define NR_fsconfig 431
#define NR_fsmount 432
#define NR_fspick 433
#define NR_move_mount 429
#define NR_open_tree 428
#define NR_mount_setattr 442
#define NR_setns 268
#define NR_userfaultfd 282
#define NR_perf_event_open 241
#define NR_socket 198
#define NR_unshare 97
#define NR_clone 220
#define NR_clone3 435
#define NR_execveat 281
#define NR_seccomp 277
#define NR_prctl 167
#else
#error "openshell-launch knows the syscall numbers of x86_64 and aarch64 only"
#endif

/* --- reporting ------------------------------------------------------------------------------ */
static int report_fd = -1;

static void die(const char *step, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
static void die(const char *step, const char *fmt, ...) {
  char reason[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof reason, fmt, ap);
  va_end(ap);
  dprintf(2, "openshell-launch: %s: %s (refusing to run the program unconfined)\n", step, reason);
  _exit(EXIT_REFUSED);
}

/* Appends s to buf as a JSON string body (escaped, without quotes). */
static void json_escape(char *buf, size_t size, const char *s) {
  size_t n = strlen(buf);
  for (; *s && n + 8 < size; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      buf[n++] = '\\';
      buf[n++] = (char)c;
    } else if (c < 0x20) {
      n += (size_t)snprintf(buf + n, size - n, "\\u%04x", c);
    } else {
      buf[n++] = (char)c;
    }
  }
  buf[n] = 0;
}

/* One JSON line on --report-fd: {"event":E, k1:v1, ...} with string values (NULL ends the list). */
static void report(const char *event, ...) {
  if (report_fd < 0) return;
  char line[8192] = "{\"event\":\"";
  json_escape(line, sizeof line, event);
  strcat(line, "\"");
  va_list ap;
  va_start(ap, event);
  for (;;) {
    const char *key = va_arg(ap, const char *);
    if (!key) break;
    const char *value = va_arg(ap, const char *);
    if (strlen(line) + strlen(key) + 8 >= sizeof line) break;
    strcat(line, ",\"");
    json_escape(line, sizeof line, key);
    strcat(line, "\":\"");
    json_escape(line, sizeof line, value ? value : "");
    strcat(line, "\"");
  }
  va_end(ap);
  if (strlen(line) + 2 < sizeof line) strcat(line, "}\n");
  ssize_t ignored = write(report_fd, line, strlen(line));
  (void)ignored;
}

/* --- arguments ---------------------------------------------------------------------------- */
#define MAX_PATHS 512
#define MAX_GROUPS 64

enum landlock_mode { LANDLOCK_BEST_EFFORT, LANDLOCK_HARD, LANDLOCK_OFF };

struct options {
  const char *netns;
  long uid, gid;
  gid_t groups[MAX_GROUPS];
  int ngroups;
  const char *ro[MAX_PATHS];
  int nro;
  const char *rw[MAX_PATHS];
  int nrw;
  enum landlock_mode landlock;
  const char *workdir;
  int check;
  char **program;
};

static long parse_id(const char *flag, const char *text) {
  char *end;
  errno = 0;
  long value = strtol(text, &end, 10);
  if (errno || end == text || *end || value < 0 || value > 0x7fffffffL) die("arguments", "%s '%s' is not a number", flag, text);
  return value;
}

static void usage_exit(void) {
  dprintf(2,
          "usage: openshell-launch [--netns PATH] --uid N --gid N [--groups a,b] [--ro PATH]... [--rw PATH]...\n"
          "                        [--landlock best_effort|hard_requirement|off] [--workdir DIR] [--report-fd N]\n"
          "                        [--check] -- PROGRAM ARGS...\n");
  _exit(EXIT_REFUSED);
}

static void parse_options(int argc, char **argv, struct options *o) {
  memset(o, 0, sizeof *o);
  o->uid = o->gid = -1;
  o->landlock = LANDLOCK_BEST_EFFORT;
  int i = 1;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--")) {
      i++;
      break;
    }
    if (!strcmp(a, "--check")) {
      o->check = 1;
      continue;
    }
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) usage_exit();
    if (i + 1 >= argc) die("arguments", "%s needs a value", a);
    const char *v = argv[++i];
    if (!strcmp(a, "--netns")) o->netns = v;
    else if (!strcmp(a, "--uid")) o->uid = parse_id(a, v);
    else if (!strcmp(a, "--gid")) o->gid = parse_id(a, v);
    else if (!strcmp(a, "--groups")) {
      char copy[4096];
      snprintf(copy, sizeof copy, "%s", v);
      for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (o->ngroups >= MAX_GROUPS) die("arguments", "more than %d --groups", MAX_GROUPS);
        o->groups[o->ngroups++] = (gid_t)parse_id(a, tok);
      }
    } else if (!strcmp(a, "--ro") || !strcmp(a, "--rw")) {
      if (v[0] != '/') die("arguments", "%s '%s' is not an absolute path", a, v);
      int rw = a[3] == 'w';
      if ((rw ? o->nrw : o->nro) >= MAX_PATHS) die("arguments", "more than %d %s paths", MAX_PATHS, a);
      if (rw) o->rw[o->nrw++] = v;
      else o->ro[o->nro++] = v;
    } else if (!strcmp(a, "--landlock")) {
      if (!strcmp(v, "best_effort")) o->landlock = LANDLOCK_BEST_EFFORT;
      else if (!strcmp(v, "hard_requirement")) o->landlock = LANDLOCK_HARD;
      else if (!strcmp(v, "off")) o->landlock = LANDLOCK_OFF;
      else die("arguments", "--landlock '%s' (expected best_effort, hard_requirement or off)", v);
    } else if (!strcmp(a, "--workdir")) {
      o->workdir = v;
    } else if (!strcmp(a, "--report-fd")) {
      report_fd = (int)parse_id(a, v);
      if (fcntl(report_fd, F_SETFD, FD_CLOEXEC) < 0) die("arguments", "--report-fd %d: %s", report_fd, strerror(errno));
    } else {
      die("arguments", "unknown option '%s'", a);
    }
  }
  if (o->uid < 0 || o->gid < 0) die("arguments", "--uid and --gid are required");
  if (o->uid == 0) die("arguments", "--uid 0: children never run as root");
  if (o->gid == 0) die("arguments", "--gid 0: children never run with the root group");
  for (int g = 0; g < o->ngroups; g++)
    if (o->groups[g] == 0) die("arguments", "--groups contains 0 (the root group)");
  if (i >= argc && !o->check) die("arguments", "no program after --");
  o->program = argv + i;
}

/* --- steps ------------------------------------------------------------------------------------ */
static void enter_netns(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("netns", "cannot open %s: %s", path, strerror(errno));
  if (setns(fd, CLONE_NEWNET) < 0) die("netns", "setns(%s, CLONE_NEWNET): %s", path, strerror(errno));
  close(fd);
}

#define FS_FILE_RIGHTS                                                                               \
  (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE |      \
   LANDLOCK_ACCESS_FS_TRUNCATE | LANDLOCK_ACCESS_FS_IOCTL_DEV)
#define FS_READ_RIGHTS (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)

/* The filesystem rights an ABI knows (network rights and scopes are not handled: the network
   namespace and proxy confine the network). */
static uint64_t fs_rights_for_abi(int abi) {
  uint64_t rights = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1; /* ABI 1: bits 0..12 */
  if (abi >= 2) rights |= LANDLOCK_ACCESS_FS_REFER;
  if (abi >= 3) rights |= LANDLOCK_ACCESS_FS_TRUNCATE;
  if (abi >= 5) rights |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
  return rights;
}

static int landlock_unavailable(enum landlock_mode mode, const char *reason) {
  if (mode == LANDLOCK_HARD) die("landlock", "%s (landlock compatibility is hard_requirement)", reason);
  report("finding", "finding", "landlock-unavailable", "severity", "high", "reason", reason, NULL);
  return -1;
}

/* Returns the ruleset fd, or -1 when best_effort goes on without Landlock. */
static int prepare_landlock(const struct options *o) {
  if (o->landlock == LANDLOCK_OFF) {
    report("landlock", "status", "off", NULL);
    return -1;
  }
  int abi = (int)syscall(__NR_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
  if (abi < 0) {
    char reason[256];
    if (errno == ENOSYS) snprintf(reason, sizeof reason, "the kernel has no Landlock (ENOSYS)");
    else if (errno == EOPNOTSUPP)
      snprintf(reason, sizeof reason, "Landlock is built in but not an active LSM (EOPNOTSUPP; add landlock to lsm= on the kernel command line)");
    else snprintf(reason, sizeof reason, "landlock_create_ruleset version probe failed: %s", strerror(errno));
    return landlock_unavailable(o->landlock, reason);
  }
  uint64_t handled = fs_rights_for_abi(abi);
  struct landlock_ruleset_attr attr = {.handled_access_fs = handled};
  int ruleset = (int)syscall(__NR_landlock_create_ruleset, &attr, offsetof(struct landlock_ruleset_attr, handled_access_fs) + sizeof attr.handled_access_fs, 0);
  if (ruleset < 0) {
    char reason[256];
    snprintf(reason, sizeof reason, "landlock_create_ruleset (ABI %d): %s", abi, strerror(errno));
    if (o->landlock == LANDLOCK_HARD) die("landlock", "%s (landlock compatibility is hard_requirement)", reason);
    report("finding", "finding", "landlock-enforce-failed", "severity", "high", "reason", reason, NULL);
    return -1;
  }
  int rules = 0, skipped = 0;
  for (int pass = 0; pass < 2; pass++) {
    const char *const *paths = pass ? o->rw : o->ro;
    int count = pass ? o->nrw : o->nro;
    for (int i = 0; i < count; i++) {
      const char *path = paths[i];
      int fd = open(path, O_PATH | O_CLOEXEC);
      struct stat st;
      const char *failure = NULL;
      char why[512];
      if (fd < 0) failure = strerror(errno);
      else if (fstat(fd, &st) < 0) failure = strerror(errno);
      if (!failure) {
        uint64_t allowed = (pass ? handled : FS_READ_RIGHTS) & handled;
        if (!S_ISDIR(st.st_mode)) allowed &= FS_FILE_RIGHTS;
        struct landlock_path_beneath_attr rule = {.allowed_access = allowed, .parent_fd = fd};
        if (syscall(__NR_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0) < 0) {
          snprintf(why, sizeof why, "landlock_add_rule: %s", strerror(errno));
          failure = why;
        }
      }
      if (fd >= 0) close(fd);
      if (failure) {
        if (o->landlock == LANDLOCK_HARD)
          die("landlock", "%s path %s: %s (landlock compatibility is hard_requirement)", pass ? "read_write" : "read_only", path, failure);
        report("path-skipped", "path", path, "access", pass ? "read_write" : "read_only", "reason", failure, NULL);
        skipped++;
      } else {
        rules++;
      }
    }
  }
  char abi_text[16], rules_text[16], skipped_text[16];
  snprintf(abi_text, sizeof abi_text, "%d", abi);
  snprintf(rules_text, sizeof rules_text, "%d", rules);
  snprintf(skipped_text, sizeof skipped_text, "%d", skipped);
  report("landlock", "status", "prepared", "abi", abi_text, "rules", rules_text, "skipped", skipped_text, NULL);
  return ruleset;
}

static int last_cap(void) {
  int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    char buf[16] = {0};
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n > 0) return atoi(buf);
  }
  return 63;
}

static void drop_bounding_set(void) {
  int last = last_cap();
  for (int cap = 0; cap <= last; cap++) {
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
      die("capabilities", "PR_CAPBSET_DROP %d: %s", cap, strerror(errno));
  }
  for (int cap = 0; cap <= last; cap++) {
    if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) > 0) die("capabilities", "capability %d is still in the bounding set", cap);
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
    die("capabilities", "clearing the ambient set: %s", strerror(errno));
}

static void drop_privileges(const struct options *o) {
  if (setgroups((size_t)o->ngroups, o->groups) < 0) die("identity", "setgroups: %s", strerror(errno));
  if (setresgid((gid_t)o->gid, (gid_t)o->gid, (gid_t)o->gid) < 0) die("identity", "setgid %ld: %s", o->gid, strerror(errno));
  if (setresuid((uid_t)o->uid, (uid_t)o->uid, (uid_t)o->uid) < 0) die("identity", "setuid %ld: %s", o->uid, strerror(errno));
  if (setuid(0) == 0 || seteuid(0) == 0) die("identity", "setuid(0) succeeded after dropping to uid %ld", o->uid);
  uid_t ru, eu, su;
  gid_t rg, eg, sg;
  if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0) die("identity", "getresuid: %s", strerror(errno));
  if (ru != (uid_t)o->uid || eu != ru || su != ru || rg != (gid_t)o->gid || eg != rg || sg != rg)
    die("identity", "uid/gid are not %ld/%ld after the switch", o->uid, o->gid);
  /* Inheritable (and with it effective/permitted, already empty after setuid) cleared, checked. */
  struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct data[2];
  memset(data, 0, sizeof data);
  if (syscall(SYS_capset, &header, data) < 0) die("capabilities", "capset: %s", strerror(errno));
  memset(data, 0xff, sizeof data);
  if (syscall(SYS_capget, &header, data) < 0) die("capabilities", "capget: %s", strerror(errno));
  for (int i = 0; i < 2; i++)
    if (data[i].effective || data[i].permitted || data[i].inheritable) die("capabilities", "capabilities remain after the switch");
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
    die("capabilities", "clearing the ambient set: %s", strerror(errno));
}

static void lower_limit(int resource, const char *name, rlim_t value) {
  struct rlimit current;
  if (getrlimit(resource, &current) < 0) die("rlimits", "getrlimit %s: %s", name, strerror(errno));
  if (current.rlim_max != RLIM_INFINITY && current.rlim_max < value) value = current.rlim_max;
  struct rlimit next = {.rlim_cur = value, .rlim_max = value};
  if (setrlimit(resource, &next) < 0) die("rlimits", "setrlimit %s %lu: %s", name, (unsigned long)value, strerror(errno));
}

static void harden(void) {
  lower_limit(RLIMIT_CORE, "RLIMIT_CORE", 0);
  lower_limit(RLIMIT_NPROC, "RLIMIT_NPROC", 512);
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) die("hardening", "PR_SET_DUMPABLE: %s", strerror(errno));
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die("hardening", "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
}

static void restrict_landlock(const struct options *o, int ruleset) {
  if (ruleset < 0) return;
  if (syscall(__NR_landlock_restrict_self, ruleset, 0) < 0) {
    char reason[256];
    snprintf(reason, sizeof reason, "landlock_restrict_self: %s", strerror(errno));
    if (o->landlock == LANDLOCK_HARD) die("landlock", "%s (landlock compatibility is hard_requirement)", reason);
    report("finding", "finding", "landlock-enforce-failed", "severity", "high", "reason", reason, NULL);
  } else {
    report("landlock", "status", "enforced", NULL);
  }
  close(ruleset);
}

/* --- seccomp ---------------------------------------------------------------------------------- */
#define MAX_FILTER 256
struct program {
  struct sock_filter code[MAX_FILTER];
  unsigned short len;
};

static void emit(struct program *p, struct sock_filter insn) {
  if (p->len >= MAX_FILTER) die("seccomp", "filter too long");
  p->code[p->len++] = insn;
}

#define LOAD_NR (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))
#define LOAD_ARCH (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch))
/* Low 32 bits of an argument (both supported architectures are little-endian). */
#define LOAD_ARG(i) (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[i]))
#define RET(action) (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, (action))
#define ERRNO(e) (SECCOMP_RET_ERRNO | ((e) & SECCOMP_RET_DATA))

/* The architecture check every filter starts with: a syscall of another ABI (i386 through int
   0x80, x32) would bypass the numbers below, so it kills the process. */
static void emit_arch_check(struct program *p) {
  emit(p, LOAD_ARCH);
  emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SECCOMP_ARCH, 1, 0));
  emit(p, RET(SECCOMP_RET_KILL_PROCESS));
  emit(p, LOAD_NR);
#if defined(__x86_64__)
  emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1)); /* x32 */
  emit(p, RET(SECCOMP_RET_KILL_PROCESS));
#endif
}

static void emit_deny(struct program *p, unsigned nr) {
  emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1));
  emit(p, RET(ERRNO(EPERM)));
}

/* nr with argument `arg` equal to one of `values`: EPERM; nr otherwise: allowed. */
static void emit_deny_arg_equals(struct program *p, unsigned nr, int arg, const unsigned *values, int count) {
  emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, (unsigned char)(2 + 2 * count)));
  emit(p, LOAD_ARG(arg));
  for (int i = 0; i < count; i++) {
    emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, values[i], 0, 1));
    emit(p, RET(ERRNO(EPERM)));
  }
  emit(p, RET(SECCOMP_RET_ALLOW));
}

/* nr with any of `bits` set in argument `arg`: EPERM; nr otherwise: allowed. */
static void emit_deny_arg_bits(struct program *p, unsigned nr, int arg, unsigned bits) {
  emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 4));
  emit(p, LOAD_ARG(arg));
  emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, bits, 0, 1));
  emit(p, RET(ERRNO(EPERM)));
  emit(p, RET(SECCOMP_RET_ALLOW));
}

static void install(struct program *p, const char *what) {
  struct sock_fprog prog = {.len = p->len, .filter = p->code};
  if (syscall(NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0) die("seccomp", "installing the %s filter: %s", what, strerror(errno));
}

static void install_seccomp(void) {
  /* 1. clone3 -> ENOSYS: its flags live in a struct seccomp cannot read, so it must not be usable
        at all; ENOSYS (not EPERM) makes glibc fall back to clone, whose flags are checked below. */
  struct program first = {.len = 0};
  emit_arch_check(&first);
  emit(&first, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NR_clone3, 0, 1));
  emit(&first, RET(ERRNO(ENOSYS)));
  emit(&first, RET(SECCOMP_RET_ALLOW));
  install(&first, "clone3");

  /* 2. The blocklist (default allow, EPERM). */
  struct program p = {.len = 0};
  emit_arch_check(&p);
  static const unsigned denied[] = {
      NR_memfd_create,  NR_ptrace,         NR_bpf,           NR_process_vm_readv, NR_process_vm_writev,
      NR_pidfd_open,    NR_pidfd_getfd,    NR_pidfd_send_signal, NR_io_uring_setup, NR_mount,
      NR_umount2,       NR_pivot_root,     NR_fsopen,        NR_fsconfig,         NR_fsmount,
      NR_fspick,        NR_move_mount,     NR_open_tree,     NR_mount_setattr,    NR_setns,
      NR_userfaultfd,   NR_perf_event_open,
  };
  for (size_t i = 0; i < sizeof denied / sizeof denied[0]; i++) emit_deny(&p, denied[i]);
  static const unsigned domains[] = {AF_PACKET, AF_BLUETOOTH, AF_VSOCK, AF_NETLINK};
  emit_deny_arg_equals(&p, NR_socket, 0, domains, 4);
  emit_deny_arg_bits(&p, NR_unshare, 0, CLONE_NEWUSER);
  emit_deny_arg_bits(&p, NR_clone, 0, CLONE_NEWUSER);
  emit_deny_arg_bits(&p, NR_execveat, 4, AT_EMPTY_PATH);
  static const unsigned filter_op[] = {SECCOMP_SET_MODE_FILTER};
  emit_deny_arg_equals(&p, NR_seccomp, 0, filter_op, 1);
  /* prctl(PR_SET_SECCOMP, ...) is the other way to install a filter. */
  static const unsigned set_seccomp[] = {PR_SET_SECCOMP};
  emit_deny_arg_equals(&p, NR_prctl, 0, set_seccomp, 1);
  emit(&p, RET(SECCOMP_RET_ALLOW));
  install(&p, "blocklist");
}

/* Descriptors the supervisor leaked (node-pty masters are not close-on-exec) stay out of the
   program. */
static void cloexec_inherited(void) {
  if (syscall(__NR_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return;
  struct rlimit nofile;
  long max = getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY ? (long)nofile.rlim_cur : 65536;
  if (max > 1 << 20) max = 1 << 20;
  for (long fd = 3; fd < max; fd++) fcntl((int)fd, F_SETFD, FD_CLOEXEC);
}

/* The program never outlives the supervisor that started it: a supervisor killed outright (SIGKILL,
   OOM) takes its workload and session shells along instead of leaving them running unsupervised
   (its own children, not their descendants). Set after the uid change, which clears it. */
static void die_with_parent(pid_t parent) {
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) die("pdeathsig", "prctl(PR_SET_PDEATHSIG): %s", strerror(errno));
  if (getppid() != parent) die("pdeathsig", "the process that started the launcher has exited");
}

int main(int argc, char **argv) {
  struct options o;
  pid_t parent = getppid();
  parse_options(argc, argv, &o);
  if (o.netns) enter_netns(o.netns);
  int ruleset = prepare_landlock(&o);
  drop_bounding_set();
  drop_privileges(&o);
  die_with_parent(parent);
  harden();
  restrict_landlock(&o, ruleset);
  install_seccomp();
  cloexec_inherited();
  if (o.workdir && chdir(o.workdir) < 0) die("workdir", "chdir %s: %s", o.workdir, strerror(errno));
  if (o.check) {
    report("ready", NULL);
    _exit(0);
  }
  execvp(o.program[0], o.program);
  int error = errno;
  dprintf(2, "openshell-launch: cannot execute %s: %s\n", o.program[0], strerror(error));
  _exit(error == ENOENT ? 127 : EXIT_REFUSED);
}
