/*
 * bpf.c: parent side. Loads the cgroup v2 device filter that ocirun/cgroups/ebpf.py compiled
 * (BPF_PROG_TYPE_CGROUP_DEVICE) and attaches it to the container's cgroup directory.
 *
 * Runs in the runtime process only, before the container's init exists (create) or on a live
 * container (update). The program is attached with BPF_F_ALLOW_MULTI, so a program attached
 * above (systemd's, a parent runtime's) still applies too; one attached before at the same
 * cgroup (the previous filter, on update) is detached only after the new one is in place, so
 * no access is ever let through by the swap. rmdir of the cgroup detaches everything.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include <linux/bpf.h>

#include "ocirun.h"

#define MAX_OLD 64

static int sys_bpf(int cmd, union bpf_attr *attr)
{
    long r = syscall(__NR_bpf, cmd, attr, sizeof(*attr));
    return r < 0 ? -errno : (int) r;
}

static int load(const void *insns, unsigned int n)
{
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    a.expected_attach_type = BPF_CGROUP_DEVICE;
    a.insns = (uintptr_t) insns;
    a.insn_cnt = n;
    a.license = (uintptr_t) "Apache-2.0"; /* no GPL-only helper is called */
    memcpy(a.prog_name, "ocirun_devices", sizeof("ocirun_devices"));
    return sys_bpf(BPF_PROG_LOAD, &a);
}

static int load_logged(const void *insns, unsigned int n, char *log, unsigned int log_size)
{
    int fd = load(insns, n);
    if (fd == -EPERM) {
        /* Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK: lift it for the load only
         * (the container's init is forked later and must not inherit a changed limit). */
        struct rlimit old, inf = { RLIM_INFINITY, RLIM_INFINITY };
        if (getrlimit(RLIMIT_MEMLOCK, &old) == 0 && old.rlim_cur != RLIM_INFINITY &&
            setrlimit(RLIMIT_MEMLOCK, &inf) == 0) {
            fd = load(insns, n);
            setrlimit(RLIMIT_MEMLOCK, &old);
        }
    }
    if (fd < 0 && fd != -EPERM && log && log_size > 1) {
        /* Once more with the verifier's log, to say why. */
        union bpf_attr a;
        int err = fd;
        memset(&a, 0, sizeof(a));
        a.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
        a.expected_attach_type = BPF_CGROUP_DEVICE;
        a.insns = (uintptr_t) insns;
        a.insn_cnt = n;
        a.license = (uintptr_t) "Apache-2.0";
        a.log_buf = (uintptr_t) log;
        a.log_size = log_size;
        a.log_level = 1;
        log[0] = 0;
        fd = sys_bpf(BPF_PROG_LOAD, &a);
        if (fd >= 0) { /* loaded this time after all */
            return fd;
        }
        log[log_size - 1] = 0;
        return err;
    }
    return fd;
}

static int query(int cgroup_fd, unsigned int *ids, unsigned int max_ids)
{
    union bpf_attr a;
    int r;
    memset(&a, 0, sizeof(a));
    a.query.target_fd = cgroup_fd;
    a.query.attach_type = BPF_CGROUP_DEVICE;
    a.query.prog_ids = (uintptr_t) ids;
    a.query.prog_cnt = max_ids;
    r = sys_bpf(BPF_PROG_QUERY, &a);
    if (r < 0 && r != -ENOSPC) { /* ENOSPC: more than max_ids; prog_cnt has the count */
        return r;
    }
    return (int) a.query.prog_cnt;
}

static int detach(int cgroup_fd, unsigned int id)
{
    union bpf_attr a;
    int fd, r;
    memset(&a, 0, sizeof(a));
    a.prog_id = id;
    fd = sys_bpf(BPF_PROG_GET_FD_BY_ID, &a);
    if (fd == -ENOENT) {
        return 0; /* gone meanwhile */
    }
    if (fd < 0) {
        return fd;
    }
    memset(&a, 0, sizeof(a));
    a.target_fd = cgroup_fd;
    a.attach_bpf_fd = fd;
    a.attach_type = BPF_CGROUP_DEVICE;
    r = sys_bpf(BPF_PROG_DETACH, &a);
    close(fd);
    return r == -ENOENT ? 0 : r;
}

int ocirun_bpf_device_filter(int cgroup_fd, const void *insns, unsigned int n_insns, char *log,
                             unsigned int log_size)
{
    unsigned int old[MAX_OLD];
    union bpf_attr a;
    int n_old, prog, r, i;

    if (log && log_size) {
        log[0] = 0;
    }
    n_old = query(cgroup_fd, old, MAX_OLD);
    if (n_old < 0) {
        return n_old;
    }
    if (n_old > MAX_OLD) {
        return -E2BIG;
    }
    prog = load_logged(insns, n_insns, log, log_size);
    if (prog < 0) {
        return prog;
    }
    memset(&a, 0, sizeof(a));
    a.target_fd = cgroup_fd;
    a.attach_bpf_fd = prog;
    a.attach_type = BPF_CGROUP_DEVICE;
    a.attach_flags = BPF_F_ALLOW_MULTI;
    r = sys_bpf(BPF_PROG_ATTACH, &a);
    close(prog); /* the attachment holds its own reference */
    if (r < 0) {
        return r;
    }
    for (i = 0; i < n_old; i++) {
        r = detach(cgroup_fd, old[i]);
        if (r < 0) {
            return r;
        }
    }
    return n_old;
}
