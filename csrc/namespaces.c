/* namespaces.c: enter the container's namespaces in the order the plan gives. */
#include "shim.h"

#include <net/if.h>
#include <sys/ioctl.h>

static const char *ns_name(int nstype)
{
    switch (nstype) {
    case CLONE_NEWUSER:
        return "user";
    case CLONE_NEWPID:
        return "pid";
    case CLONE_NEWNET:
        return "network";
    case CLONE_NEWNS:
        return "mount";
    case CLONE_NEWIPC:
        return "ipc";
    case CLONE_NEWUTS:
        return "uts";
    case CLONE_NEWCGROUP:
        return "cgroup";
    case CLONE_NEWTIME:
        return "time";
    default:
        return "unknown";
    }
}

/* Our user namespace exists: the parent writes uid_map/gid_map (it has the privilege and
 * the policy); then we become its root so the rest of the setup acts as the container's root. */
static void idmap_handshake(const struct ocirun_plan *p)
{
    /* A non-dumpable process's /proc/<pid> files belong to root: a non-root parent (or
     * newuidmap, which checks the target's owner) could not write our maps. Dumpable for
     * the handshake only, as runc does; nothing of the container's is entered yet. */
    if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
        die(p, errno, "prctl PR_SET_DUMPABLE 1");
    send_msg(p->sync_fd, OCIRUN_MSG_IDMAP, 0, 0, NULL);
    wait_msg(p, OCIRUN_MSG_IDMAP_DONE);
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        die(p, errno, "prctl PR_SET_DUMPABLE 0");
    if (setresgid(0, 0, 0) < 0)
        die(p, errno, "setresgid 0 in the user namespace");
    if (setresuid(0, 0, 0) < 0)
        die(p, errno, "setresuid 0 in the user namespace");
}

static void bring_loopback_up(const struct ocirun_plan *p)
{
    struct ifreq ifr;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        die(p, errno, "socket for lo");
    memset(&ifr, 0, sizeof(ifr));
    strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
        die(p, errno, "get flags of lo");
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
        die(p, errno, "set lo up");
    close(fd);
}

void enter_namespaces(const struct ocirun_plan *p)
{
    int i;

    if (p->userns_sync && (p->clone_flags & CLONE_NEWUSER))
        idmap_handshake(p);

    /* Python puts a joined user namespace first: joining it first gives us the capabilities
     * over the namespaces it owns, which the other joins need. */
    for (i = 0; i < p->n_joins; i++)
        if (setns(p->joins[i].fd, p->joins[i].nstype) < 0)
            die(p, errno, "setns %s namespace", ns_name(p->joins[i].nstype));

    if (p->unshare_flags) {
        if (unshare((int) p->unshare_flags) < 0)
            die(p, errno, "unshare namespaces 0x%lx", p->unshare_flags);
        if (p->userns_sync && (p->unshare_flags & CLONE_NEWUSER))
            idmap_handshake(p);
    }

    /* Offsets can only be written before any process lives in the new time namespace,
     * which unshare(CLONE_NEWTIME) gives to our children only. */
    if (p->timens_offsets)
        write_file(p, "/proc/self/timens_offsets", p->timens_offsets);

    if (p->loopback_up)
        bring_loopback_up(p);

    /* Before anything of ours (sysctls, hooks, the process) looks at the network. The
     * parent reaches the namespace through /proc/<clone's pid>/ns/net: us, even when the
     * init is our child below. */
    if (p->netdev_sync) {
        send_msg(p->sync_fd, OCIRUN_MSG_NETDEV, 0, 0, NULL);
        wait_msg(p, OCIRUN_MSG_NETDEV_DONE);
    }

    if (p->fork_after) {
        /* A pid (or time) namespace we joined or unshared applies to our children only:
         * the init is our child. We report its pid (in the parent's pid namespace, which is
         * ours) and leave; the parent then lets the init go on. */
        pid_t pid = fork();

        if (pid < 0)
            die(p, errno, "fork into the new pid namespace");
        if (pid > 0) {
            send_msg(p->sync_fd, OCIRUN_MSG_PID, 0, pid, NULL);
            _exit(0);
        }
        wait_msg(p, OCIRUN_MSG_GO);
    }
}
