/* exec.c: the last steps of the init: find the executable, wait for `start`, execve. */
#include "shim.h"

#include <linux/close_range.h>
#include <poll.h>

#ifndef SYS_faccessat2
#define SYS_faccessat2 439
#endif

static int in_group(gid_t gid)
{
    gid_t groups[256];
    int i, n;

    if (getegid() == gid)
        return 1;
    n = getgroups(256, groups);
    for (i = 0; i < n; i++)
        if (groups[i] == gid)
            return 1;
    return 0;
}

/* X_OK for the effective ids from the mode bits, as the kernel decides it (and as Go's
 * Faccessat does when faccessat2 is refused). */
static int mode_allows_exec(const struct stat *st)
{
    uid_t euid = geteuid();

    if (euid == 0)
        return (st->st_mode & 0111) != 0;
    if (st->st_uid == euid)
        return (st->st_mode & 0100) != 0;
    if (in_group(st->st_gid))
        return (st->st_mode & 0010) != 0;
    return (st->st_mode & 0001) != 0;
}

static int is_executable(const struct ocirun_plan *p, const char *path, int *err)
{
    struct stat st;

    if (stat(path, &st) < 0) {
        *err = errno;
        return 0;
    }
    if (S_ISDIR(st.st_mode)) {
        *err = EACCES;
        return 0;
    }
    if (p->exec_check == OCIRUN_CHECK_FACCESSAT2) {
        if (syscall(SYS_faccessat2, AT_FDCWD, path, X_OK, AT_EACCESS) == 0)
            return 1;
        *err = errno;
        return 0;
    }
    if (!mode_allows_exec(&st)) {
        *err = EACCES;
        return 0;
    }
    return 1;
}

/* One /etc/passwd line (name:password:uid:gid:gecos:home:shell): if it is `uid`'s, copy
 * its home to `home` and return 1. */
static int passwd_home_line(char *line, uid_t uid, char *home, size_t n)
{
    char *field[6], *s = line, *end;
    unsigned long id;
    int i;

    field[0] = s;
    for (i = 1; i < 6; i++) {
        s = strchr(s, ':');
        if (!s)
            return 0;
        *s++ = '\0';
        field[i] = s;
    }
    s = strchr(field[5], ':');
    if (s)
        *s = '\0';
    id = strtoul(field[2], &end, 10);
    if (end == field[2] || *end || id != uid)
        return 0;
    snprintf(home, n, "%s", *field[5] ? field[5] : "/");
    return 1;
}

/* The home directory of `uid` in the container's /etc/passwd, or "/" (runc's rule). Read
 * with a stack buffer; a line longer than it is skipped. */
