/*
 * cmd_ops.c: start, kill and delete, as lifecycle.py does them, with the same texts. Each
 * hands the call to Python (FALLBACK) before its first side effect when the record says
 * Python must act (hooks, host mounts, a systemd unit) or anything is unexpected.
 */
#include "front.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int fail(const char *msg, int dirfd, char *rec)
{
    free(rec);
    close(dirfd);
    return report(msg);
}

static int done(int rc, int dirfd, char *rec)
{
    free(rec);
    close(dirfd);
    return rc;
}

/* InitError(errno, text) from what the init wrote to exec.result: "<errno> <what>". */
static int init_error(const char *report_text, int dirfd, char *rec)
{
    struct buf msg = { 0 };
    const char *sp = strchr(report_text, ' ');
    const char *text = sp ? sp + 1 : "";
    size_t nlen = sp ? (size_t) (sp - report_text) : strlen(report_text);
    long long err = 0;
    size_t i;

    for (i = 0; i < nlen; i++) {
        if (report_text[i] < '0' || report_text[i] > '9') {
            err = 0;
            break;
        }
        err = err < INT_MAX ? err * 10 + (report_text[i] - '0') : INT_MAX;
    }
    buf_str(&msg, text);
    if (err) {
        buf_str(&msg, ": ");
        buf_str(&msg, strerror((int) (err > INT_MAX ? INT_MAX : err)));
    }
    free(rec);
    close(dirfd);
    err = report(msg.oom ? "out of memory" : msg.p ? msg.p : "");
    free(msg.p);
    return (int) err;
}

int cmd_start(const struct globals *g, const char *id)
{
    struct record r;
    char *rec = NULL, text[4097];
    int dirfd = -1, rc, result, fifo, flags;
    ssize_t n;
    enum status st;

    if (!valid_id(id))
        return FALLBACK;
    phase_begin();
    rc = open_container(g, id, &dirfd, &rec, &r);
    if (rc != 1)
        return rc == 0 ? not_found(id) : FALLBACK;
    st = derive_status(dirfd, &r);
    phase("lock + state");
    if (st == ST_STOPPED)
        return fail("cannot start a container that has stopped", dirfd, rec);
    if (st != ST_CREATED)
        return fail("cannot start an already running container", dirfd, rec);
    if (r.python_start) /* poststart hooks */
        return done(FALLBACK, dirfd, rec);
    /* The init holds exec.result open for writing until its execve: open our end first. */
    result = openat(dirfd, "exec.result", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (result < 0)
        return done(FALLBACK, dirfd, rec);
    fifo = openat(dirfd, "exec.fifo", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fifo < 0) { /* ENXIO: no reader, the init is gone */
        close(result);
        return fail("cannot start a container that has stopped", dirfd, rec);
    }
    n = write(fifo, "0", 1);
    close(fifo);
    if (n != 1) { /* nothing released */
        close(result);
        return done(FALLBACK, dirfd, rec);
    }
    unlinkat(dirfd, "exec.fifo", 0);
    phase("release (exec.fifo)");
    flags = fcntl(result, F_GETFL);
    if (flags >= 0)
        fcntl(result, F_SETFL, flags & ~O_NONBLOCK);
    /* EOF: the init exec'd (or died silently); text: what failed after the wait. */
    do
        n = read(result, text, sizeof(text) - 1);
    while (n < 0 && errno == EINTR);
    close(result);
    unlinkat(dirfd, "exec.result", 0);
    phase("the init's execve (startContainer hooks first)");
    if (n > 0) {
        text[n] = '\0'; /* a NUL in it ends the text */
        return init_error(text, dirfd, rec);
    }
    return done(0, dirfd, rec);
}

/* commands.parse_signal for the usual spellings: a number 0..64, or a name (TERM, SIGTERM,
 * any case). -1 for anything else (RTMIN+n, whitespace): Python parses it. */
static int parse_signal(const char *s)
{
    static const struct {
        const char *name;
        int num;
    } names[] = { { "HUP", 1 },   { "INT", 2 },     { "QUIT", 3 },  { "ILL", 4 },    { "TRAP", 5 },
                  { "ABRT", 6 },  { "IOT", 6 },     { "BUS", 7 },   { "FPE", 8 },    { "KILL", 9 },
                  { "USR1", 10 }, { "SEGV", 11 },   { "USR2", 12 }, { "PIPE", 13 },  { "ALRM", 14 },
                  { "TERM", 15 }, { "STKFLT", 16 }, { "CHLD", 17 }, { "CONT", 18 },  { "STOP", 19 },
                  { "TSTP", 20 }, { "TTIN", 21 },   { "TTOU", 22 }, { "URG", 23 },   { "XCPU", 24 },
                  { "XFSZ", 25 }, { "VTALRM", 26 }, { "PROF", 27 }, { "WINCH", 28 }, { "IO", 29 },
                  { "POLL", 29 }, { "PWR", 30 },    { "SYS", 31 } };
    char up[16];
    size_t i, n = strlen(s);

    if (n && n <= 2 && strspn(s, "0123456789") == n) {
        i = (size_t) atoi(s);
        return i <= 64 ? (int) i : -1;
    }
    if (!n || n >= sizeof(up))
        return -1;
    for (i = 0; i <= n; i++)
        up[i] = (char) (s[i] >= 'a' && s[i] <= 'z' ? s[i] - 32 : s[i]);
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (!strcmp(up, names[i].name) ||
            (!strncmp(up, "SIG", 3) && !strcmp(up + 3, names[i].name)))
            return names[i].num;
    }
    return -1;
}

