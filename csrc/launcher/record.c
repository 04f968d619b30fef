/*
 * record.c: the lifecycle record create writes beside state.json (ocirun/fastrecord.py).
 *
 *     ocirun-record 2
 *     state=<st_ino> <st_size> <st_mtime in ns>   state.json as create left it
 *     pid=<init pid>
 *     start_time=<field 22 of /proc/<pid>/stat>
 *     freezer=<file>  frozen=<value>              optional, both or neither
 *     procs_dir=<cgroup dir>                      optional: delete checks it is empty
 *     rmdir=<dir> / rmdir_parent=<dir>            repeated: cgroup dirs in removal order
 *     cgroup=<dir>                                repeated: every dir of a cgroupfs v1 or
 *                                                 hybrid container (kill --all, delete -f)
 *     python_start=0|1  python_delete=0|1         hooks, host mounts, systemd: Python's
 *     python_kill=1                               optional: no pid namespace of its own,
 *                                                 SIGKILL is for the whole cgroup: Python's
 *     ociVersion= bundle= rootfs= created=        raw UTF-8
 *     annotations=<compact JSON object>           optional
 *     end
 *
 * One key=value a line, values without newline or NUL. Anything else (an unknown key, a
 * repeated one, a missing one, no `end` as the last line, a number out of range) makes the
 * whole record invalid: the caller hands the call to Python, which reads state.json.
 */
#include "front.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int parse_ull(const char *s, unsigned long long max, unsigned long long *out)
{
    unsigned long long v = 0;

    if (!*s || (s[0] == '0' && s[1]))
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        if (v > (max - (unsigned long long) (*s - '0')) / 10)
            return -1;
        v = v * 10 + (unsigned long long) (*s - '0');
    }
    *out = v;
    return 0;
}

static int parse_flag(const char *s, int *out)
{
    if (strcmp(s, "0") && strcmp(s, "1"))
        return -1;
    *out = s[0] == '1';
    return 0;
}

static int parse_state_line(char *s, struct record *r)
{
    char *a = s, *b, *c;
    unsigned long long v[3];

    b = strchr(a, ' ');
    if (!b)
        return -1;
    *b++ = '\0';
    c = strchr(b, ' ');
    if (!c)
        return -1;
    *c++ = '\0';
    if (parse_ull(a, ULLONG_MAX, &v[0]) || parse_ull(b, ULLONG_MAX, &v[1]) ||
        parse_ull(c, ULLONG_MAX, &v[2]))
        return -1;
    r->state_ino = v[0];
    r->state_size = v[1];
    r->state_mtime_ns = v[2];
    return 0;
}

/* A compact JSON object as Python writes it: printable ASCII, balanced outside strings. */
static int plausible_object(const char *s)
{
    int depth = 0, in_str = 0;
    const char *p;

    if (s[0] != '{')
        return -1;
    for (p = s; *p; p++) {
        if (*p < 0x20 || *p > 0x7e)
            return -1;
        if (in_str) {
            if (*p == '\\') {
                if (!p[1])
                    return -1;
                p++;
            } else if (*p == '"') {
                in_str = 0;
            }
            continue;
        }
        if (*p == '"') {
            in_str = 1;
        } else if (*p == '{' || *p == '[') {
            if (++depth > 200)
                return -1;
        } else if (*p == '}' || *p == ']') {
            if (--depth < 0 || (depth == 0 && p[1]))
                return -1;
        }
    }
    return depth == 0 && !in_str ? 0 : -1;
}

enum {
    K_STATE,
    K_PID,
    K_START,
    K_FREEZER,
    K_FROZEN,
    K_PROCS,
    K_PYSTART,
    K_PYDELETE,
    K_PYKILL,
    K_VERSION,
    K_BUNDLE,
    K_ROOTFS,
    K_CREATED,
    K_ANNOTATIONS,
    K_N
};
static const char *const KEYS[K_N] = { "state",       "pid",        "start_time",   "freezer",
                                       "frozen",      "procs_dir",  "python_start", "python_delete",
                                       "python_kill", "ociVersion", "bundle",       "rootfs",
                                       "created",     "annotations" };
static const unsigned REQUIRED = (1u << K_STATE) | (1u << K_PID) | (1u << K_START) |
                                 (1u << K_PYSTART) | (1u << K_PYDELETE) | (1u << K_VERSION) |
                                 (1u << K_BUNDLE) | (1u << K_ROOTFS) | (1u << K_CREATED);

