/* hooks.c: hooks run by the init inside the container's namespaces (createContainer before
 * pivot_root, startContainer just before the execve), with the state JSON on stdin. */
#include "shim.h"

#include <poll.h>
#include <sys/wait.h>

#define STATE_MAX 65536

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

/* The state JSON the parent wrote into plan->state_fd. */
static ssize_t read_state(const struct ocirun_plan *p, char *buf, size_t n)
{
    ssize_t len = pread(p->state_fd, buf, n, 0);

    if (len < 0)
        die(p, errno, "read the state for hooks");
    return len;
}

/* Wait for `pid` at most `timeout` seconds (0: forever); returns its wait status or -1. */
/* The signal's description as Go's os/exec words it ("bad system call"): glibc's untranslated
 * one (no gettext, no allocation in this child), first letter in lower case. */
static const char *signal_name(int sig)
{
    static char name[64];
    const char *d = sigdescr_np(sig);

    snprintf(name, sizeof(name), "%s", d ? d : "unknown signal");
    if (name[0] >= 'A' && name[0] <= 'Z')
        name[0] = (char) (name[0] - 'A' + 'a');
    return name;
}

static int wait_hook(pid_t pid, int timeout)
{
    int status, pidfd;

    if (timeout > 0) {
        pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
        if (pidfd >= 0) {
            struct pollfd pfd = { .fd = pidfd, .events = POLLIN };
            int rc;

            do
                rc = poll(&pfd, 1, timeout * 1000);
            while (rc < 0 && errno == EINTR);
            close(pidfd);
            if (rc == 0) {
                kill(pid, SIGKILL);
                waitpid(pid, &status, 0);
                return -1;
            }
        }
    }
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return 0;
    return status;
}

void run_hooks(const struct ocirun_plan *p, const struct ocirun_hook *hooks, int n,
               const char *kind)
{
    static char state[STATE_MAX];
    ssize_t len;
    int i;

    if (n == 0)
        return;
    len = read_state(p, state, sizeof(state));
    for (i = 0; i < n; i++) {
        const struct ocirun_hook *h = &hooks[i];
        int fds[2], status;
        pid_t pid;

        if (pipe2(fds, O_CLOEXEC) < 0)
            die(p, errno, "pipe for %s hook", kind);
        pid = fork();
        if (pid < 0)
            die(p, errno, "fork %s hook %s", kind, h->path);
        if (pid == 0) {
            if (dup2(fds[0], 0) < 0)
                _exit(127);
            execve(h->path, (char *const *) h->argv, (char *const *) h->envp);
            _exit(127);
        }
        close(fds[0]);
        /* The state is far below a pipe's buffer: this write never blocks. A hook that
         * exits without reading it just gets EPIPE, which is not an error. */
        if (write(fds[1], state, (size_t) len) < 0 && errno != EPIPE)
            die(p, errno, "write state to %s hook %s", kind, h->path);
        close(fds[1]);
        status = wait_hook(pid, h->timeout);
        if (status < 0)
            die(p, ETIMEDOUT, "error running %s hook #%d: %s: timed out after %d s", kind, i,
                h->path, h->timeout);
        if (WIFSIGNALED(status))
            die(p, 0, "error running %s hook #%d: %s: killed by signal %d (%s)", kind, i, h->path,
                WTERMSIG(status), signal_name(WTERMSIG(status)));
        if (WEXITSTATUS(status) != 0)
            die(p, 0, "error running %s hook #%d: %s: exit status %d", kind, i, h->path,
                WEXITSTATUS(status));
    }
}

/* Mounts are done and we are still on the host's root: the parent runs prestart and
 * createRuntime (runtime namespace), then we run createContainer (ours). */
void run_create_hooks(const struct ocirun_plan *p)
{
    if (p->hooks_sync) {
        send_msg(p->sync_fd, OCIRUN_MSG_HOOKS, 0, 0, NULL);
        wait_msg(p, OCIRUN_MSG_HOOKS_DONE);
    }
    run_hooks(p, p->create_hooks, p->n_create_hooks, "createContainer");
}