/* kill --all: every process in the container's cgroups (lifecycle.kill_all). */
static int kill_all(int dirfd, char *rec, struct record *r, int signum)
{
    enum status st = derive_status(dirfd, r);

    /* Stopped: no error (runc), and what it left in its cgroups (no pid namespace of its
     * own) still gets the signal; without recorded dirs, Python's. Paused (frozen): the
     * manager signals without freezing, thaws after KILL. */
    if (st == ST_PAUSED || (st == ST_STOPPED && !r->n_cgroup))
        return done(FALLBACK, dirfd, rec);
    return done(cgroups_kill_all(r, signum), dirfd, rec);
}

int cmd_kill(const struct globals *g, const char *id, const char *sig, int all)
{
    struct record r;
    char *rec = NULL;
    int dirfd = -1, rc, pidfd, signum = parse_signal(sig);
    enum status st;

    if (!valid_id(id) || signum < 0)
        return FALLBACK;
    rc = open_container(g, id, &dirfd, &rec, &r);
    if (rc != 1)
        return rc == 0 ? not_found(id) : FALLBACK;
    if (all)
        return kill_all(dirfd, rec, &r, signum);
    if (signum == SIGKILL && r.python_kill) /* no pid namespace of its own: every process */
        return done(FALLBACK, dirfd, rec);
    /* The pidfd first, then the start-time check: a pid reused meanwhile can't get it. */
    pidfd = (int) syscall(SYS_pidfd_open, r.pid, 0);
    if (pidfd < 0 && errno != ESRCH)
        return done(FALLBACK, dirfd, rec);
    st = derive_status(dirfd, &r);
    if (pidfd < 0 || st == ST_STOPPED) {
        if (pidfd >= 0)
            close(pidfd);
        return fail("container not running", dirfd, rec);
    }
    rc = (int) syscall(SYS_pidfd_send_signal, pidfd, signum, NULL, 0);
    close(pidfd);
    if (rc && errno == ESRCH)
        return fail("container not running", dirfd, rec);
    return done(rc ? FALLBACK : 0, dirfd, rec); /* not sent: Python says why */
}

/* Without recorded dirs (v2): the cgroup delete would have to kill in first (cg.pids()):
 * tasks, or sub-cgroups. */
static int cgroup_busy(const char *dir)
{
    char path[PATH_MAX], c;
    struct dirent *e;
    int fd, busy = 0;
    ssize_t n;
    DIR *d;

    if ((size_t) snprintf(path, sizeof(path), "%s/cgroup.procs", dir) >= sizeof(path))
        return 1;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno != ENOENT;
    n = read(fd, &c, 1);
    close(fd);
    if (n != 0)
        return 1;
    d = opendir(dir);
    if (!d)
        return 1;
    while ((e = readdir(d)) && !busy)
        busy = e->d_type == DT_DIR && strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return busy;
}

/* Container.destroy: every file of the state dir (state.json last: while it is there, a
 * Python retry still knows the container), then the dir. FALLBACK before state.json goes. */
