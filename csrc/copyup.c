/* copyup.c: tmpcopyup, the image's tree under a tmpfs mount point copied onto the tmpfs. */
#include "shim.h"

struct dirent64_raw {
    unsigned long long d_ino;
    long long d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

/* The copying buffers live here, not in copy_tree's frame: it recurses once per level. */
__attribute__((noinline)) static void copy_file(const struct ocirun_plan *p, int from, int to,
                                                const char *name, mode_t mode, const char *target)
{
    char data[16384];
    ssize_t r;
    int in = openat(from, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    int out = openat(to, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode & 07777);

    if (in < 0 || out < 0)
        die(p, errno, "tmpcopyup %s: open %s", target, name);
    while ((r = read(in, data, sizeof(data))) > 0)
        if (write(out, data, (size_t) r) != r)
            die(p, errno, "tmpcopyup %s: write %s", target, name);
    if (r < 0)
        die(p, errno, "tmpcopyup %s: read %s", target, name);
    close(in);
    close(out);
}

__attribute__((noinline)) static void copy_link(const struct ocirun_plan *p, int from, int to,
                                                const char *name, const char *target)
{
    char link[4096];
    ssize_t len = readlinkat(from, name, link, sizeof(link) - 1);

    if (len < 0)
        die(p, errno, "tmpcopyup %s: readlink %s", target, name);
    link[len] = '\0';
    if (symlinkat(link, to, name) < 0)
        die(p, errno, "tmpcopyup %s: symlink %s", target, name);
}

/* Copy the tree under `from` into `to` (both directory fds), keeping modes, owners, links
 * and special files. getdents64 rather than readdir: no malloc here. */
void copy_tree(const struct ocirun_plan *p, int from, int to, const char *target)
{
    char buf[4096];
    long n;

    while ((n = syscall(SYS_getdents64, from, buf, sizeof(buf))) > 0) {
        long off;

        for (off = 0; off < n;) {
            struct dirent64_raw *d = (struct dirent64_raw *) (buf + off);
            const char *name = d->d_name;
            struct stat st;

            off += d->d_reclen;
            if (!strcmp(name, ".") || !strcmp(name, ".."))
                continue;
            if (fstatat(from, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                die(p, errno, "tmpcopyup %s: stat %s", target, name);
            if (S_ISDIR(st.st_mode)) {
                int sf, sd;

                if (mkdirat(to, name, st.st_mode & 07777) < 0)
                    die(p, errno, "tmpcopyup %s: mkdir %s", target, name);
                sf = openat(from, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                sd = openat(to, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sf < 0 || sd < 0)
                    die(p, errno, "tmpcopyup %s: open %s", target, name);
                copy_tree(p, sf, sd, target);
                close(sf);
                close(sd);
            } else if (S_ISREG(st.st_mode)) {
                copy_file(p, from, to, name, st.st_mode, target);
            } else if (S_ISLNK(st.st_mode)) {
                copy_link(p, from, to, name, target);
            } else if (mknodat(to, name, st.st_mode, st.st_rdev) < 0) {
                die(p, errno, "tmpcopyup %s: mknod %s", target, name);
            }
            if (fchownat(to, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0)
                die(p, errno, "tmpcopyup %s: chown %s", target, name);
            if (!S_ISLNK(st.st_mode) && fchmodat(to, name, st.st_mode & 07777, 0) < 0)
                die(p, errno, "tmpcopyup %s: chmod %s", target, name);
        }
    }
    if (n < 0)
        die(p, errno, "tmpcopyup %s: getdents", target);
}
