/* security.c: the process's names, limits and credentials. */
#include "shim.h"

#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/personality.h>
#include <sys/resource.h>

#define KEYCTL_JOIN_SESSION_KEYRING 1

void set_identity_names(const struct ocirun_plan *p)
{
    if (p->hostname && sethostname(p->hostname, strlen(p->hostname)) < 0)
        die(p, errno, "sethostname %s", p->hostname);
    if (p->domainname && setdomainname(p->domainname, strlen(p->domainname)) < 0)
        die(p, errno, "setdomainname %s", p->domainname);
}

/* sched_setattr(2)'s argument; glibc has no wrapper. */
struct sched_attr_v1 {
    unsigned int size;
    unsigned int sched_policy;
    unsigned long long sched_flags;
    int sched_nice;
    unsigned int sched_priority;
    unsigned long long sched_runtime;
    unsigned long long sched_deadline;
    unsigned long long sched_period;
};

#define IOPRIO_WHO_PROCESS 1

void set_cpu_affinity(const struct ocirun_plan *p, const unsigned char *mask, unsigned int len)
{
    if (mask && syscall(SYS_sched_setaffinity, 0, len, mask) < 0)
        die(p, errno, "sched_setaffinity");
}

/* process.scheduler, ioPriority, personality; linux.memoryPolicy. */
static void set_scheduling(const struct ocirun_plan *p)
{
    if (p->sched_set) {
        struct sched_attr_v1 attr = {
            .size = sizeof(attr),
            .sched_policy = p->sched_policy,
            .sched_flags = p->sched_flags,
            .sched_nice = p->sched_nice,
            .sched_priority = p->sched_priority,
            .sched_runtime = p->sched_runtime,
            .sched_deadline = p->sched_deadline,
            .sched_period = p->sched_period,
        };

        if (syscall(SYS_sched_setattr, 0, &attr, 0) < 0)
            die(p, errno, "sched_setattr policy %u", p->sched_policy);
    }
    if (p->ioprio >= 0 && syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, p->ioprio) < 0)
        die(p, errno, "ioprio_set 0x%x", p->ioprio);
    if (p->mempolicy_set && syscall(SYS_set_mempolicy, p->mempolicy_mode, p->mempolicy_nodes,
                                    (unsigned long) p->mempolicy_nodes_len * 8) < 0)
        die(p, errno, "set_mempolicy mode 0x%x", p->mempolicy_mode);
}

void set_limits(const struct ocirun_plan *p)
{
    int i;

    set_scheduling(p);

    for (i = 0; i < p->n_rlimits; i++) {
        struct rlimit rl = { .rlim_cur = p->rlimits[i].soft, .rlim_max = p->rlimits[i].hard };

        if (setrlimit(p->rlimits[i].resource, &rl) < 0)
            die(p, errno, "setrlimit %s (soft %llu, hard %llu)", p->rlimits[i].name,
                p->rlimits[i].soft, p->rlimits[i].hard);
    }
    if (p->oom_score_adj)
        write_file(p, "/proc/self/oom_score_adj", p->oom_score_adj);
    if (p->new_keyring && syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL) < 0 &&
        errno != ENOSYS)
        die(p, errno, "join a new session keyring");
}

static void set_caps(const struct ocirun_plan *p)
{
    struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2];
    int cap, last = CAP_LAST_CAP;

    memset(data, 0, sizeof(data));
    data[0].effective = (unsigned int) p->cap_effective;
    data[1].effective = (unsigned int) (p->cap_effective >> 32);
    data[0].permitted = (unsigned int) p->cap_permitted;
    data[1].permitted = (unsigned int) (p->cap_permitted >> 32);
    data[0].inheritable = (unsigned int) p->cap_inheritable;
    data[1].inheritable = (unsigned int) (p->cap_inheritable >> 32);
    if (syscall(SYS_capset, &hdr, data) < 0)
        die(p, errno, "capset");
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        die(p, errno, "clear ambient capabilities");
    for (cap = 0; cap <= last && cap < 64; cap++)
        if ((p->cap_ambient >> cap) & 1 &&
            prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
            die(p, errno, "raise ambient capability %d", cap);
}

static void drop_bounding(const struct ocirun_plan *p)
{
    int cap;

    for (cap = 0; cap < 64; cap++) {
        if ((p->cap_bounding >> cap) & 1)
            continue;
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
            if (errno == EINVAL) /* past the kernel's last capability */
                break;
            die(p, errno, "drop capability %d from the bounding set", cap);
        }
    }
}

void set_credentials(const struct ocirun_plan *p)
{
    drop_bounding(p);
    /* Keep the permitted set across the uid change; capset below sets it exactly. */
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
        die(p, errno, "prctl PR_SET_KEEPCAPS");
    /* n_groups < 0: setgroups is denied in our user namespace (rootless); keep them */
    if (p->n_groups >= 0 && setgroups((size_t) p->n_groups, (const gid_t *) p->groups) < 0)
        die(p, errno, "setgroups");
    if (setresgid(p->gid, p->gid, p->gid) < 0)
        die(p, errno, "setresgid %u", p->gid);
    if (setresuid(p->uid, p->uid, p->uid) < 0)
        die(p, errno, "setresuid %u", p->uid);
    if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
        die(p, errno, "prctl PR_SET_KEEPCAPS");
    set_caps(p);
    if (p->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        die(p, errno, "prctl PR_SET_NO_NEW_PRIVS");
    umask((mode_t) p->umask); /* always set by the plan (exec_process checks) */
}

void set_personality(const struct ocirun_plan *p)
{
    if (p->personality >= 0 && personality((unsigned long) p->personality) < 0)
        die(p, errno, "personality 0x%x", p->personality);
}

void load_seccomp(const struct ocirun_plan *p, int when)
{
    struct sock_fprog prog;
    long fd;

    if (p->seccomp_when != when)
        return;
    prog.len = (unsigned short) p->seccomp_len;
    prog.filter = (struct sock_filter *) p->seccomp_bpf;
    fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, p->seccomp_flags, &prog);
    if (fd < 0)
        die(p, errno, "seccomp load (%u instructions)", p->seccomp_len);
    if (p->seccomp_flags & SECCOMP_FILTER_FLAG_NEW_LISTENER) {
        send_msg_fd(p, OCIRUN_MSG_SECCOMP_FD, (int) fd);
        close((int) fd);
    }
}
