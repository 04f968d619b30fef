/* sync.c: the child's side of the sync protocol (struct ocirun_msg over a SOCK_SEQPACKET). */
#include "shim.h"

#include <time.h>

static char trace_buf[OCIRUN_MSG_TEXT];
static size_t trace_len;
static long long trace_t0;

static long long now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void trace_mark(const struct ocirun_plan *p, const char *phase)
{
    int n;

    if (!p->trace)
        return;
    if (!trace_t0) {
        trace_t0 = now_us();
        return;
    }
    n = snprintf(trace_buf + trace_len, sizeof(trace_buf) - trace_len, "%s=%lld ", phase,
                 now_us() - trace_t0);
    if (n > 0 && (size_t) n < sizeof(trace_buf) - trace_len)
        trace_len += (size_t) n;
}

const char *trace_text(void)
{
    return trace_buf;
}

void send_msg(int fd, int type, int err, long long value, const char *text)
{
    struct ocirun_msg m;

    memset(&m, 0, sizeof(m));
    m.type = type;
    m.err = err;
    m.value = value;
    if (text)
        strncpy(m.text, text, sizeof(m.text) - 1);
    while (send(fd, &m, sizeof(m), MSG_NOSIGNAL) < 0 && errno == EINTR)
        ;
}

/* A message carrying one fd (SCM_RIGHTS). */
void send_msg_fd(const struct ocirun_plan *p, int type, int fd)
{
    struct ocirun_msg m;
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)
    };
    struct cmsghdr *cm;

    memset(&m, 0, sizeof(m));
    memset(cbuf, 0, sizeof(cbuf));
    m.type = type;
    cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    while (sendmsg(p->sync_fd, &msg, MSG_NOSIGNAL) < 0)
        if (errno != EINTR)
            die(p, errno, "send fd %d to the runtime", fd);
}

/* Block until the parent sends `type`. Anything else (or the parent gone) ends the child. */
void wait_msg(const struct ocirun_plan *p, int type)
{
    struct ocirun_msg m;
    ssize_t n;

    do
        n = recv(p->sync_fd, &m, sizeof(m), 0);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t) sizeof(m) || m.type != type)
        _exit(1); /* the parent is gone or gave up: nothing to report to */
}

static NORETURN void vdie(const struct ocirun_plan *p, int type, int err, const char *fmt,
                          va_list ap)
{
    char text[OCIRUN_MSG_TEXT];

    vsnprintf(text, sizeof(text), fmt, ap);
    send_msg(p->sync_fd, type, err, 0, text);
    if (p->result_fd >= 0) {
        /* `start` may be waiting: "<errno> <text>", one write (well below PIPE_BUF). */
        char line[OCIRUN_MSG_TEXT + 16];
        int n = snprintf(line, sizeof(line), "%d %s", err, text);

        if (write(p->result_fd, line, (size_t) n) < 0)
            _exit(1);
    }
    _exit(1);
}

void die(const struct ocirun_plan *p, int err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vdie(p, OCIRUN_MSG_ERROR, err, fmt, ap);
}

void die_exec(const struct ocirun_plan *p, int err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vdie(p, OCIRUN_MSG_EXEC_ERROR, err, fmt, ap);
}

void write_file(const struct ocirun_plan *p, const char *path, const char *text)
{
    size_t len = strlen(text);
    int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);

    if (fd < 0)
        die(p, errno, "open %s", path);
    if (write(fd, text, len) != (ssize_t) len)
        die(p, errno, "write %s", path);
    close(fd);
}
