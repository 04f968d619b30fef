/*
 * record_fuzz.c: a test harness, not part of the command (tests/unit/test_frontdoor.py
 * builds it with AddressSanitizer and UBSan and feeds it garbage). Reads stdin (at most
 * 4 MiB) and, by argv[1]:
 *   record    parses it as a lifecycle record; prints the fields, or "invalid"
 *   json      prints it as a JSON string (json.dumps of bytes.decode(errors="replace"))
 *   quote     prints it quoted as log.quote does
 *   reindent  prints the compact JSON laid out as json.dumps(indent=2)
 *   procs     writes it as cgroup.procs in a temporary dir, prints the pids cgroup.c reads
 *             from it, one a line, or "invalid"
 */
#include "front.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define IN_MAX (4 << 20)

static void show(const char *key, const char *v)
{
    printf("%s=%s\n", key, v ? v : "(none)");
}

static void dump(const struct record *r)
{
    int i;

    printf("state=%llu %llu %llu\n", r->state_ino, r->state_size, r->state_mtime_ns);
    printf("pid=%d\nstart_time=%llu\n", r->pid, r->start_time);
    show("freezer", r->freezer);
    show("frozen", r->frozen);
    show("procs_dir", r->procs_dir);
    for (i = 0; i < r->n_rmdir; i++)
        printf("%s=%s\n", r->rmdir_leaf[i] ? "rmdir" : "rmdir_parent", r->rmdir[i]);
    for (i = 0; i < r->n_cgroup; i++)
        printf("cgroup=%s\n", r->cgroup[i]);
    printf("python_start=%d\npython_delete=%d\n", r->python_start, r->python_delete);
    show("ociVersion", r->oci_version);
    show("bundle", r->bundle);
    show("rootfs", r->rootfs);
    show("created", r->created);
    show("annotations", r->annotations);
}

int main(int argc, char **argv)
{
    char *in = malloc(IN_MAX + 1);
    struct buf out = { 0 };
    struct record r;
    size_t len = 0;
    ssize_t n;

    if (argc != 2 || !in)
        return 2;
    while (len < IN_MAX && (n = read(0, in + len, IN_MAX - len)) > 0)
        len += (size_t) n;
    in[len] = '\0';
    if (!strcmp(argv[1], "record")) {
        if (len > REC_MAX || rec_parse(in, len, &r))
            puts("invalid");
        else
            dump(&r);
        free(in);
        return 0;
    }
    if (!strcmp(argv[1], "procs")) {
        char dir[] = "/tmp/record_fuzz.XXXXXX", path[64];
        int *pids = NULL, fd, rc;
        size_t n = 0, cap = 0, i;

        if (!mkdtemp(dir))
            return 2;
        snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0 || write_all(fd, in, len))
            return 2;
        close(fd);
        rc = cgroup_pids(dir, &pids, &n, &cap);
        unlink(path);
        rmdir(dir);
        if (rc)
            puts("invalid");
        for (i = 0; !rc && i < n; i++)
            printf("%d\n", pids[i]);
        free(pids);
        free(in);
        return 0;
    }
    if (!strcmp(argv[1], "json"))
        buf_json_str(&out, in, len);
    else if (!strcmp(argv[1], "quote"))
        buf_go_quote(&out, in, len);
    else if (!strcmp(argv[1], "reindent"))
        buf_reindent(&out, in, 0);
    else
        return 2;
    if (out.oom)
        return 3;
    fwrite(out.p ? out.p : "", 1, out.len, stdout);
    free(out.p);
    free(in);
    return 0;
}
