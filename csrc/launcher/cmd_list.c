/*
 * cmd_list.c: `list` (table, --format json, --quiet) as commands.list_ prints it, from the
 * records, without taking the containers' locks (as state.peek). A container whose state
 * Python must read (no record, a stale one, one we may not read) hands the whole call over.
 */
#include "front.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct entry {
    char *id;
    char *rec;
    struct record r;
    enum status st;
    char owner[64];
    char pid[16];
};

static int by_id(const void *a, const void *b)
{
    return strcmp(((const struct entry *) a)->id, ((const struct entry *) b)->id);
}

/* The ids under root, sorted (state.list_ids); -1: Python must list. */
static int list_ids(const char *root, struct entry **out, size_t *count)
{
    struct entry *v = NULL, *nv;
    size_t n = 0, cap = 0;
    struct dirent *e;
    struct stat st;
    DIR *d = opendir(root);

    *out = NULL;
    *count = 0;
    if (!d)
        return errno == ENOENT ? 0 : -1;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || fstatat(dirfd(d), e->d_name, &st, 0) || !S_ISDIR(st.st_mode))
            continue;
        if (!valid_id(e->d_name) || n >= 100000)
            goto fail;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            nv = realloc(v, cap * sizeof(*v));
            if (!nv)
                goto fail;
            v = nv;
        }
        memset(&v[n], 0, sizeof(*v));
        if (!(v[n].id = strdup(e->d_name)))
            goto fail;
        n++;
    }
    closedir(d);
    qsort(v, n, sizeof(*v), by_id);
    *out = v;
    *count = n;
    return 0;
fail:
    while (n)
        free(v[--n].id);
    free(v);
    closedir(d);
    return -1;
}

static char owner[64];
static uid_t owner_uid;
static int have_owner;

/* One container's state (state.peek): 1, 0 when it has none (yet), -1: Python. */
static int peek(const char *root, struct entry *e)
{
    char path[4096];
    struct passwd *pw;
    struct stat st, sj;
    int fd, rc = -1;

    if ((size_t) snprintf(path, sizeof(path), "%s/%s", root, e->id) >= sizeof(path))
        return -1;
    fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT || errno == ENOTDIR ? 0 : -1;
    if (fstat(fd, &st))
        goto out;
    if (fstatat(fd, "state.json", &sj, 0)) {
        rc = errno == ENOENT || errno == ENOTDIR ? 0 : -1;
        /* no state.json beside the config.json written after it is damage (state.peek):
         * Python says so */
        if (rc == 0 && !fstatat(fd, "config.json", &sj, AT_SYMLINK_NOFOLLOW))
            rc = -1;
        goto out;
    }
    if (rec_read(fd, &e->rec, &e->r) || !rec_current(fd, &e->r))
        goto out;
    e->st = derive_status(fd, &e->r);
    if (!have_owner || st.st_uid != owner_uid) { /* state.owner_name caches them too */
        pw = getpwuid(st.st_uid);
        if (pw && strlen(pw->pw_name) >= sizeof(owner))
            goto out;
        if (pw)
            strcpy(owner, pw->pw_name);
        else
            snprintf(owner, sizeof(owner), "#%u", (unsigned) st.st_uid);
        owner_uid = st.st_uid;
        have_owner = 1;
    }
    strcpy(e->owner, owner);
    snprintf(e->pid, sizeof(e->pid), "%d", e->st == ST_STOPPED ? 0 : e->r.pid);
    rc = 1;
out:
    close(fd);
    return rc;
}

static void table(struct buf *b, struct entry *v, size_t n)
{
    static const char *const head[6] = { "ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER" };
    size_t w[6], i, k, len, j;
    const char *cell;

    for (k = 0; k < 6; k++)
        w[k] = strlen(head[k]);
    for (i = 0; i < n; i++) {
        const char *row[6] = { v[i].id,       v[i].pid,       STATUS_NAMES[v[i].st],
                               v[i].r.bundle, v[i].r.created, v[i].owner };
        for (k = 0; k < 6; k++)
            if ((len = utf8_len(row[k])) > w[k])
                w[k] = len;
    }
    for (i = 0; i <= n; i++) {
        size_t start = b->len;
        for (k = 0; k < 6; k++) {
            cell = i == 0   ? head[k]
                   : k == 0 ? v[i - 1].id
                   : k == 1 ? v[i - 1].pid
                   : k == 2 ? STATUS_NAMES[v[i - 1].st]
                   : k == 3 ? v[i - 1].r.bundle
                   : k == 4 ? v[i - 1].r.created
                            : v[i - 1].owner;
            if (k)
                buf_add(b, "   ", 3);
            buf_utf8(b, cell, strlen(cell));
            for (j = utf8_len(cell); j < w[k]; j++)
                buf_add(b, " ", 1);
        }
        /* .rstrip() */
        while (!b->oom && b->len > start && strchr(" \t\v\f\r", b->p[b->len - 1]))
            b->p[--b->len] = '\0';
        buf_add(b, "\n", 1);
    }
}

int cmd_list(const struct globals *g, const char *fmt, int quiet)
{
    struct buf out = { 0 };
    struct entry *v;
    size_t n, all, kept = 0, i;
    int rc = FALLBACK, json = !strcmp(fmt, "json");

    if (!json && strcmp(fmt, "table"))
        return FALLBACK;
    if (list_ids(g->root, &v, &all))
        return FALLBACK;
    for (i = 0; i < all; i++) {
        rc = peek(g->root, &v[i]);
        if (rc < 0)
            goto out;
        if (rc == 0) {
            free(v[i].id);
        } else if (kept != i) {
            v[kept] = v[i];
        }
        if (kept != i || rc == 0)
            v[i].id = v[i].rec = NULL;
        kept += rc == 1;
    }
    n = kept;
    if (quiet) {
        for (i = 0; i < n; i++) {
            buf_str(&out, v[i].id);
            buf_add(&out, "\n", 1);
        }
    } else if (json) {
        buf_add(&out, "[", 1);
        for (i = 0; i < n; i++) {
            if (i)
                buf_add(&out, ",", 1);
            state_json(&out, v[i].id, &v[i].r, v[i].st, v[i].owner, 0);
        }
        buf_add(&out, "]\n", 2);
    } else {
        table(&out, v, n);
    }
    rc = FALLBACK;
    if (!out.oom) {
        if (out.len)
            write_all(1, out.p, out.len);
        rc = 0;
    }
out:
    for (i = 0; i < all; i++) {
        free(v[i].id);
        free(v[i].rec);
    }
    free(v);
    free(out.p);
    return rc;
}
