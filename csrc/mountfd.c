/* mountfd.c: parent side: detached copies of bind sources (open_tree), made by the runtime
 * before the clone, so that a container in a user namespace gets sources its own uids could
 * not reach (runc does the same); and idmapped mounts: a user namespace carrying a mapping,
 * given to such a copy with mount_setattr(MOUNT_ATTR_IDMAP). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/mount.h>

#include "ocirun.h"

#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#define OPEN_TREE_CLONE_FLAG 1
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

int ocirun_open_tree(const char *path, int recursive)
{
    long fd = syscall(SYS_open_tree, AT_FDCWD, path,
                      OPEN_TREE_CLONE_FLAG | O_CLOEXEC | (recursive ? AT_RECURSIVE : 0));

    return fd < 0 ? -errno : (int) fd;
}

static int write_map(pid_t pid, const char *name, const char *text)
{
    char path[64];
    size_t len = strlen(text);
    int fd, rc = 0;

    snprintf(path, sizeof(path), "/proc/%d/%s", (int) pid, name);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (write(fd, text, len) != (ssize_t) len)
        rc = -errno;
    close(fd);
    return rc;
}

int ocirun_userns_fd(const char *uid_map, const char *gid_map)
{
    char path[64];
    pid_t pid;
    int fd, rc;

    /* A child born in a new user namespace that only waits to be killed: its namespace,
     * once mapped, outlives it through the fd. */
    pid = (pid_t) syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        for (;;)
            pause();
    }
    rc = write_map(pid, "uid_map", uid_map);
    if (rc == 0)
        rc = write_map(pid, "gid_map", gid_map);
    if (rc == 0) {
        snprintf(path, sizeof(path), "/proc/%d/ns/user", (int) pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        rc = fd < 0 ? -errno : fd;
    }
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    return rc;
}

int ocirun_mount_setattr(int fd, int recursive, unsigned long long set, unsigned long long clr,
                         int userns_fd)
{
    struct mount_attr attr;

    memset(&attr, 0, sizeof(attr));
    attr.attr_set = set;
    attr.attr_clr = clr;
    attr.userns_fd = userns_fd >= 0 ? (unsigned long long) userns_fd : 0;
    if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr,
                sizeof(attr)) < 0)
        return -errno;
    return 0;
}
