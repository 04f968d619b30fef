/* terminal.c: process.terminal — a pty from the container's own devpts instance. The master
 * goes to the console socket (one sendmsg: the pty's name as data, the fd as SCM_RIGHTS, no
 * reply awaited); the slave becomes the process's stdio and controlling terminal, and is
 * bound over /dev/console by fd (CVE-2025-52565: never by a path the container controls). */
#include "shim.h"

#include <sys/ioctl.h>
#include <termios.h>

static int slave_fd = -1;

static void send_master(const struct ocirun_plan *p, int master, const char *name)
{
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = { .iov_base = (void *) name, .iov_len = strlen(name) };
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)
    };
    struct cmsghdr *cm;

    memset(cbuf, 0, sizeof(cbuf));
    cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &master, sizeof(int));
    while (sendmsg(p->console_fd, &msg, MSG_NOSIGNAL) < 0)
        if (errno != EINTR)
            die(p, errno, "sendmsg to the console socket");
}

/* `ptmx`: an fd of the container's /dev/pts/ptmx; `console`: an O_PATH fd of its
 * /dev/console to bind the pty over (create, before pivot_root), or -1 (exec). */
void setup_terminal(const struct ocirun_plan *p, int ptmx, int console)
{
    char name[64], src[32], dst[32];
    int unlock = 0, n = 0;

    if (ioctl(ptmx, TIOCSPTLCK, &unlock) < 0)
        die(p, errno, "unlock the pty");
    if (ioctl(ptmx, TIOCGPTN, &n) < 0)
        die(p, errno, "get the pty number");
    snprintf(name, sizeof(name), "/dev/pts/%d", n);
    /* The peer by fd: no lookup of /dev/pts/N that the container could redirect. */
    slave_fd = ioctl(ptmx, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave_fd < 0)
        die(p, errno, "open the pty peer %s", name);
    /* The process's user owns its terminal, as runc does. */
    if (fchown(slave_fd, p->uid, (gid_t) -1) < 0)
        die(p, errno, "chown %s", name);
    if (p->console_rows || p->console_cols) {
        struct winsize ws = { .ws_row = p->console_rows, .ws_col = p->console_cols };

        if (ioctl(slave_fd, TIOCSWINSZ, &ws) < 0)
            die(p, errno, "set the console size");
    }
    if (console >= 0) {
        snprintf(src, sizeof(src), "/proc/self/fd/%d", slave_fd);
        snprintf(dst, sizeof(dst), "/proc/self/fd/%d", console);
        if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
            die(p, errno, "bind %s to /dev/console", name);
    }
    send_master(p, ptmx, name);
    close(ptmx);
    close(p->console_fd);
}

/* Last: the pty becomes stdin/stdout/stderr and the controlling terminal of our session. */
void attach_terminal(const struct ocirun_plan *p)
{
    int fd;

    if (slave_fd < 0)
        return;
    for (fd = 0; fd < 3; fd++)
        if (dup2(slave_fd, fd) < 0)
            die(p, errno, "dup2 the pty to fd %d", fd);
    if (ioctl(0, TIOCSCTTY, 0) < 0)
        die(p, errno, "make the pty the controlling terminal");
    close(slave_fd);
    slave_fd = -1;
}
