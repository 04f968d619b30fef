/*
 * cgroup.c: what kill --all and delete do to a cgroupfs (v1 or hybrid) container's cgroups,
 * as the cgroup manager does it (ocirun/cgroups: Manager.kill_all, destroy): freeze the
 * freezer so that nothing forks past the signal, signal every pid in every recorded dir's
 * cgroup.procs, thaw; remove the dirs in the recorded order, a leaf retried while tasks
 * that just died leave it.
 *
 * FALLBACK whenever it is not the plain case, before any lasting change: no recorded dirs
 * (v2, systemd, rootless without cgroups), a sub-cgroup anywhere, a freezer that does not
 * freeze promptly (thawed again first): Python's manager handles those.
 */
#include "front.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FREEZE_WAIT_NS (200 * 1000000LL)  /* then Python's patient freeze takes over */
#define RMDIR_WAIT_NS  (1000 * 1000000LL) /* as Manager.destroy's deadline */
#define MAX_PIDS       (1 << 20)

static long long now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void nap(long long ns)
{
    struct timespec ts = { (time_t) (ns / 1000000000LL), (long) (ns % 1000000000LL) };

    nanosleep(&ts, NULL);
}

static int path_in(char *out, const char *dir, const char *name)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);

    return n > 0 && n < PATH_MAX ? 0 : -1;
}

/* 1: dir has a sub-cgroup (or can't be listed), 0: none or dir gone. */
static int has_subdirs(const char *dir)
{
    struct dirent *e;
    int found = 0;
    DIR *d = opendir(dir);

    if (!d)
        return errno != ENOENT;
    while (!found && (e = readdir(d)))
        found = (e->d_type == DT_DIR || e->d_type == DT_UNKNOWN) && strcmp(e->d_name, ".") &&
                strcmp(e->d_name, "..");
    closedir(d);
    return found;
}

static int write_value(const char *dir, const char *name, const char *value)
{
    char path[PATH_MAX];
    size_t len = strlen(value);
    ssize_t n;
    int fd;

    if (path_in(path, dir, name))
        return -1;
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    n = write(fd, value, len);
    close(fd);
    return n == (ssize_t) len ? 0 : -1;
}

/* freezer.state stripped, into out[cap]; -1 if unreadable. */
static int freezer_state(const char *dir, char *out, size_t cap)
{
    char path[PATH_MAX];
    ssize_t n;
    int fd;

    if (path_in(path, dir, "freezer.state"))
        return -1;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    n = read(fd, out, cap - 1);
    close(fd);
    if (n < 0)
        return -1;
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
        n--;
    out[n] = '\0';
    return 0;
}

static int thaw(const char *dir)
{
    char state[32];
    int i;

    if (write_value(dir, "freezer.state", "THAWED"))
        return -1;
    for (i = 0; i < 100; i++) {
        if (!freezer_state(dir, state, sizeof(state)) && !strcmp(state, "THAWED"))
            return 0;
        nap(1000000);
    }
    return -1;
}

/* FROZEN within FREEZE_WAIT_NS: 0; else thawed again and -1. */
static int freeze(const char *dir)
{
    char state[32];
    long long start = now_ns(), wait = 100000;

    for (;;) {
        if (write_value(dir, "freezer.state", "FROZEN") || freezer_state(dir, state, sizeof(state)))
            break;
        if (!strcmp(state, "FROZEN"))
            return 0;
        if (strcmp(state, "FREEZING") || now_ns() - start > FREEZE_WAIT_NS)
            break;
        nap(wait);
        wait = wait * 2 > 5000000 ? 5000000 : wait * 2;
    }
    thaw(dir);
    return -1;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *) a, y = *(const int *) b;

    return (x > y) - (x < y);
}

