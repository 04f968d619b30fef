/*
 * record_fuzz.c: a test harness, not part of the command (tests/unit/test_frontdoor.py
 * builds it with AddressSanitizer and UBSan and feeds it garbage). Reads stdin (at most
 * 4 MiB) and, by argv[1]:
 *   record    parses it as a lifecycle record; prints the fields, or "invalid"
 *   json      prints it as a JSON string (json.dumps of bytes.decode(errors="replace"))
 *   quote     prints it quoted as log.quote does
 *   reindent  prints the compact JSON laid out as json.dumps(indent=2)
 */
#include "front.h"

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
