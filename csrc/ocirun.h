/*
 * ocirun.h: the ABI between Python (which decides) and the C child (which executes).
 *
 * This one file is both the C header of the csrc/ C files and cffi's cdef: build_shim.py feeds it to
 * ffibuilder.cdef() after dropping preprocessor lines other than `#define NAME <integer>`.
 * So: plain structs, fixed-width or basic C types, integer #defines, function prototypes.
 *
 * Python fills one `struct ocirun_plan` (ocirun/_native.py) and calls ocirun_spawn(). The child
 * runs the plan from clone to execve and never returns to Python. It talks to the parent over
 * plan->sync_fd (a SOCK_SEQPACKET socketpair) with fixed-size `struct ocirun_msg` records.
 */

#ifndef OCIRUN_H
#define OCIRUN_H

/* ---- sync protocol: one struct ocirun_msg per packet ---------------------------------- */
#define OCIRUN_MSG_IDMAP      1 /* child -> parent: my user namespace exists; write id maps */
#define OCIRUN_MSG_IDMAP_DONE 2 /* parent -> child: maps written, go on */
/* OCIRUN_MSG_PID: sent by the intermediate process after the extra fork; value = the host
 * pid of the container's init. */
#define OCIRUN_MSG_PID        3
#define OCIRUN_MSG_GO         4 /* parent -> init: pid recorded, go on */
#define OCIRUN_MSG_READY      5 /* init -> parent: set up, now blocked before exec */
#define OCIRUN_MSG_ERROR      6 /* child -> parent: err = errno (0: none), text = what failed */
#define OCIRUN_MSG_EXEC_ERROR 7 /* like ERROR, for the executable lookup (runc's wording) */
/* OCIRUN_MSG_HOOKS: child -> parent: mounts are done, before pivot_root: run the prestart
 * and createRuntime hooks now. */
#define OCIRUN_MSG_HOOKS       8
#define OCIRUN_MSG_HOOKS_DONE  9  /* parent -> child: they passed (and state_fd is filled) */
#define OCIRUN_MSG_CGROUP      10 /* child -> parent: put me (value = my pid) in my cgroups */
#define OCIRUN_MSG_CGROUP_DONE 11 /* parent -> child: done; a cgroup ns made now is rooted there */
#define OCIRUN_MSG_SECCOMP_FD  12 /* child -> parent: the seccomp notify listener, as SCM_RIGHTS */
/* OCIRUN_MSG_NETDEV: child -> parent: my network namespace exists: move the
 * linux.netDevices into it now. */
#define OCIRUN_MSG_NETDEV      13
#define OCIRUN_MSG_NETDEV_DONE 14 /* parent -> child: they are in, go on */

/* When the init loads its seccomp filter (Python decides; runc's order). */
#define OCIRUN_SECCOMP_NONE 0
/* EARLY: before the credentials: without no_new_privs, loading needs CAP_SYS_ADMIN, which
 * the cap drop may remove. READY: after the credentials, before READY: a notify listener
 * must reach the parent while it still listens. */
#define OCIRUN_SECCOMP_EARLY 1
#define OCIRUN_SECCOMP_READY 2
#define OCIRUN_SECCOMP_LAST  3 /* the last step before execve: fewest syscalls filtered */

/* How the init reaches the sealed trampoline (Python decides from the seccomp profile and
 * the container's mounts; there is no other way to run the process). EXECVEAT: execveat on
 * exec_fd. PROC_FD: execve of /proc/self/fd/<exec_fd> (the container's procfs), for a profile
 * that refuses execveat. */
#define OCIRUN_EXEC_EXECVEAT 1
#define OCIRUN_EXEC_PROC_FD  2

/* How the init checks that the executable it found may be run (Python decides). FACCESSAT2
 * (AT_EACCESS) knows ACLs and read-only mounts; MODE_BITS is Go's exec.LookPath fallback (what
 * runc does), for a seccomp filter already loaded that does not allow faccessat2, or a kernel
 * without it (< 5.8). */
#define OCIRUN_CHECK_FACCESSAT2 1
#define OCIRUN_CHECK_MODE_BITS  2

#define OCIRUN_MSG_TEXT 1024

struct ocirun_msg {
    int type;
    int err;
    long long value;
    char text[1024];
};

/* ---- plan pieces --------------------------------------------------------------------- */
#define OCIRUN_MNT_DIR  0 /* create the target as a directory if missing */
#define OCIRUN_MNT_FILE 1 /* create the target as an empty file if missing */

/* An entry with neither source nor fstype mounts nothing: it only bind-remounts the target
 * with `remount` (e.g. the tmpfs under v1 cgroup mounts, made read-only once filled). */
