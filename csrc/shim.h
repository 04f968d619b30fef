/*
 * shim.h: what the csrc/ C files share, beyond the ABI in ocirun.h.
 *
 * The child runs in a copy of the Python process: it must not touch the Python heap or
 * return into the interpreter. It uses only syscalls, stack buffers and the plan.
 */
#ifndef OCIRUN_SHIM_H
#define OCIRUN_SHIM_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>

#include "ocirun.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

#define NORETURN     __attribute__((noreturn))
#define PRINTF(a, b) __attribute__((format(printf, a, b)))

/* sync.c: the child's side of the protocol */
void send_msg(int fd, int type, int err, long long value, const char *text);
void wait_msg(const struct ocirun_plan *p, int type);
void send_msg_fd(const struct ocirun_plan *p, int type, int fd);
/* Tell the parent `<what>` failed with `err` (0: no errno) and exit. */
NORETURN PRINTF(3, 4) void die(const struct ocirun_plan *p, int err, const char *fmt, ...);
/* Same, as OCIRUN_MSG_EXEC_ERROR (the parent words it like runc does). */
NORETURN PRINTF(3, 4) void die_exec(const struct ocirun_plan *p, int err, const char *fmt, ...);
/* Write `text` to `path` (an existing file), or die naming the path. */
void write_file(const struct ocirun_plan *p, const char *path, const char *text);

/* Note the time of a phase for --debug (READY carries them to the parent as text). */
void trace_mark(const struct ocirun_plan *p, const char *phase);
const char *trace_text(void);

/* namespaces.c: joins, unshare, id-map handshake, time offsets, the extra fork.
 * Returns in the container's init. */
void enter_namespaces(const struct ocirun_plan *p);

/* rootfs.c: mounts, devices, links, sysctls, masked/readonly paths, pivot_root. */
void prepare_rootfs(const struct ocirun_plan *p);
/* copyup.c: tmpcopyup's copy of the tree under `from` into `to` (directory fds). */
void copy_tree(const struct ocirun_plan *p, int from, int to, const char *target);
void write_sysctls(const struct ocirun_plan *p);
void exec_terminal(const struct ocirun_plan *p); /* the pty when not setting up a rootfs */

/* security.c: the process's identity and limits. */
void set_identity_names(const struct ocirun_plan *p); /* hostname, domainname */
void set_limits(const struct ocirun_plan *p);         /* rlimits, oom_score_adj, keyring */
void set_credentials(const struct ocirun_plan *p);    /* groups, gid, uid, caps, nnp, umask */

/* terminal.c: the pty (before pivot_root) and attaching it (before execve). */
void setup_terminal(const struct ocirun_plan *p, int ptmx, int console);
void attach_terminal(const struct ocirun_plan *p);

/* hooks.c: createContainer (with the parent's prestart/createRuntime turn) and the rest. */
void run_create_hooks(const struct ocirun_plan *p);
void run_hooks(const struct ocirun_plan *p, const struct ocirun_hook *hooks, int n,
               const char *kind);

/* security.c: load the seccomp filter if the plan says it is time (`when`). */
void load_seccomp(const struct ocirun_plan *p, int when);
void set_personality(const struct ocirun_plan *p);
void set_cpu_affinity(const struct ocirun_plan *p, const unsigned char *mask, unsigned int len);

/* exec.c: finding the executable, waiting for `start`, and the execve. */
void exec_process(const struct ocirun_plan *p) NORETURN;

#endif
