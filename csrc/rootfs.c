/*
 * rootfs.c: build the container's filesystem view and pivot into it.
 *
 * Every path inside the container is resolved beneath the rootfs with openat2(RESOLVE_IN_ROOT),
 * so a symlink in the image (say /mnt -> /) resolves inside the rootfs, never to the host; the
 * mount then goes onto the opened fd (/proc/self/fd/N), not onto a path that could be swapped
 * between the check and the use (CVE-2021-30465 class).
 */
#include "shim.h"

#include <libgen.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>

#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#define MOVE_MOUNT_T_EMPTY_PATH 0x00000040
#endif

#define FDPATH_LEN 32

static int rootfd = -1;

static int openat2_in_root(int dirfd, const char *path, int flags)
{
    struct open_how how;

    memset(&how, 0, sizeof(how));
    how.flags = (unsigned long long) (flags | O_CLOEXEC);
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    return (int) syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

static void fd_path(char *buf, int fd)
{
    snprintf(buf, FDPATH_LEN, "/proc/self/fd/%d", fd);
}

/* `path` with its prefix `buf` (a dangling symlink, in directory `parent`) replaced by the
 * link's target, as the kernel would follow it: an absolute target from the container's
 * root, a relative one from the link's directory. Returns 0, or -1 if `buf` is no symlink. */
static int follow_dangling(const struct ocirun_plan *p, int parent, const char *dir,
                           const char *name, const char *rest, char *out, size_t n)
{
    char target[4096];
    struct statfs sfs;
    ssize_t len;

    /* Never in a procfs: its fd and ns links are magic (openat2 refuses to follow them), and
     * what they read back names the runtime's own fds, e.g. the rootfs on the host. */
    if (fstatfs(parent, &sfs) < 0 || sfs.f_type == PROC_SUPER_MAGIC)
        return -1;
    len = readlinkat(parent, name, target, sizeof(target) - 1);
    if (len < 0)
        return -1;
    target[len] = '\0';
    if ((size_t) snprintf(out, n, "%s%s%s%s", target[0] == '/' ? "" : dir,
                          target[0] == '/' ? "" : "/", target, rest) >= n)
        die(p, ENAMETOOLONG, "follow %s/%s in the container", dir, name);
    return 0;
}

/* Open `path` (absolute, as the container sees it) as an O_PATH fd, creating what is missing:
 * directories on the way, and the last component as a directory or an empty file. A
 * dangling symlink on the way is followed (inside the root) and its target created, as
 * runc does for a mount destination such as /etc/resolv.conf -> ../run/missing. */
static int open_in_root_at(const struct ocirun_plan *p, const char *path, int kind, int create,
                           int depth)
{
    char buf[4096], next[4096];
    size_t i, len = strlen(path);
    int fd = openat2_in_root(rootfd, path, O_PATH);

    if (fd >= 0 || errno != ENOENT || !create)
        return fd;
    if (len >= sizeof(buf))
        die(p, ENAMETOOLONG, "open %s", path);
    if (depth > 40)
        die(p, ELOOP, "open %s in the container", path);

    /* Walk the prefixes; each missing one is made inside its (resolved) parent. */
    memcpy(buf, path, len + 1);
    for (i = 1; i <= len; i++) {
        int last = (i == len), parent, rc;
        char saved, *base;

        if (!last && buf[i] != '/')
            continue;
        saved = buf[i];
        buf[i] = '\0';
        fd = openat2_in_root(rootfd, buf, O_PATH);
        if (fd >= 0) {
            if (!last)
                close(fd);
            buf[i] = saved;
            continue;
        }
        if (errno != ENOENT)
            die(p, errno, "open %s in the container", buf);
        base = strrchr(buf, '/');
        *base = '\0';
        parent = openat2_in_root(rootfd, base == buf ? "/" : buf, O_PATH | O_DIRECTORY);
        if (parent < 0)
            die(p, errno, "open %s in the container", base == buf ? "/" : buf);
        if (follow_dangling(p, parent, buf, base + 1, path + i, next, sizeof(next)) == 0) {
            close(parent);
            return open_in_root_at(p, next, kind, create, depth + 1);
        }
        if (last && kind == OCIRUN_MNT_FILE) {
            /* O_PATH can't create: open the parent for real, then mknod an empty file. */
            rc = mknodat(parent, base + 1, S_IFREG | 0644, 0);
        } else {
            rc = mkdirat(parent, base + 1, 0755);
        }
        if (rc < 0 && errno != EEXIST)
            die(p, errno, "mkdir %s in the container", path);
        close(parent);
        *base = '/';
        buf[i] = saved;
        if (last)
            return openat2_in_root(rootfd, path, O_PATH);
    }
    return openat2_in_root(rootfd, path, O_PATH);
}

static int open_in_root(const struct ocirun_plan *p, const char *path, int kind, int create)
{
    return open_in_root_at(p, path, kind, create, 0);
}

static int must_open_in_root(const struct ocirun_plan *p, const char *path, int kind)
{
    int fd = open_in_root(p, path, kind, 1);

    if (fd < 0)
        die(p, errno, "open %s in the container", path);
    return fd;
}

/* The container's /dev/pts/ptmx, opened for real (its devpts instance gives the pty). */
static int open_ptmx(const struct ocirun_plan *p)
{
    char fdp[FDPATH_LEN];
    int path = must_open_in_root(p, "/dev/pts/ptmx", OCIRUN_MNT_FILE), fd;

    fd_path(fdp, path);
    fd = open(fdp, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        die(p, errno, "open /dev/pts/ptmx in the container");
    close(path);
    return fd;
}

/* exec into a running container: we are in its mount namespace, at its root. */
void exec_terminal(const struct ocirun_plan *p)
{
    if (p->console_fd < 0)
        return;
    rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        die(p, errno, "open /");
    setup_terminal(p, open_ptmx(p), -1);
    close(rootfd);
    rootfd = -1;
}

/* The flags a bind remount must keep: a remount may not clear locked ones in a user ns. */
static unsigned long kept_flags(const char *path)
{
    struct statvfs st;
    unsigned long f = 0;

    if (statvfs(path, &st) < 0)
        return 0;
    if (st.f_flag & ST_NOSUID)
        f |= MS_NOSUID;
    if (st.f_flag & ST_NODEV)
        f |= MS_NODEV;
    if (st.f_flag & ST_NOEXEC)
        f |= MS_NOEXEC;
    return f;
}

static void remount_bind(const struct ocirun_plan *p, const char *target, unsigned long flags)
{
    char fdp[FDPATH_LEN];
    int fd = must_open_in_root(p, target, OCIRUN_MNT_DIR);

    fd_path(fdp, fd);
    flags |= MS_BIND | MS_REMOUNT | kept_flags(fdp);
    if (mount(NULL, fdp, NULL, flags, NULL) < 0)
        die(p, errno, "remount %s", target);
    close(fd);
}

static int reopen_dir(const struct ocirun_plan *p, int fd, const char *what)
{
    char fdp[FDPATH_LEN];
    int dfd;

    fd_path(fdp, fd);
    dfd = open(fdp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        die(p, errno, "open %s", what);
    return dfd;
}

/* A tmpfs without mode= on a target that exists gets that target's mode (runc: a tmpfs over
 * /tmp keeps its 1777); one made for it keeps tmpfs's default. Returns the fd of the target,
 * and in `data` the options to mount with. */
static int open_tmpfs_target(const struct ocirun_plan *p, const struct ocirun_mount *m, char *data,
                             size_t n)
{
    struct stat st;
    int fd = open_in_root(p, m->target, m->kind, 0);

    if (fd < 0) {
        if (errno != ENOENT)
            die(p, errno, "open %s in the container", m->target);
        return must_open_in_root(p, m->target, m->kind);
    }
    if (fstat(fd, &st) < 0)
        die(p, errno, "stat %s", m->target);
    if ((size_t) snprintf(data, n, "mode=%04o%s%s", (unsigned) (st.st_mode & 07777),
                          m->data ? "," : "", m->data ? m->data : "") >= n)
        die(p, E2BIG, "mount options of %s", m->target);
    return fd;
}

/* An existing target of a procfs/sysfs mount must be a directory: never followed through a
 * symlink to somewhere else in the rootfs (runc, CVE-2023-28642). */
static void check_ordinary_dir(const struct ocirun_plan *p, const struct ocirun_mount *m)
{
    char dir[4096];
    const char *base = strrchr(m->target, '/');
    struct stat st;
    int parent;

    if (!base || (size_t) (base - m->target) >= sizeof(dir))
        return;
    memcpy(dir, m->target, (size_t) (base - m->target));
    dir[base - m->target] = '\0';
    parent = openat2_in_root(rootfd, dir[0] ? dir : "/", O_PATH | O_DIRECTORY);
    if (parent < 0)
        return; /* missing: made as a directory */
    if (fstatat(parent, base + 1, &st, AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) == 0 &&
        !S_ISDIR(st.st_mode))
        die(p, 0, "filesystem \"%s\" must be mounted on ordinary directory: %s is not one",
            m->fstype, m->target);
    close(parent);
}

static void do_mount(const struct ocirun_plan *p, const struct ocirun_mount *m)
{
    char fdp[FDPATH_LEN], data[4096];
    const char *opts = m->data;
    int fd;

    if (!m->source && !m->fstype) {
        remount_bind(p, m->target, m->remount);
        return;
    }
    data[0] = '\0';
    if (m->dir_only)
        check_ordinary_dir(p, m);
    if (m->inherit_mode) {
        fd = open_tmpfs_target(p, m, data, sizeof(data));
        if (data[0])
            opts = data;
    } else {
        fd = must_open_in_root(p, m->target, m->kind);
    }

    fd_path(fdp, fd);
    if (m->source_fd >= 0) {
        if (syscall(SYS_move_mount, m->source_fd, "", fd, "",
                    MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
            die(p, errno, "move_mount %s to %s", m->source, m->target);
        close(m->source_fd);
        if (m->moved_propagation) {
            int moved = must_open_in_root(p, m->target, m->kind);
            char mp[FDPATH_LEN];

            fd_path(mp, moved);
            if (mount(NULL, mp, NULL, m->moved_propagation, NULL) < 0)
                die(p, errno, "set propagation of %s", m->target);
            close(moved);
        }
    } else if (mount(m->source, fdp, m->fstype, m->flags, opts) < 0) {
        die(p, errno, "mount %s to %s", m->source ? m->source : "none", m->target);
    }
    if (!strcmp(m->target, "/")) {
        /* A mount over the root itself: the later paths resolve in it, as with runc. */
        close(rootfd);
        rootfd = open(p->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0)
            die(p, errno, "open %s", p->rootfs);
    }
    if (m->copyup) {
        /* The fd still names the directory under the new mount: copy it up. */
        struct stat st;
        int lower = reopen_dir(p, fd, m->target);
        int upper_path = must_open_in_root(p, m->target, OCIRUN_MNT_DIR);
        int upper = reopen_dir(p, upper_path, m->target);

        if (fstat(lower, &st) < 0)
            die(p, errno, "stat %s", m->target);
        copy_tree(p, lower, upper, m->target);
        if (fchown(upper, st.st_uid, st.st_gid) < 0 || fchmod(upper, st.st_mode & 07777) < 0)
            die(p, errno, "tmpcopyup %s", m->target);
        close(lower);
        close(upper);
        close(upper_path);
    }
    close(fd);
    /* Re-resolve: the fd still names what lies under the new mount. */
    if (m->remount)
        remount_bind(p, m->target, m->remount);
    if (m->attr_set || m->attr_clr) {
        struct mount_attr attr = { .attr_set = m->attr_set, .attr_clr = m->attr_clr };

        fd = must_open_in_root(p, m->target, m->kind);
        if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) <
            0)
            die(p, errno, "mount_setattr %s (recursive attributes)", m->target);
        close(fd);
    }
    if (m->propagation) {
        fd = must_open_in_root(p, m->target, m->kind);
        fd_path(fdp, fd);
        if (mount(NULL, fdp, NULL, m->propagation, NULL) < 0)
            die(p, errno, "set propagation of %s", m->target);
        close(fd);
    }
}

/* The parent directory of `path`, opened inside the root; *base points into `buf`. */
static int open_parent(const struct ocirun_plan *p, const char *path, char *buf, size_t n,
                       const char **base)
{
    char *slash;
    int fd;

    snprintf(buf, n, "%s", path);
    slash = strrchr(buf, '/');
    if (!slash || slash[1] == '\0')
        die(p, EINVAL, "bad path %s", path);
    *slash = '\0';
    *base = slash + 1;
    fd = must_open_in_root(p, buf[0] ? buf : "/", OCIRUN_MNT_DIR);
    /* O_PATH fds can't be used for mknodat/symlinkat: reopen the directory itself. */
    {
        char fdp[FDPATH_LEN];
        int dfd;

        fd_path(fdp, fd);
        dfd = open(fdp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
            die(p, errno, "open %s in the container", buf[0] ? buf : "/");
        close(fd);
        return dfd;
    }
}

static void make_device(const struct ocirun_plan *p, const struct ocirun_device *d)
{
    char buf[4096], fdp[FDPATH_LEN];
    const char *base;
    struct stat st;
    int dfd, fd;

    if (d->host_path) {
        /* In a user namespace mknod is refused: bind the host's node instead. */
        fd = must_open_in_root(p, d->path, OCIRUN_MNT_FILE);
        fd_path(fdp, fd);
        if (mount(d->host_path, fdp, NULL, MS_BIND, NULL) < 0)
            die(p, errno, "bind device %s", d->path);
        close(fd);
        return;
    }
    dfd = open_parent(p, d->path, buf, sizeof(buf), &base);
    if (mknodat(dfd, base, d->mode, (dev_t) d->dev) < 0) {
        if (errno != EEXIST)
            die(p, errno, "mknod %s", d->path);
        /* Whatever the image has there (a file, a symlink to a host path...) is replaced:
         * we never chmod/chown through a name the image controls. */
        if (unlinkat(dfd, base, 0) < 0)
            die(p, errno, "remove %s to make the device", d->path);
        if (mknodat(dfd, base, d->mode, (dev_t) d->dev) < 0)
            die(p, errno, "mknod %s", d->path);
    }
    /* mknod honours the umask: set mode and owner exactly, on the node we just made,
     * checked by fd. */
    fd = openat(dfd, base, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        die(p, errno, "open %s", d->path);
    if (fstat(fd, &st) < 0)
        die(p, errno, "stat %s", d->path);
    if ((st.st_mode & S_IFMT) != (d->mode & S_IFMT) || st.st_rdev != (dev_t) d->dev)
        die(p, 0, "mknod %s: the node was replaced", d->path);
    fd_path(fdp, fd);
    if (fchmodat(AT_FDCWD, fdp, d->mode & 07777, 0) < 0)
        die(p, errno, "chmod %s", d->path);
    if (fchownat(fd, "", d->uid, d->gid, AT_EMPTY_PATH) < 0)
        die(p, errno, "chown %s", d->path);
    close(fd);
    close(dfd);
}

static void make_symlink(const struct ocirun_plan *p, const struct ocirun_symlink *s)
{
    char buf[4096];
    const char *base;
    int dfd = open_parent(p, s->linkpath, buf, sizeof(buf), &base);

    if (symlinkat(s->target, dfd, base) < 0 && errno != EEXIST)
        die(p, errno, "symlink %s", s->linkpath);
    close(dfd);
}

/* maskedPaths: files get the container's /dev/null bound over them, once we have checked by
 * fd that it really is the null device (CVE-2025-31133); directories get a read-only tmpfs. */
static void mask_paths(const struct ocirun_plan *p)
{
    char nullp[FDPATH_LEN], fdp[FDPATH_LEN];
    struct stat st;
    int i, nullfd = -1;

    for (i = 0; i < p->n_masked; i++) {
        const char *path = p->masked_paths[i];
        int fd = open_in_root(p, path, OCIRUN_MNT_DIR, 0);

        if (fd < 0) {
            if (errno == ENOENT)
                continue;
            die(p, errno, "open %s in the container", path);
        }
        if (fstat(fd, &st) < 0)
            die(p, errno, "stat %s", path);
        fd_path(fdp, fd);
        if (S_ISDIR(st.st_mode)) {
            if (mount("tmpfs", fdp, "tmpfs", MS_RDONLY, NULL) < 0)
                die(p, errno, "mask %s", path);
        } else {
            if (nullfd < 0) {
                struct stat ns;

                nullfd = open_in_root(p, "/dev/null", OCIRUN_MNT_FILE, 0);
                if (nullfd < 0)
                    die(p, errno, "open /dev/null in the container");
                if (fstat(nullfd, &ns) < 0)
                    die(p, errno, "stat /dev/null");
                if (!S_ISCHR(ns.st_mode) || major(ns.st_rdev) != 1 || minor(ns.st_rdev) != 3)
                    die(p, 0, "mask %s: /dev/null in the container is not the null device", path);
                fd_path(nullp, nullfd);
            }
            if (mount(nullp, fdp, NULL, MS_BIND, NULL) < 0)
                die(p, errno, "mask %s", path);
        }
        close(fd);
    }
    if (nullfd >= 0)
        close(nullfd);
}

static void readonly_paths(const struct ocirun_plan *p)
{
    char fdp[FDPATH_LEN];
    int i;

    for (i = 0; i < p->n_readonly; i++) {
        const char *path = p->readonly_paths[i];
        int fd = open_in_root(p, path, OCIRUN_MNT_DIR, 0);

        if (fd < 0) {
            if (errno == ENOENT)
                continue;
            die(p, errno, "open %s in the container", path);
        }
        fd_path(fdp, fd);
        if (mount(fdp, fdp, NULL, MS_BIND | MS_REC, NULL) < 0)
            die(p, errno, "bind %s read-only", path);
        close(fd);
        remount_bind(p, path, MS_RDONLY | MS_REC);
    }
}

void write_sysctls(const struct ocirun_plan *p)
{
    int i;

    /* Before pivot: the host's /proc, and /proc/sys/{net,kernel} entries act on the
     * namespaces of the writer, i.e. the container's. Each file is checked by fd to be on
     * a real procfs before we write (nothing mounted over it redirects the write). */
    for (i = 0; i < p->n_sysctls; i++) {
        const char *path = p->sysctls[i].path, *value = p->sysctls[i].value;
        size_t len = strlen(value);
        struct statfs sfs;
        int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);

        if (fd < 0)
            die(p, errno, "open %s", path);
        if (fstatfs(fd, &sfs) < 0)
            die(p, errno, "statfs %s", path);
        if (sfs.f_type != PROC_SUPER_MAGIC)
            die(p, 0, "write %s: not on a procfs", path);
        if (write(fd, value, len) != (ssize_t) len)
            die(p, errno, "write %s", path);
        close(fd);
    }
}

/* --no-pivot keeps the runtime's mounts in our namespace (only chroot hides them): a whole
 * procfs or sysfs among them would let the container mount a bare one. Detach each (its
 * unmount kept from the host's), or cover it where that is not allowed. */
static void hide_before_move(const struct ocirun_plan *p)
{
    int i;

    for (i = 0; i < p->n_hide_before_move; i++) {
        const char *m = p->hide_before_move[i];

        if (mount(NULL, m, NULL, MS_SLAVE | MS_REC, NULL) < 0) {
            if (errno == ENOENT) /* under one detached already */
                continue;
            die(p, errno, "make %s slave", m);
        }
        if (umount2(m, MNT_DETACH) == 0)
            continue;
        if (errno != EINVAL && errno != EPERM)
            die(p, errno, "unmount %s", m);
        if (mount("tmpfs", m, "tmpfs", 0, NULL) < 0)
            die(p, errno, "cover %s", m);
    }
}

static void pivot(const struct ocirun_plan *p)
{
    int oldroot, newroot;

    if (p->chroot_only) {
        if (chdir(p->rootfs) < 0)
            die(p, errno, "chdir %s", p->rootfs);
        if (chroot(".") < 0)
            die(p, errno, "chroot %s", p->rootfs);
        if (chdir("/") < 0)
            die(p, errno, "chdir /");
        return;
    }
    if (p->no_pivot) {
        hide_before_move(p);
        if (chdir(p->rootfs) < 0)
            die(p, errno, "chdir %s", p->rootfs);
        if (mount(p->rootfs, "/", NULL, MS_MOVE, NULL) < 0)
            die(p, errno, "move %s to /", p->rootfs);
        if (chroot(".") < 0)
            die(p, errno, "chroot %s", p->rootfs);
        if (chdir("/") < 0)
            die(p, errno, "chdir /");
        return;
    }
    oldroot = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (oldroot < 0)
        die(p, errno, "open /");
    newroot = open(p->rootfs, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (newroot < 0)
        die(p, errno, "open %s", p->rootfs);
    if (fchdir(newroot) < 0)
        die(p, errno, "chdir %s", p->rootfs);
    /* pivot_root(".", "."): the old root ends up stacked on the new one; detach it. */
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        die(p, errno, "pivot_root %s", p->rootfs);
    if (fchdir(oldroot) < 0)
        die(p, errno, "chdir old root");
    /* Keep the detach from propagating to the host's mounts. */
    if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
        die(p, errno, "make old root slave");
    if (umount2(".", MNT_DETACH) < 0)
        die(p, errno, "unmount old root");
    if (chdir("/") < 0)
        die(p, errno, "chdir /");
    close(oldroot);
    close(newroot);
}

/* The mount that holds `path`: its deepest ancestor (or itself) that is a mount root. */
static void mount_point_of(const struct ocirun_plan *p, const char *path, char *buf, size_t n)
{
    struct statx stx;
    char *slash;

    snprintf(buf, n, "%s", path);
    for (;;) {
        if (statx(AT_FDCWD, buf, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &stx) < 0)
            die(p, errno, "statx %s", buf);
        if ((stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
            (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT))
            return;
        slash = strrchr(buf, '/');
        if (!slash || slash == buf) {
            snprintf(buf, n, "/");
            return;
        }
        *slash = '\0';
    }
}

/* stdio on the host's /dev/null (an engine's detached container) is reopened on the
 * container's own, as runc does: the host's /dev is not in the container's mount namespace,
 * and CRIU cannot dump a file whose mount it cannot see. Same access mode. The plan asks for
 * it only where the container has a null device of its own. */
static void reopen_stdio_null(const struct ocirun_plan *p)
{
    struct stat null_st, st;
    int fd, nullfd = -1;

    for (fd = 0; fd < 3; fd++) {
        int mode, newfd;

        if (fstat(fd, &st) < 0 || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3))
            continue;
        if (nullfd < 0) {
            nullfd = open("/dev/null", O_PATH | O_CLOEXEC);
            if (nullfd < 0)
                die(p, errno, "open /dev/null");
            if (fstat(nullfd, &null_st) < 0)
                die(p, errno, "stat /dev/null");
            if (!S_ISCHR(null_st.st_mode) || null_st.st_rdev != makedev(1, 3))
                die(p, ENODEV, "open /dev/null: not the null device");
        }
        if (st.st_dev == null_st.st_dev && st.st_ino == null_st.st_ino)
            continue;
        mode = fcntl(fd, F_GETFL);
        if (mode < 0)
            die(p, errno, "fcntl F_GETFL fd %d", fd);
        newfd = open("/dev/null", (mode & O_ACCMODE) | O_CLOEXEC);
        if (newfd < 0)
            die(p, errno, "open /dev/null");
        if (dup3(newfd, fd, 0) < 0)
            die(p, errno, "reopen /dev/null on fd %d", fd);
        close(newfd);
    }
    if (nullfd >= 0)
        close(nullfd);
}

void prepare_rootfs(const struct ocirun_plan *p)
{
    char parent[4096];
    int i;

    /* Nothing we mount may propagate back to the host. */
    if (p->root_propagation && mount(NULL, "/", NULL, p->root_propagation, NULL) < 0)
        die(p, errno, "set propagation of /");
    /* A non-recursive setting leaves the mount holding the rootfs as it was: if it is shared,
     * our mounts would reach the host, and pivot_root refuses it. MS_SLAVE ends sharing and
     * changes nothing else: a slave stays one, a private mount stays private. */
    if (p->rootfs_parent_unshared) {
        mount_point_of(p, p->rootfs, parent, sizeof(parent));
        if (mount(NULL, parent, NULL, MS_SLAVE, NULL) < 0)
            die(p, errno, "make %s a slave mount", parent);
    }
    /* pivot_root needs the new root to be a mount point. */
    if (mount(p->rootfs, p->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
        die(p, errno, "bind %s", p->rootfs);
    rootfd = open(p->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        die(p, errno, "open %s", p->rootfs);

    umask(0);
    for (i = 0; i < p->n_mounts; i++)
        do_mount(p, &p->mounts[i]);
    for (i = 0; i < p->n_devices; i++)
        make_device(p, &p->devices[i]);
    for (i = 0; i < p->n_symlinks; i++)
        make_symlink(p, &p->symlinks[i]);
    if (p->console_fd >= 0) {
        int console = must_open_in_root(p, "/dev/console", OCIRUN_MNT_FILE);

        setup_terminal(p, open_ptmx(p), console);
        close(console);
    }
    /* runc creates a missing cwd; do it while the rootfs is still writable. */
    if (p->make_cwd)
        close(must_open_in_root(p, p->cwd, OCIRUN_MNT_DIR));
    write_sysctls(p);
    if (p->dev_readonly)
        remount_bind(p, "/dev", MS_RDONLY);
    /* runc's order: read-only paths, then masked ones (the mount table engines compare). */
    readonly_paths(p);
    mask_paths(p);
    close(rootfd);
    rootfd = -1;

    trace_mark(p, "mounts");
    run_create_hooks(p);
    trace_mark(p, "create_hooks");
    pivot(p);
    if (p->reopen_dev_null)
        reopen_stdio_null(p);

    if (p->rootfs_readonly &&
        mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | kept_flags("/"), NULL) < 0)
        die(p, errno, "remount / read-only");
    if (p->root_propagation_end && mount(NULL, "/", NULL, p->root_propagation_end, NULL) < 0)
        die(p, errno, "set propagation of the container's /");
}
