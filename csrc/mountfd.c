/* mountfd.c: parent side: detached copies of bind sources (open_tree), made by the runtime
 * before the clone, so that a container in a user namespace gets sources its own uids could
 * not reach (runc does the same), and later, idmapped mounts. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ocirun.h"

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
