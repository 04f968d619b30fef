/*
 * front.h: the `ocirun` front door (docs/fastpath.md).
 *
 * The command parses runc's global flags and, for state, start, kill, delete and list, does
 * the work itself from the record `create` wrote beside state.json (record.c). Anything it is
 * not sure of it hands to Python (launcher.c: exec python3 -IS), before any side effect.
 */
#ifndef OCIRUN_FRONT_H
#define OCIRUN_FRONT_H

#include <stddef.h>
#include <sys/types.h>

#define FALLBACK    (-1) /* a command's "hand this call to Python" */
#define REC_NAME    "lifecycle.rec"
#define REC_MAX     (1 << 20) /* a bigger record is not ours: Python serves the container */
#define REC_VERSION "ocirun-record 2"
#define REC_RMDIRS  64
#define REC_CGROUPS 64

/* --- record.c: what create decided, parsed from REC_NAME (hostile input: bounded) */
struct record {
    unsigned long long state_ino, state_size, state_mtime_ns; /* state.json it matches */
    int pid;
    unsigned long long start_time; /* /proc/<pid>/stat field 22 */
    const char *freezer, *frozen;  /* freezer file and its frozen value */
    const char *procs_dir;         /* the cgroup delete checks is empty */
    const char *rmdir[REC_RMDIRS]; /* cgroup dirs in removal order */
    int rmdir_leaf[REC_RMDIRS];    /* 0: a parent, gone only if empty */
    int n_rmdir;
    const char *cgroup[REC_CGROUPS]; /* v1/hybrid dirs whose cgroup.procs kill --all signals */
    int n_cgroup;
    int python_start, python_delete;                     /* hooks, host mounts, systemd: Python */
    int python_kill;                                     /* SIGKILL: the whole cgroup, Python */
    const char *oci_version, *bundle, *rootfs, *created; /* raw UTF-8, no newline */
    const char *annotations;                             /* compact JSON object, or NULL */
};

/* Parse buf[0..len) (modified in place; buf[len] must be writable). 0, or -1: not a record
 * of this version (the caller falls back to Python). */
int rec_parse(char *buf, size_t len, struct record *r);
/* Read and parse dirfd/REC_NAME into *buf (malloc'ed; the caller frees it). 0 or -1. */
int rec_read(int dirfd, char **buf, struct record *r);
/* The record matches dirfd/state.json as it is now (else a Python command rewrote it). */
int rec_current(int dirfd, const struct record *r);

/* --- status.c */
enum status { ST_CREATED, ST_RUNNING, ST_STOPPED, ST_PAUSED };
extern const char *const STATUS_NAMES[];
enum status derive_status(int dirfd, const struct record *r);
/* The same from plain values (Python's entry, through cffi): fifo relative to dirfd (or
 * absolute, AT_FDCWD); freezer/frozen_value NULL: no freezer. An enum status. */
int container_status(int dirfd, const char *fifo, int pid, unsigned long long start_time,
                     const char *freezer, const char *frozen_value);
int proc_start_time(int pid, unsigned long long *out); /* 0, or -1: gone or a zombie */

/* --- cgroup.c: cgroupfs v1/hybrid containers' dirs (record `cgroup=`); FALLBACK: Python */
int cgroups_kill_all(const struct record *r, int sig); /* 0, or FALLBACK with nothing sent */
int cgroups_busy(const struct record *r);              /* tasks or sub-cgroups in a dir */
int cgroups_remove(const struct record *r);            /* the rmdir= dirs: 0 or FALLBACK */
/* Append dir/cgroup.procs's pids to *pids (realloc'ed, *cap its size): 0 (no file: none),
 * or -1: unreadable, or not one decimal pid > 0 a line (at most 1 << 20 of them). */
int cgroup_pids(const char *dir, int **pids, size_t *n, size_t *cap);

/* --- out.c: output in the exact shapes Python's commands.py and log.py produce */
struct buf {
    char *p;
    size_t len, cap;
    int oom;
};
void buf_add(struct buf *b, const char *s, size_t n);
void buf_str(struct buf *b, const char *s);
void buf_fmt(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s as a JSON string, as Python's json.dumps (ensure_ascii) writes it; invalid UTF-8 as
 * U+FFFD (bytes.decode(errors="replace")). */
void buf_json_str(struct buf *b, const char *s, size_t n);
/* s in double quotes as Go's %q (log.quote). */
void buf_go_quote(struct buf *b, const char *s, size_t n);
/* Valid UTF-8 of s (invalid sequences as U+FFFD), and its length in code points. */
void buf_utf8(struct buf *b, const char *s, size_t n);
size_t utf8_len(const char *s);
/* The compact JSON (Python's ", " / ": ") laid out as json.dumps(indent=2) at `level`. */
void buf_reindent(struct buf *b, const char *json, int level);
/* json (one line, from Python's json.dumps) without the spaces after its separators. */
void buf_compact(struct buf *b, const char *json);
/* Write all of b to fd; 0 or -1. */
int write_all(int fd, const char *p, size_t n);

void log_configure(const char *path, int json, int debug);
/* --debug: log.phase / log.begin's lines, `phase <name>: <ms> ms` at level debug. */
void phase_begin(void);
void phase(const char *name);
void phase_flush(void); /* the pending first line: the call is the front door's */
/* commands.report: the error in the log (if any) and on stderr. Returns 1. */
int report(const char *msg);

/* --- commands (cmd_*.c): exit code, or FALLBACK with nothing done */
struct globals {
    const char *root; /* lexically absolute (paths.abspath) */
};
int cmd_state(const struct globals *g, const char *id);
int cmd_start(const struct globals *g, const char *id);
int cmd_kill(const struct globals *g, const char *id, const char *sig, int all);
int cmd_delete(const struct globals *g, const char *id, int force);
int cmd_list(const struct globals *g, const char *fmt, int quiet);

/* cmd_state.c: open and lock <root>/<id> (as state.py's Container.load). 1 and *dirfd,
 * *buf, *r on success; 0: the container does not exist; FALLBACK otherwise. */
int open_container(const struct globals *g, const char *id, int *dirfd, char **buf,
                   struct record *r);
/* The state JSON (state.py's oci_state) of a container, indent=2 or compact. */
void state_json(struct buf *b, const char *id, const struct record *r, enum status st,
                const char *owner, int pretty);
int valid_id(const char *id);
/* Report `container "<id>" does not exist`; 1. */
int not_found(const char *id);

#endif