/* Append the pids of dir/cgroup.procs to *pids; -1 on a read error or a bad line. */
int cgroup_pids(const char *dir, int **pids, size_t *n, size_t *cap)
{
    char path[PATH_MAX], chunk[4096];
    long long v = -1;
    ssize_t got, i;
    int fd, *grown;

    if (path_in(path, dir, "cgroup.procs"))
        return -1;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    while ((got = read(fd, chunk, sizeof(chunk))) > 0) {
        for (i = 0; i < got; i++) {
            if (chunk[i] >= '0' && chunk[i] <= '9') {
                v = (v < 0 ? 0 : v) * 10 + (chunk[i] - '0');
                if (v > INT_MAX)
                    goto bad;
                continue;
            }
            if (chunk[i] != '\n' || v <= 0) /* kill(0, ...) would hit our own group */
                goto bad;
            if (*n == *cap) {
                if (*cap >= MAX_PIDS)
                    goto bad;
                grown = realloc(*pids, (*cap ? *cap * 2 : 64) * sizeof(int));
                if (!grown)
                    goto bad;
                *pids = grown;
                *cap = *cap ? *cap * 2 : 64;
            }
            (*pids)[(*n)++] = (int) v;
            v = -1;
        }
    }
    close(fd);
    return got < 0 || v >= 0 ? -1 : 0;
bad:
    close(fd);
    return -1;
}

/* Every process in the recorded dirs, each once; 0, or -1 (nothing signalled). */
static int signal_each(const struct record *r, int sig)
{
    int *pids = NULL, i;
    size_t n = 0, cap = 0, k;

    for (i = 0; i < r->n_cgroup; i++) {
        if (cgroup_pids(r->cgroup[i], &pids, &n, &cap)) {
            free(pids);
            return -1;
        }
    }
    if (n)
        qsort(pids, n, sizeof(int), cmp_int);
    for (k = 0; k < n; k++) {
        if (k && pids[k] == pids[k - 1])
            continue;
        kill(pids[k], sig); /* ESRCH: gone meanwhile */
    }
    free(pids);
    return 0;
}

/* The freezer dir: the record's v1 freezer file without "/freezer.state". */
static int freezer_dir(const struct record *r, char *out)
{
    static const char suffix[] = "/freezer.state";
    size_t len, sl = sizeof(suffix) - 1;

    if (!r->freezer)
        return 0;
    len = strlen(r->freezer);
    if (strcmp(r->frozen, "FROZEN") || len <= sl || len >= PATH_MAX ||
        strcmp(r->freezer + len - sl, suffix))
        return -1;
    memcpy(out, r->freezer, len - sl);
    out[len - sl] = '\0';
    return 1;
}

int cgroups_kill_all(const struct record *r, int sig)
{
    char fdir[PATH_MAX], state[32];
    int i, can_freeze, rc;

    if (!r->n_cgroup)
        return FALLBACK;
    for (i = 0; i < r->n_cgroup; i++) {
        if (has_subdirs(r->cgroup[i]))
            return FALLBACK;
    }
    can_freeze = freezer_dir(r, fdir);
    if (can_freeze < 0)
        return FALLBACK;
    if (can_freeze && access(fdir, F_OK))
        can_freeze = 0; /* Manager._can_freeze: the dir is there */
    if (can_freeze) {
        /* frozen already (paused; a kill that died midway): the manager's case */
        if (freezer_state(fdir, state, sizeof(state)) || strcmp(state, "THAWED"))
            return FALLBACK;
        if (freeze(fdir))
            return FALLBACK;
    }
    rc = signal_each(r, sig);
    if (can_freeze)
        thaw(fdir);
    return rc ? FALLBACK : 0;
}

int cgroups_busy(const struct record *r)
{
    int *pids = NULL, i;
    size_t n = 0, cap = 0;

    for (i = 0; i < r->n_cgroup; i++) {
        if (has_subdirs(r->cgroup[i]) || cgroup_pids(r->cgroup[i], &pids, &n, &cap) || n) {
            free(pids);
            return 1;
        }
    }
    free(pids);
    return 0;
}

int cgroups_remove(const struct record *r)
{
    long long deadline = now_ns() + RMDIR_WAIT_NS, wait = 1000000;
    int i;

    for (i = 0; i < r->n_rmdir; i++) {
        while (rmdir(r->rmdir[i]) && errno != ENOENT) {
            if (!r->rmdir_leaf[i])
                break; /* a parent: gone only if empty (else another container's) */
            if (errno != EBUSY || now_ns() >= deadline)
                return FALLBACK; /* Python retries, idempotently, and says what is left */
            nap(wait);
            wait = wait * 2 > 50000000 ? 50000000 : wait * 2;
        }
    }
    return 0;
}