struct ocirun_mount {
    const char *source;              /* bind: absolute host path; else the fs source name */
    const char *target;              /* absolute path inside the container (resolved in rootfs) */
    const char *fstype;              /* NULL for binds */
    const char *data;                /* fs options string, or NULL */
    unsigned long flags;             /* MS_* for the first mount(2) call */
    unsigned long remount;           /* non-zero: bind-remount with these MS_* (e.g. ro binds) */
    unsigned long propagation;       /* MS_SHARED|MS_PRIVATE|... (+MS_REC) applied after, or 0 */
    int kind;                        /* OCIRUN_MNT_DIR or OCIRUN_MNT_FILE */
    int copyup;                      /* tmpcopyup: fill the new tmpfs with what was there */
    int inherit_mode;                /* a tmpfs without mode=: an existing target's mode */
    int dir_only;                    /* procfs/sysfs: an existing target must be a directory */
    int source_fd;                   /* >= 0: a detached copy of the bind source the runtime made
                                  before the clone (open_tree): moved onto the target */
    unsigned long moved_propagation; /* applied to that copy once attached, or 0 */
    unsigned long long attr_set;     /* recursive attributes (rro, rnosuid...): MOUNT_ATTR_* set */
    unsigned long long attr_clr;     /* and cleared with mount_setattr(AT_RECURSIVE), or 0 */
};

struct ocirun_ns_join {
    int fd;     /* open fd of the namespace file (opened by Python, O_CLOEXEC) */
    int nstype; /* CLONE_NEW* */
};

struct ocirun_device {
    const char *path;       /* absolute path inside the container */
    const char *host_path;  /* for bind mode: the host node to bind, else NULL */
    unsigned int mode;      /* S_IFCHR/S_IFBLK/S_IFIFO | permission bits */
    unsigned long long dev; /* makedev(major, minor) */
    unsigned int uid;
    unsigned int gid;
};

struct ocirun_symlink {
    const char *target;   /* what the link points to */
    const char *linkpath; /* absolute path inside the container */
};

/* A hook run by the init, in the container's namespaces (createContainer, startContainer).
 * Its stdin carries the container's state JSON, read from plan->state_fd. */
struct ocirun_hook {
    const char *path;
    const char *const *argv; /* NULL-terminated */
    const char *const *envp; /* NULL-terminated, exactly the hook's env */
    int timeout;             /* seconds; 0: none */
};

struct ocirun_rlimit {
    const char *name; /* RLIMIT_NOFILE..., for errors */
    int resource;
    unsigned long long soft;
    unsigned long long hard;
};

struct ocirun_sysctl {
    const char *path; /* /proc/sys/... (after pivot, inside the container) */
    const char *value;
};

struct ocirun_plan {
    /* channels */
    int sync_fd;                     /* child end of the socketpair */
    int fifo_fd;                     /* read end of exec.fifo: wait here for `start`; -1: don't */
    unsigned long long wait_signals; /* bit N: signal N ends the init while it waits */
    int result_fd;                   /* exec.result (O_RDWR): a failure after `start` is written
                                    here for `start` to report; execve closes it (success) */
    const int *keep_fds;             /* ascending: every other fd >= 3 is closed at once, so no */
    int n_keep_fds;                  /* lock, socket or leaked fd of the caller's lives on */

    int cgroup_sync;            /* first of all, let the parent move us into our cgroups */
    const int *cgroup_task_fds; /* or move ourselves: cgroup v1 `tasks` files the parent */
    const char *const *cgroup_task_paths; /* opened (paths for messages); writing "0" moves */
    int n_cgroup_task_fds; /* this thread, our only one, without the global lock's wait */
    int cgroup_into_fd;    /* cgroup2 directory: clone3(CLONE_INTO_CGROUP) starts the
                                    child there (no move at all); -1: plain clone */

    /* namespaces, in the order the child applies them */
    unsigned long clone_flags; /* CLONE_NEW* created by clone(2) itself */
    const struct ocirun_ns_join *joins;
    int n_joins;
    unsigned long unshare_flags; /* CLONE_NEW* created by unshare(2) after the joins */
    int fork_after;              /* extra fork: a joined/unshared pid or time ns needs a child */
    int userns_sync;             /* after the user ns exists, ask the parent to write id maps */
    const char *timens_offsets;  /* text for /proc/self/timens_offsets, or NULL */
    int loopback_up;             /* a new network namespace: bring `lo` up, as runc does */
    int netdev_sync;             /* then wait while the parent moves network devices in */

    /* hooks */
    int hooks_sync; /* before pivot_root, let the parent run its hooks */
    int state_fd;   /* memfd holding the state JSON for hooks' stdin, or -1 */
    const struct ocirun_hook *create_hooks; /* createContainer */
    int n_create_hooks;
    const struct ocirun_hook *start_hooks; /* startContainer */
    int n_start_hooks;

