/* tramp_fd.c: the sealed memfd holding the trampoline (parent side, per create/exec). */
#include "shim.h"

#include <sys/mman.h>

#include "trampoline/trampoline_bin.h"

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

int ocirun_trampoline_fd(void)
{
    unsigned int done = 0;
    int fd;

    /* MFD_EXEC: where vm.memfd_noexec asks for it (6.3+); older kernels refuse the flag. */
    fd = memfd_create("ocirun-exec", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
    if (fd < 0 && errno == EINVAL)
        fd = memfd_create("ocirun-exec", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -errno;
    while (done < trampoline_len) {
        ssize_t n = write(fd, trampoline_bin + done, trampoline_len - done);

        if (n < 0) {
            int err = errno;

            close(fd);
            return -err;
        }
        done += (unsigned int) n;
    }
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0) {
        int err = errno;

        close(fd);
        return -err;
    }
    return fd;
}