static int set_key(struct record *r, int k, char *v)
{
    unsigned long long n;

    switch (k) {
    case K_STATE:
        return parse_state_line(v, r);
    case K_PID:
        if (parse_ull(v, INT_MAX, &n) || n == 0)
            return -1;
        r->pid = (int) n;
        return 0;
    case K_START:
        return parse_ull(v, ULLONG_MAX, &r->start_time);
    case K_FREEZER:
        r->freezer = v;
        return *v == '/' ? 0 : -1;
    case K_FROZEN:
        r->frozen = v;
        return *v ? 0 : -1;
    case K_PROCS:
        r->procs_dir = v;
        return *v == '/' ? 0 : -1;
    case K_PYSTART:
        return parse_flag(v, &r->python_start);
    case K_PYDELETE:
        return parse_flag(v, &r->python_delete);
    case K_PYKILL:
        return parse_flag(v, &r->python_kill);
    case K_VERSION:
        r->oci_version = v;
        return 0;
    case K_BUNDLE:
        r->bundle = v;
        return 0;
    case K_ROOTFS:
        r->rootfs = v;
        return 0;
    case K_CREATED:
        r->created = v;
        return 0;
    case K_ANNOTATIONS:
        r->annotations = v;
        return plausible_object(v);
    }
    return -1;
}

int rec_parse(char *buf, size_t len, struct record *r)
{
    char *line = buf, *end = buf + len, *nl, *eq;
    unsigned seen = 0;
    int k, first = 1, done = 0;

    memset(r, 0, sizeof(*r));
    buf[len] = '\0';
    if (memchr(buf, '\0', len))
        return -1;
    while (line < end) {
        nl = memchr(line, '\n', (size_t) (end - line));
        if (!nl || done)
            return -1; /* a last line without newline: truncated; anything after `end` */
        *nl = '\0';
        if (first) {
            if (strcmp(line, REC_VERSION))
                return -1;
            first = 0;
        } else if (!strcmp(line, "end")) {
            done = 1;
        } else {
            eq = strchr(line, '=');
            if (!eq)
                return -1;
            *eq++ = '\0';
            if (!strcmp(line, "rmdir") || !strcmp(line, "rmdir_parent")) {
                if (r->n_rmdir >= REC_RMDIRS || *eq != '/')
                    return -1;
                r->rmdir_leaf[r->n_rmdir] = line[5] == '\0';
                r->rmdir[r->n_rmdir++] = eq;
            } else if (!strcmp(line, "cgroup")) {
                if (r->n_cgroup >= REC_CGROUPS || *eq != '/')
                    return -1;
                r->cgroup[r->n_cgroup++] = eq;
            } else {
                for (k = 0; k < K_N && strcmp(line, KEYS[k]); k++)
                    ;
                if (k == K_N || (seen & (1u << k)) || set_key(r, k, eq))
                    return -1;
                seen |= 1u << k;
            }
        }
        line = nl + 1;
    }
    if (!done || (seen & REQUIRED) != REQUIRED || !r->freezer != !r->frozen)
        return -1;
    return 0;
}

int rec_read(int dirfd, char **bufp, struct record *r)
{
    int fd = openat(dirfd, REC_NAME, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    size_t len = 0;
    ssize_t n;
    struct stat st;
    char *buf;

    *bufp = NULL;
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > REC_MAX) {
        close(fd);
        return -1;
    }
    /* One byte more than the file: a file that grew meanwhile is refused, not cut. */
    buf = malloc((size_t) st.st_size + 2);
    if (!buf) {
        close(fd);
        return -1;
    }
    while (len < (size_t) st.st_size + 1) {
        n = read(fd, buf + len, (size_t) st.st_size + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t) n;
    }
    close(fd);
    if (len != (size_t) st.st_size || rec_parse(buf, len, r)) {
        free(buf);
        return -1;
    }
    *bufp = buf;
    return 0;
}

int rec_current(int dirfd, const struct record *r)
{
    struct stat st;

    if (fstatat(dirfd, "state.json", &st, AT_SYMLINK_NOFOLLOW))
        return 0;
    return S_ISREG(st.st_mode) && (unsigned long long) st.st_ino == r->state_ino &&
           (unsigned long long) st.st_size == r->state_size &&
           (unsigned long long) st.st_mtim.tv_sec * 1000000000ULL +
                   (unsigned long long) st.st_mtim.tv_nsec ==
               r->state_mtime_ns;
}