    /* terminal (process.terminal) */
    int console_fd;              /* connected --console-socket (or run's own); -1: no tty */
    unsigned short console_rows; /* consoleSize; 0: leave */
    unsigned short console_cols;

    /* rootfs */
    int setup_rootfs;                   /* 0: no new mount namespace, leave the filesystem alone */
    const char *rootfs;                 /* absolute host path of root.path */
    unsigned long root_propagation;     /* applied to / before anything (MS_REC|MS_SLAVE...);
                                           0: leave */
    unsigned long root_propagation_end; /* applied to the new / after pivot, or 0 */
    int rootfs_parent_unshared;         /* stop the mount holding rootfs sharing (as runc) */
    int rootfs_readonly;
    int dev_readonly; /* remount /dev read-only once devices, links and /dev/pts are made */
    int no_pivot;
    int chroot_only; /* no mount namespace of its own: chroot, no pivot or move
                                    (the mounts stay in the runtime's namespace, as runc) */
    const struct ocirun_mount *mounts;
    int n_mounts;
    const struct ocirun_device *devices;
    int n_devices;
    const struct ocirun_symlink *symlinks;
    int n_symlinks;
    const char *const *masked_paths;
    int n_masked;
    const char *const *readonly_paths;
    int n_readonly;
    /* no_pivot: whole procfs/sysfs mounts of the runtime's namespace, detached (or covered
       with a tmpfs) before the rootfs is moved onto / (as runc's msMoveRoot) */
    const char *const *hide_before_move;
    int n_hide_before_move;

    /* kernel settings of the container */
    const char *hostname;   /* NULL: leave */
    const char *domainname; /* NULL: leave */
    const struct ocirun_sysctl *sysctls;
    int n_sysctls;
    const char *oom_score_adj; /* decimal text, or NULL */

    /* the process */
    const char *const *argv; /* NULL-terminated */
    int argc;
    const char *const *envp; /* NULL-terminated, exactly process.env */
    const char *path_env;    /* PATH to search for argv[0] (process.env's, or the default) */
    int exec_check;          /* OCIRUN_CHECK_*: how argv[0] is checked for X_OK */
    int home_from_passwd;    /* process.env has no HOME: add HOME=<the home of uid in the
                                    container's /etc/passwd, else "/"> (runc, crun) */
    const char *cwd;
    int reopen_dev_null; /* stdio on the host's /dev/null: reopen the container's (runc) */
    int make_cwd;        /* create a missing cwd in the rootfs (runc does) */
    unsigned int uid;
    unsigned int gid;
    const unsigned int *groups; /* additionalGids */
    int n_groups;               /* < 0: leave the groups as they are (setgroups denied) */
    int umask;                  /* always set (0..0777) */
    const struct ocirun_rlimit *rlimits;
    int n_rlimits;
    int no_new_privs;
    unsigned long long cap_bounding;
    unsigned long long cap_effective;
    unsigned long long cap_permitted;
    unsigned long long cap_inheritable;
    unsigned long long cap_ambient;
    int new_keyring; /* join a fresh session keyring */
    int personality; /* personality(2) persona, or -1 */
    int ioprio;      /* ioprio_set(2) value (class << 13 | level), or -1 */
    int sched_set;   /* apply the sched_setattr(2) fields below */
    unsigned int sched_policy;
    int sched_nice;
    unsigned int sched_priority;
    unsigned long long sched_flags;
    unsigned long long sched_runtime;
    unsigned long long sched_deadline;
    unsigned long long sched_period;
    const unsigned char *cpu_initial; /* sched_setaffinity mask at the start, or NULL */
    unsigned int cpu_initial_len;
    const unsigned char *cpu_final; /* ... just before execve, or NULL */
    unsigned int cpu_final_len;
    int mempolicy_set;                    /* linux.memoryPolicy: set_mempolicy(2) */
    int mempolicy_mode;                   /* MPOL_* | MPOL_F_* flags */
    const unsigned char *mempolicy_nodes; /* node mask, or NULL */
    unsigned int mempolicy_nodes_len;     /* bytes */
    int seccomp_when;                     /* OCIRUN_SECCOMP_* */
    const void *seccomp_bpf;              /* struct sock_filter[] compiled by the parent */
    unsigned int seccomp_len;             /* instructions */
    unsigned int seccomp_flags;           /* SECCOMP_FILTER_FLAG_* for seccomp(2) */
    int preserve_fds;                     /* fds 3 .. 3+n-1 survive into the process */
    int exec_fd;                          /* the sealed trampoline, always there */
    int exec_route;                       /* OCIRUN_EXEC_*: how to exec it */
    int trace; /* --debug: report phase times (us since clone) with READY */
};