static void passwd_home(uid_t uid, char *home, size_t n)
{
    char buf[4096], *start, *nl;
    size_t len = 0;
    ssize_t r;
    int fd, skipping = 0;

    snprintf(home, n, "/");
    fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return;
    while ((r = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0) {
        len += (size_t) r;
        start = buf;
        while ((nl = memchr(start, '\n', (size_t) (buf + len - start)))) {
            *nl = '\0';
            if (!skipping && passwd_home_line(start, uid, home, n))
                goto out;
            skipping = 0;
            start = nl + 1;
        }
        len -= (size_t) (start - buf);
        memmove(buf, start, len);
        if (len == sizeof(buf) - 1) {
            skipping = 1;
            len = 0;
        }
    }
    if (len && !skipping) {
        buf[len] = '\0';
        passwd_home_line(buf, uid, home, n);
    }
out:
    close(fd);
}

/* Resolve argv[0] as the container sees it; failures are worded as runc words them, which
 * podman maps to exit codes (127: not found, 126: permission denied). */
static const char *find_executable(const struct ocirun_plan *p, char *buf, size_t n)
{
    const char *name = p->argv[0], *dirs, *end;
    int err = 0, denied = 0;

    if (strchr(name, '/')) {
        if (!is_executable(p, name, &err)) {
            if (err == ENOENT || err == ENOTDIR)
                die_exec(p, err, "exec: \"%s\": stat %s", name, name);
            die_exec(p, err, "exec: \"%s\"", name);
        }
        return name;
    }
    dirs = p->path_env; /* the plan always has one (process.env's or the default) */
    for (; *dirs; dirs = *end ? end + 1 : end) {
        size_t len;

        end = strchr(dirs, ':');
        if (!end)
            end = dirs + strlen(dirs);
        len = (size_t) (end - dirs);
        if (len == 0)
            snprintf(buf, n, "./%s", name);
        else
            snprintf(buf, n, "%.*s/%s", (int) len, dirs, name);
        if (is_executable(p, buf, &err))
            return buf;
        if (err == EACCES)
            denied = 1;
    }
    if (denied)
        die_exec(p, EACCES, "exec: \"%s\"", name);
    die_exec(p, 0, "exec: \"%s\": executable file not found in $PATH", name);
}

/* chdir to process.cwd and check we are still inside the container's root: a cwd reached
 * through a leaked fd (/proc/self/fd/N) would be outside it, and getcwd() then fails or
 * answers "(unreachable)..." (CVE-2024-21626). */
static int enter_cwd(const struct ocirun_plan *p, int final)
{
    char buf[4096];

    if (chdir(p->cwd) < 0) {
        if (!final && (errno == EACCES || errno == EPERM))
            return 0; /* try again as the process's user */
        die(p, errno, "chdir %s", p->cwd);
    }
    if (!getcwd(buf, sizeof(buf)))
        die(p, errno, "getcwd after chdir %s (cwd outside the container?)", p->cwd);
    if (buf[0] != '/')
        die(p, EPERM, "chdir %s: cwd is outside the container's root", p->cwd);
    return 1;
}

static void die_on_signal(int sig)
{
    _exit(128 + sig);
}

/* Block until `start` writes to exec.fifo. poll() on a fifo nobody has opened for writing
 * yet waits (no POLLHUP before the first writer). The signals in plan->wait_signals end
 * us while we wait (execve resets the handlers). */
static void wait_for_start(const struct ocirun_plan *p)
{
    struct pollfd pfd = { .fd = p->fifo_fd, .events = POLLIN };
    struct sigaction sa;
    int sig;
    char c;

    if (p->fifo_fd < 0)
        return;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = die_on_signal;
    for (sig = 1; sig < 64; sig++)
        if ((p->wait_signals >> sig) & 1)
            sigaction(sig, &sa, NULL);
    while (poll(&pfd, 1, -1) < 0)
        if (errno != EINTR)
            die(p, errno, "poll exec.fifo");
    if (read(p->fifo_fd, &c, 1) != 1)
        _exit(1); /* a writer came and went without starting us */
}

static void reset_signals(void)
{
    sigset_t all;
    int sig;

    /* Python ignores SIGPIPE (and may ignore others); ignored signals survive execve. */
    for (sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL);
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
}

/* Everything from fd 3 on is closed at execve, except the preserved ones. CLOEXEC rather
 * than close, so the sync socket still reports an execve failure. */
static void close_fds(const struct ocirun_plan *p)
{
    int fd;

    if (syscall(SYS_close_range, 3 + p->preserve_fds, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
        die(p, errno, "close_range");
    for (fd = 3; fd < 3 + p->preserve_fds; fd++) {
        if (fd == p->sync_fd || fd == p->fifo_fd)
            continue;
        int flags = fcntl(fd, F_GETFD);

        if (flags >= 0)
            fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
    }
}

/* Through the sealed trampoline, { path, argv... }, by the route the plan chose: there is
 * no direct execve (CVE-2019-5736). A failure is the process's failure to start. */
static void exec_trampoline(const struct ocirun_plan *p, const char *path, const char **envp)
{
    const char *targv[p->argc + 2];
    char fdpath[64];
    int i;

    targv[0] = path;
    for (i = 0; i <= p->argc; i++)
        targv[i + 1] = p->argv[i];
    if (p->exec_route == OCIRUN_EXEC_EXECVEAT) {
        syscall(SYS_execveat, p->exec_fd, "", targv, envp, AT_EMPTY_PATH);
    } else {
        snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", p->exec_fd);
        execve(fdpath, (char *const *) targv, (char *const *) envp);
    }
    die_exec(p, errno, "exec: \"%s\"", p->argv[0]);
}

void exec_process(const struct ocirun_plan *p)
{
    char buf[4096], home[4096 + 5];
    const char *path;
    int in_cwd, n_env = 0;

    if (p->exec_fd < 0 || !p->path_env || p->umask < 0 ||
        (p->exec_route != OCIRUN_EXEC_EXECVEAT && p->exec_route != OCIRUN_EXEC_PROC_FD) ||
        (p->exec_check != OCIRUN_CHECK_FACCESSAT2 && p->exec_check != OCIRUN_CHECK_MODE_BITS))
        die(p, EINVAL, "incomplete plan (trampoline fd, exec route or check, PATH or umask)");
    while (p->envp[n_env])
        n_env++;
    const char *envp[n_env + 2];

    memcpy(envp, p->envp, sizeof(char *) * ((size_t) n_env + 1));
    if (p->home_from_passwd) {
        /* As root, before any filter: the container's own file, after its mounts. */
        memcpy(home, "HOME=", 5);
        passwd_home(p->uid, home + 5, sizeof(home) - 5);
        envp[n_env] = home;
        envp[n_env + 1] = NULL;
    }

    /* We are in the container's cgroup by now (execCPUAffinity.final), and any seccomp filter
     * comes later: it may refuse personality(2) (runc 1.4's order). */
    set_cpu_affinity(p, p->cpu_final, p->cpu_final_len);
    set_personality(p);
    in_cwd = enter_cwd(p, 0);
    /* Mark the fds before any filter: close_range may be missing from a profile. */
    close_fds(p);
    load_seccomp(p, OCIRUN_SECCOMP_EARLY);
    set_credentials(p);
    if (!in_cwd)
        enter_cwd(p, 1);
    path = find_executable(p, buf, sizeof(buf));
    attach_terminal(p);
    load_seccomp(p, OCIRUN_SECCOMP_READY);
    trace_mark(p, "credentials");

    send_msg(p->sync_fd, OCIRUN_MSG_READY, 0, 0, trace_text());
    wait_for_start(p);

    reset_signals();
    load_seccomp(p, OCIRUN_SECCOMP_LAST);
    /* As runc: startContainer hooks run in the container as its process will, under its
     * seccomp filter (and with default signal dispositions). */
    run_hooks(p, p->start_hooks, p->n_start_hooks, "startContainer");
    exec_trampoline(p, path, envp);
}
