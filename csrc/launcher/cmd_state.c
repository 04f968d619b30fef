/*
 * cmd_state.c: opening a container as state.py's Container.load does (flock on its dir,
 * held until exit), its state JSON, and `state`.
 */
#include "front.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

int valid_id(const char *id)
{
    const char *p;

    /* state.py's check_id: at most NAME_MAX (255) characters, the id names a directory */
    if (!*id || strlen(id) > 255 || !strcmp(id, ".") || !strcmp(id, ".."))
        return 0;
    for (p = id; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr("_+.-", *p)))
            return 0;
    }
    return 1;
}

int open_container(const struct globals *g, const char *id, int *dirfd, char **buf,
                   struct record *r)
{
    char path[PATH_MAX];
    int fd, n;

    n = snprintf(path, sizeof(path), "%s%s%s", g->root, strcmp(g->root, "/") ? "/" : "", id);
    if (n < 0 || (size_t) n >= sizeof(path))
        return FALLBACK;
    fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT || errno == ENOTDIR ? 0 : FALLBACK;
    while (flock(fd, LOCK_EX)) {
        if (errno != EINTR) {
            close(fd);
            return FALLBACK;
        }
    }
    /* No record (a create in progress or dead, an older ocirun's container), or one that no
     * longer matches state.json: Python reads state.json. */
    if (rec_read(fd, buf, r) || !rec_current(fd, r)) {
        free(*buf);
        *buf = NULL;
        close(fd);
        return FALLBACK;
    }
    *dirfd = fd;
    return 1;
}

static void field(struct buf *b, const char *key, const char *value, int pretty)
{
    buf_str(b, pretty ? ",\n  \"" : ",\"");
    buf_str(b, key);
    buf_str(b, pretty ? "\": " : "\":");
    buf_json_str(b, value, strlen(value));
}

void state_json(struct buf *b, const char *id, const struct record *r, enum status st,
                const char *owner, int pretty)
{
    int alive = st != ST_STOPPED;

    buf_str(b, pretty ? "{\n  \"ociVersion\": " : "{\"ociVersion\":");
    buf_json_str(b, r->oci_version, strlen(r->oci_version));
    field(b, "id", id, pretty);
    buf_fmt(b, pretty ? ",\n  \"pid\": %d" : ",\"pid\":%d", alive ? r->pid : 0);
    field(b, "status", STATUS_NAMES[st], pretty);
    field(b, "bundle", r->bundle, pretty);
    field(b, "rootfs", r->rootfs, pretty);
    field(b, "created", r->created, pretty);
    field(b, "owner", owner, pretty);
    if (r->annotations && strcmp(r->annotations, "{}")) {
        buf_str(b, pretty ? ",\n  \"annotations\": " : ",\"annotations\":");
        if (pretty)
            buf_reindent(b, r->annotations, 1);
        else
            buf_compact(b, r->annotations);
    }
    buf_str(b, pretty ? "\n}" : "}");
}

int not_found(const char *id)
{
    struct buf msg = { 0 };
    int rc;

    buf_str(&msg, "container \"");
    buf_str(&msg, id);
    buf_str(&msg, "\" does not exist");
    rc = report(msg.oom ? "out of memory" : msg.p);
    free(msg.p);
    return rc;
}

int cmd_state(const struct globals *g, const char *id)
{
    struct buf out = { 0 };
    struct record r;
    char *rec = NULL;
    int dirfd = -1, rc;

    if (!valid_id(id))
        return FALLBACK;
    rc = open_container(g, id, &dirfd, &rec, &r);
    if (rc != 1)
        return rc == 0 ? not_found(id) : FALLBACK;
    state_json(&out, id, &r, derive_status(dirfd, &r), "", 1);
    buf_add(&out, "\n", 1);
    rc = FALLBACK;
    if (!out.oom) {
        write_all(1, out.p, out.len);
        rc = 0;
    }
    free(out.p);
    free(rec);
    close(dirfd);
    return rc;
}
