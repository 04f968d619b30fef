/* spawn.c: clone the container's init and run the plan in it, in order. */
#include "shim.h"

#include <linux/sched.h> /* struct clone_args, CLONE_INTO_CGROUP */

/* Close every fd >= 3 that the plan does not keep: the runtime's own (the state dir lock,
 * sockets) and whatever the caller leaked to us. */
static void close_other_fds(const struct ocirun_plan *p)
{
    unsigned int from = 3;
    int i;

    for (i = 0; i < p->n_keep_fds; i++) {
        unsigned int fd = (unsigned int) p->keep_fds[i];

        if (fd < from)
            continue;
        if (fd > from && syscall(SYS_close_range, from, fd - 1, 0) < 0)
            die(p, errno, "close_range");
        from = fd + 1;
    }
    if (syscall(SYS_close_range, from, ~0U, 0) < 0)
        die(p, errno, "close_range");
}

static NORETURN void child_main(const struct ocirun_plan *p)
{
    int i;

    trace_mark(p, "start");
    close_other_fds(p);
    set_cpu_affinity(p, p->cpu_initial, p->cpu_initial_len);

    /* Before we enter anything of the container's: no /proc/<pid>/exe, no ptrace, no core
     * from a process that still holds the runtime's memory (CVE-2016-9962 class). */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        die(p, errno, "prctl PR_SET_DUMPABLE");

    /* Into the container's cgroups before anything else: every later child (the init after
     * the extra fork, hooks) is born there, and a new cgroup namespace is rooted there.
     * A thread moving itself ("0" to `tasks`) skips the global threadgroup lock, whose first
     * taking waits an RCU grace period: that is the parent's cgroup.procs write's cost. */
    for (i = 0; i < p->n_cgroup_task_fds; i++) {
        if (write(p->cgroup_task_fds[i], "0", 1) < 0)
            die(p, errno, "write %s", p->cgroup_task_paths[i]);
        close(p->cgroup_task_fds[i]);
    }
    if (p->cgroup_sync) {
        send_msg(p->sync_fd, OCIRUN_MSG_CGROUP, 0, getpid(), NULL);
        wait_msg(p, OCIRUN_MSG_CGROUP_DONE);
    }
    enter_namespaces(p);
    trace_mark(p, "namespaces");

    if (setsid() < 0)
        die(p, errno, "setsid");
    set_limits(p);
    if (p->setup_rootfs) {
        prepare_rootfs(p); /* runs the create hooks before pivot_root */
    } else {
        write_sysctls(p);
        exec_terminal(p);
        run_create_hooks(p);
    }
    set_identity_names(p);
    trace_mark(p, "rootfs");
    exec_process(p);
}

int ocirun_spawn(const struct ocirun_plan *plan)
{
    /* A raw clone with no stack behaves like fork(), with the namespaces the plan asks for.
     * The child never returns into the interpreter. */
    long pid;

    if (plan->cgroup_into_fd >= 0) {
        struct clone_args args;

        memset(&args, 0, sizeof(args));
        args.flags = plan->clone_flags | CLONE_INTO_CGROUP;
        args.exit_signal = SIGCHLD;
        args.cgroup = (unsigned long long) plan->cgroup_into_fd;
        pid = syscall(SYS_clone3, &args, sizeof(args));
    } else {
        pid = syscall(SYS_clone, plan->clone_flags | SIGCHLD, NULL, NULL, NULL, NULL);
    }

    if (pid < 0)
        return -errno;
    if (pid == 0)
        child_main(plan);
    return (int) pid;
}

int ocirun_set_child_subreaper(void)
{
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0 ? -errno : 0;
}