/* Clone the container's init and run `plan` in it. Returns the child's pid (>0), or -errno.
 * The child never returns. */
int ocirun_spawn(const struct ocirun_plan *plan);

/* A sealed memfd holding the trampoline the init execs the process through (so that
 * /proc/self/exe never reaches the runtime's own binary), or -errno. */
int ocirun_trampoline_fd(void);

/* A detached copy of the mount tree at `path` (open_tree(OPEN_TREE_CLONE), recursively
 * with `recursive`), close-on-exec; or -errno. Runs in the runtime, before the clone. */
int ocirun_open_tree(const char *path, int recursive);

/* A user namespace with these uid_map/gid_map texts (for idmapped mounts), an fd; or -errno. */
int ocirun_userns_fd(const char *uid_map, const char *gid_map);
/* mount_setattr(fd, "", AT_EMPTY_PATH[|AT_RECURSIVE]) with MOUNT_ATTR_* to set and clear and
 * a user namespace fd for MOUNT_ATTR_IDMAP (-1: none). Returns 0 or -errno. */
int ocirun_mount_setattr(int fd, int recursive, unsigned long long set, unsigned long long clr,
                         int userns_fd);

/* Become the reaper of orphaned descendants (`run` waits for an init that is a grandchild).
 * Returns 0 or -errno. */
int ocirun_set_child_subreaper(void);

/* ---- parent side: seccomp compilation (csrc/seccomp.c) ---- */
/* Runs in the runtime (parent) process only: libseccomp builds the filter from a flattened
 * linux.seccomp and exports it as classic BPF; ocirun/seccomp.py does everything else. */
#define OCIRUN_SCMP_CMP_NE        1 /* == libseccomp's enum scmp_compare (checked in seccomp.c) */
#define OCIRUN_SCMP_CMP_LT        2
#define OCIRUN_SCMP_CMP_LE        3
#define OCIRUN_SCMP_CMP_EQ        4
#define OCIRUN_SCMP_CMP_GE        5
#define OCIRUN_SCMP_CMP_GT        6
#define OCIRUN_SCMP_CMP_MASKED_EQ 7

struct ocirun_sc_cond {
    unsigned int arg; /* 0..5 */
    int op;           /* OCIRUN_SCMP_CMP_* */
    unsigned long long value;
    unsigned long long value_two;
};

struct ocirun_sc_rule {
    int nr;              /* seccomp_syscall_resolve_name() (may be a negative pseudo nr) */
    unsigned int action; /* SCMP_ACT_* value, errno/trace data included */
    const struct ocirun_sc_cond *conds; /* ANDed */
    int n_conds;
};

struct ocirun_sc_filter {
    unsigned int default_action;
    const unsigned int *arches; /* SCMP_ARCH_* tokens to add (the native one may be there) */
    int n_arches;
    const struct ocirun_sc_rule *rules;
    int n_rules;
    int optimize; /* 2: libseccomp's binary tree (long rule sets); else default */
};

/* Build the filter and write its BPF to out_fd (seccomp_export_bpf). Returns 0 or -errno; on
 * failure *bad_arch / *bad_rule name the index of the arch or rule libseccomp refused (or -1). */
int ocirun_seccomp_export(const struct ocirun_sc_filter *f, int out_fd, int *bad_arch,
                          int *bad_rule);
/* Resolve `n` NUL-terminated names stored back to back in `names` for arch token `arch`
 * (0: native) into out[i]: the number, a negative pseudo number, or -1 (unknown). */
void ocirun_seccomp_resolve_names(unsigned int arch, const char *names, int n, int *out);
unsigned int ocirun_seccomp_arch_resolve(const char *name); /* "x86_64" -> token, 0: unknown */
unsigned int ocirun_seccomp_arch_native(void);
unsigned int ocirun_seccomp_api(void); /* seccomp_api_get() */
/* libseccomp's runtime version: v[0..2] = major, minor, micro. */
void ocirun_seccomp_version(unsigned int *v);

/* ---- parent side: cgroup v2 device filter (csrc/bpf.c) ---- */
/* Runs in the runtime (parent) process only: ocirun/cgroups/ebpf.py compiles linux.resources
 * .devices to eBPF (struct bpf_insn[], 8 bytes each); these load and attach it. */

/* Load `n_insns` instructions as a BPF_PROG_TYPE_CGROUP_DEVICE program and attach it to the
 * cgroup directory `cgroup_fd` (BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI); device programs that
 * were attached to that cgroup before are detached after it. Returns how many were detached,
 * or -errno; when the verifier refused the program, its log is in `log` (log_size bytes). */
int ocirun_bpf_device_filter(int cgroup_fd, const void *insns, unsigned int n_insns, char *log,
                             unsigned int log_size);

#endif