static int remove_state_dir(int dirfd, const char *dirpath)
{
    struct dirent *e;
    struct buf msg = { 0 };
    int fd = dup(dirfd), err;
    DIR *d;

    if (fd < 0 || !(d = fdopendir(fd))) {
        if (fd >= 0)
            close(fd);
        return FALLBACK;
    }
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, "state.json"))
            continue;
        if (unlinkat(dirfd, e->d_name, 0) && errno != ENOENT) {
            closedir(d);
            return FALLBACK;
        }
    }
    closedir(d);
    if (unlinkat(dirfd, "state.json", 0) && errno != ENOENT)
        return FALLBACK;
    if (!rmdir(dirpath) || errno == ENOENT)
        return 0;
    err = errno;
    buf_str(&msg, "remove ");
    buf_str(&msg, dirpath);
    buf_str(&msg, ": ");
    buf_str(&msg, strerror(err));
    report(msg.oom ? "out of memory" : msg.p);
    free(msg.p);
    return 1;
}

#define KILL_TIMEOUT_S 10 /* lifecycle.KILL_TIMEOUT: an init that can't die is an error */

/* lifecycle._kill_and_wait: SIGKILL through a pidfd, wait until it is readable (exited).
 * 0, FALLBACK (nothing sent), or 1 (reported). */
static int kill_and_wait(const struct record *r, int dirfd)
{
    struct pollfd p;
    struct buf msg = { 0 };
    int pidfd = (int) syscall(SYS_pidfd_open, r->pid, 0), n;

    if (pidfd < 0)
        return errno == ESRCH ? 0 : FALLBACK;
    if (derive_status(dirfd, r) == ST_STOPPED) {
        close(pidfd);
        return 0;
    }
    if (syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0) && errno != ESRCH) {
        close(pidfd);
        return FALLBACK;
    }
    p.fd = pidfd;
    p.events = POLLIN;
    do
        n = poll(&p, 1, KILL_TIMEOUT_S * 1000);
    while (n < 0 && errno == EINTR);
    close(pidfd);
    if (n > 0)
        return 0;
    buf_fmt(&msg, "container init (pid %d) still running %d s after SIGKILL", r->pid,
            KILL_TIMEOUT_S);
    report(msg.oom ? "out of memory" : msg.p);
    free(msg.p);
    return 1;
}

int cmd_delete(const struct globals *g, const char *id, int force)
{
    struct buf msg = { 0 };
    struct record r;
    char *rec = NULL, path[PATH_MAX];
    int dirfd = -1, rc, busy;
    enum status st;

    if (!valid_id(id))
        return FALLBACK;
    phase_begin();
    rc = open_container(g, id, &dirfd, &rec, &r);
    if (rc == 0)
        return force ? 0 : not_found(id);
    if (rc != 1)
        return FALLBACK;
    st = derive_status(dirfd, &r);
    if (st != ST_STOPPED && !force) {
        buf_str(&msg, "cannot delete container ");
        buf_str(&msg, id);
        buf_str(&msg, " that is not stopped: ");
        buf_str(&msg, STATUS_NAMES[st]);
        rc = fail(msg.oom ? "out of memory" : msg.p, dirfd, rec);
        free(msg.p);
        return rc;
    }
    /* Poststop hooks, host mounts, a systemd unit; paused (frozen): Python. */
    if (r.python_delete || st == ST_PAUSED)
        return done(FALLBACK, dirfd, rec);
    /* What still runs is killed first: the init, and whatever else is in the cgroups (exec'd
     * processes; without a pid namespace the init's death does not take them along). */
    busy = r.n_cgroup ? cgroups_busy(&r) : r.procs_dir && cgroup_busy(r.procs_dir);
    if (st != ST_STOPPED || busy) {
        if (!r.n_cgroup || cgroups_kill_all(&r, SIGKILL))
            return done(FALLBACK, dirfd, rec);
        if (st != ST_STOPPED && (rc = kill_and_wait(&r, dirfd)))
            return done(rc, dirfd, rec);
    }
    phase("lock + state, load cgroup driver, stop what runs");
    if (r.n_rmdir || r.n_cgroup) {
        if (cgroups_remove(&r))
            return done(FALLBACK, dirfd, rec);
        phase("remove cgroups");
    }
    rc = snprintf(path, sizeof(path), "%s%s%s", g->root, strcmp(g->root, "/") ? "/" : "", id);
    rc = rc > 0 && (size_t) rc < sizeof(path) ? remove_state_dir(dirfd, path) : FALLBACK;
    if (!rc)
        phase("remove state dir");
    return done(rc, dirfd, rec);
}
