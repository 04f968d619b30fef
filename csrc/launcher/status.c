/*
 * status.c: a container's status: the init alive with the start time create recorded (a
 * reused pid is someone else's) -> paused if its freezer says frozen, else created while
 * exec.fifo exists, else running; otherwise stopped.
 *
 * The one implementation: the front door calls it with the record's values, Python
 * (state.py, through the cffi module ocirun._status: build_status.py) with state.json's.
 */
#include "front.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *const STATUS_NAMES[] = { "created", "running", "stopped", "paused" };

/* Read at most cap-1 bytes of path, NUL-terminated; the count, or -1. */
static ssize_t read_small(int dirfd, const char *path, char *out, size_t cap)
{
    int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
    size_t len = 0;
    ssize_t n;

    if (fd < 0)
        return -1;
    while (len < cap - 1) {
        n = read(fd, out + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            close(fd);
            return -1;
        }
        if (n == 0)
            break;
        len += (size_t) n;
    }
    close(fd);
    out[len] = '\0';
    return (ssize_t) len;
}

int proc_start_time(int pid, unsigned long long *out)
{
    char path[32], stat[1024], *p, *field;
    unsigned long long v = 0;
    int i;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    if (read_small(AT_FDCWD, path, stat, sizeof(stat)) <= 0)
        return -1;
    /* The comm field may hold spaces and parentheses: fields start after the last ')'. */
    p = strrchr(stat, ')');
    if (!p || p[1] != ' ' || !p[2])
        return -1;
    p += 2;
    if (*p == 'Z')
        return -1;
    for (i = 0; i < 19; i++) { /* state is field 3; starttime is field 22 */
        p = strchr(p, ' ');
        if (!p)
            return -1;
        p++;
    }
    field = p;
    for (; *p >= '0' && *p <= '9'; p++)
        v = v * 10 + (unsigned long long) (*p - '0');
    if (p == field)
        return -1;
    *out = v;
    return 0;
}

/* The freezer file holds the frozen value (surrounding whitespace ignored, as .strip()). */
static int frozen(const char *freezer, const char *value)
{
    char text[64], *s = text, *e;
    size_t want;

    if (!freezer || !value || read_small(AT_FDCWD, freezer, text, sizeof(text)) < 0)
        return 0;
    while (*s == ' ' || (*s >= '\t' && *s <= '\r'))
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || (e[-1] >= '\t' && e[-1] <= '\r')))
        e--;
    want = strlen(value);
    return (size_t) (e - s) == want && !memcmp(s, value, want);
}

int container_status(int dirfd, const char *fifo, int pid, unsigned long long start_time,
                     const char *freezer, const char *frozen_value)
{
    unsigned long long start;
    struct stat st;

    if (pid <= 0 || proc_start_time(pid, &start) || start != start_time)
        return ST_STOPPED;
    if (frozen(freezer, frozen_value))
        return ST_PAUSED;
    if (!fstatat(dirfd, fifo, &st, 0))
        return ST_CREATED;
    return ST_RUNNING;
}

enum status derive_status(int dirfd, const struct record *r)
{
    return (enum status) container_status(dirfd, "exec.fifo", r->pid, r->start_time, r->freezer,
                                          r->frozen);
}
