/* probe: a tiny static helper run inside test containers (built by build.sh at test time).
 *
 *   probe fds                 every open fd but the one listing /proc/self/fd: "N -> target"
 *   probe read N              read fd N to EOF and print it
 *   probe syscall NR [A...]   raw syscall(NR, A...) (decimal or 0x args): "ret=R errno=E"
 *   probe stat PATH           "type=c mode=0620 uid=U gid=G rdev=MA:MI" (lstat)
 *   probe ttystat FD          the same for an open fd (fstat)
 *   probe dumpable            prctl(PR_GET_DUMPABLE)
 *   probe open PATH           open(PATH, O_RDONLY): "ok" or "errno=E"
 *   probe readlink PATH       readlink(PATH): the target or "errno=E"
 *
 * Built with -DPROBE_LOADER -nostdlib it is instead a minimal ELF interpreter ("loader", for
 * x86_64): put at /lib64/ld-linux-x86-64.so.2 in an image, it gets control whenever a
 * dynamic executable runs there and reports what /proc/self/exe is and whether it opens:
 *   "exe=TARGET" or "exe_errno=E", then "open=ok" or "open_errno=E".
 */
#define _GNU_SOURCE
#ifdef PROBE_LOADER
#include <fcntl.h>
#include <sys/syscall.h>

static long sys3(long n, long a, long b, long c)
{
    long r;

    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c)
                     : "rcx", "r11", "memory");
    return r;
}

static void say(const char *s)
{
    long n = 0;

    while (s[n])
        n++;
    sys3(SYS_write, 1, (long) s, n);
}

static void say_num(const char *label, long v)
{
    char buf[24];
    int i = sizeof(buf) - 1;

    buf[i] = '\0';
    do
        buf[--i] = (char) ('0' + v % 10);
    while ((v /= 10) && i > 0);
    say(label);
    say(buf + i);
    say("\n");
}

void loader_main(void)
{
    static char target[4096];
    long n = sys3(SYS_readlink, (long) "/proc/self/exe", (long) target, sizeof(target) - 1);
    long fd;

    if (n >= 0) {
        target[n] = '\0';
        say("exe=");
        say(target);
        say("\n");
    } else {
        say_num("exe_errno=", -n);
    }
    fd = sys3(SYS_open, (long) "/proc/self/exe", O_RDONLY | O_CLOEXEC, 0);
    if (fd >= 0)
        say("open=ok\n");
    else
        say_num("open_errno=", -fd);
    sys3(SYS_exit_group, 0, 0, 0);
}

__asm__(".globl _start\n_start:\n xor %rbp, %rbp\n and $-16, %rsp\n call loader_main\n hlt\n");

#else /* the probe */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static int list_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    char path[300], target[4096];

    if (!d) {
        perror("opendir /proc/self/fd");
        return 1;
    }
    while ((e = readdir(d))) {
        ssize_t n;

        if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d))
            continue;
        snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
        n = readlink(path, target, sizeof(target) - 1);
        target[n < 0 ? 0 : n] = '\0';
        printf("%s -> %s\n", e->d_name, target);
    }
    closedir(d);
    return 0;
}

static char type_of(mode_t m)
{
    return S_ISCHR(m) ? 'c' : S_ISBLK(m) ? 'b' : S_ISFIFO(m) ? 'p' : S_ISDIR(m) ? 'd'
         : S_ISLNK(m) ? 'l' : S_ISREG(m) ? 'f' : S_ISSOCK(m) ? 's' : '?';
}

static int print_stat(const struct stat *st)
{
    printf("type=%c mode=%04o uid=%u gid=%u rdev=%u:%u\n", type_of(st->st_mode),
           st->st_mode & 07777, st->st_uid, st->st_gid, major(st->st_rdev), minor(st->st_rdev));
    return 0;
}

int main(int argc, char **argv)
{
    struct stat st;

    if (argc < 2)
        return 2;
    if (!strcmp(argv[1], "fds"))
        return list_fds();
    if (!strcmp(argv[1], "read") && argc == 3) {
        char buf[4096];
        ssize_t n;
        int fd = atoi(argv[2]);

        while ((n = read(fd, buf, sizeof(buf))) > 0)
            fwrite(buf, 1, (size_t) n, stdout);
        if (n < 0) {
            printf("errno=%d\n", errno);
            return 1;
        }
        return 0;
    }
    if (!strcmp(argv[1], "syscall") && argc >= 3) {
        long a[6] = {0}, ret;
        int i;

        for (i = 3; i < argc && i < 9; i++)
            a[i - 3] = (long) strtoull(argv[i], NULL, 0);
        errno = 0;
        ret = syscall(strtol(argv[2], NULL, 0), a[0], a[1], a[2], a[3], a[4], a[5]);
        printf("ret=%ld errno=%d\n", ret, ret < 0 ? errno : 0);
        return 0;
    }
    if (!strcmp(argv[1], "stat") && argc == 3) {
        if (lstat(argv[2], &st) < 0) {
            printf("errno=%d\n", errno);
            return 1;
        }
        return print_stat(&st);
    }
    if (!strcmp(argv[1], "ttystat") && argc == 3) {
        if (fstat(atoi(argv[2]), &st) < 0) {
            printf("errno=%d\n", errno);
            return 1;
        }
        return print_stat(&st);
    }
    if (!strcmp(argv[1], "dumpable")) {
        printf("dumpable=%d\n", prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));
        return 0;
    }
    if (!strcmp(argv[1], "open") && argc == 3) {
        int fd = open(argv[2], O_RDONLY);

        if (fd < 0) {
            printf("errno=%d\n", errno);
            return 1;
        }
        printf("ok\n");
        return 0;
    }
    if (!strcmp(argv[1], "readlink") && argc == 3) {
        char buf[4096];
        ssize_t n = readlink(argv[2], buf, sizeof(buf) - 1);

        if (n < 0) {
            printf("errno=%d\n", errno);
            return 1;
        }
        buf[n] = '\0';
        printf("%s\n", buf);
        return 0;
    }
    fprintf(stderr, "probe: bad usage\n");
    return 2;
}
#endif /* PROBE_LOADER */
