/*
 * trampoline.c: the init's last image before the container's own program.
 *
 * The init is a fork of the runtime, so until its execve its /proc/self/exe is the host's
 * Python. A container asking to run /proc/self/exe (or a #! line naming it) would get
 * that host binary running inside it, with a path to open and overwrite it
 * (CVE-2019-5736). So the init execs this tiny program from a sealed memfd instead, and
 * it execs the real one: /proc/self/exe is then only the sealed copy of this.
 *
 * Called as: argv = { path, argv0, argv1, ..., NULL }. Freestanding (no libc): built with
 * -nostdlib by csrc/build_shim.py and embedded in the shim as bytes.
 */

#if defined(__x86_64__)
#define NR_write      1
#define NR_execve     59
#define NR_exit_group 231
static long sys3(long n, long a, long b, long c)
{
    long r;

    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}
__asm__(".globl _start\n_start:\n\tmov %rsp, %rdi\n\tand $-16, %rsp\n\tcall tramp\n\thlt\n");
#elif defined(__aarch64__)
#define NR_write      64
#define NR_execve     221
#define NR_exit_group 94
static long sys3(long n, long a, long b, long c)
{
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;

    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
    return x0;
}
__asm__(".globl _start\n_start:\n\tmov x0, sp\n\tbl tramp\n");
#else
#error "no trampoline for this architecture"
#endif

static long len(const char *s)
{
    long n = 0;

    while (s[n])
        n++;
    return n;
}

/* Why execve failed, in the words runc's (Go's) "exec PATH: ..." uses; no libc here. The
 * program was found and executable (the init checked), so these are what is left: a
 * missing #! interpreter or loader, a bad format, a busy or oversized image. */
static const char *why(long err)
{
    switch (-err) {
    case 2:
        return "no such file or directory";
    case 1:
        return "operation not permitted";
    case 7:
        return "argument list too long";
    case 8:
        return "exec format error";
    case 12:
        return "cannot allocate memory";
    case 13:
        return "permission denied";
    case 20:
        return "not a directory";
    case 21:
        return "is a directory";
    case 26:
        return "text file busy";
    case 36:
        return "file name too long";
    case 40:
        return "too many levels of symbolic links";
    default:
        return "execve failed";
    }
}

__attribute__((noreturn, used)) void tramp(long *sp)
{
    long argc = sp[0];
    char **argv = (char **) (sp + 1);
    char **envp = argv + argc + 1;

    if (argc >= 2) {
        long err = sys3(NR_execve, (long) argv[0], (long) (argv + 1), (long) envp);
        const char *text = why(err);

        sys3(NR_write, 2, (long) "exec ", 5);
        sys3(NR_write, 2, (long) argv[0], len(argv[0]));
        sys3(NR_write, 2, (long) ": ", 2);
        sys3(NR_write, 2, (long) text, len(text));
        sys3(NR_write, 2, (long) "\n", 1);
    }
    sys3(NR_exit_group, 127, 0, 0);
    for (;;)
        ;
}
