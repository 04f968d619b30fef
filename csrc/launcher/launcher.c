/*
 * launcher.c: the `ocirun` command, the front door (docs/fastpath.md).
 *
 * It reads runc's global flags and the command line as ocirun/_lean.py parses what
 * ocirun/clispec.py declares (a test checks the two agree; Go's flag syntax: -name and
 * --name alike, --flag=value or --flag value, a boolean given a Go boolean) and
 * runs state, start, kill, delete and list itself from the record create wrote. Anything
 * else, and anything it is not sure of (an unknown flag, a bad value, a container
 * without a current record, poststop hooks, ...), goes to Python before any side effect: it
 * execs the venv's interpreter isolated (-I: no PYTHON* variables, no user site, nothing in
 * an engine's environment can inject modules) and without site (-S), with exactly that
 * venv's site-packages (and, for the development venv, the checkout: SOURCE_DIR) on
 * sys.path, and the same argv. OCIRUN_NO_FASTPATH=1 sends every call to Python.
 * SITE_REL is the site-packages path relative to the venv (compile-time, from sysconfig).
 */
#include "front.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef SITE_REL
#error "build with -DSITE_REL='\"lib/pythonX.Y/site-packages\"'"
#endif

#ifdef SOURCE_DIR
#define NPATHS "2"
#else
#define NPATHS "1"
#endif
static const char CODE[] = "import sys;n=" NPATHS ";sys.path[0:0]=sys.argv[1:1+n];"
                           "del sys.argv[1:1+n];sys.argv[0]='ocirun';"
                           "from ocirun.main import main;main()";

static int exec_python(int argc, char **argv)
{
    char venv[PATH_MAX], python[PATH_MAX], site[PATH_MAX];
    char *args[argc + 6];
    ssize_t n = readlink("/proc/self/exe", venv, sizeof(venv) - 1);
    char *slash;
    int i, k = 0;

    if (n <= 0) {
        fprintf(stderr, "ocirun: readlink /proc/self/exe: %s\n", strerror(errno));
        return 127;
    }
    venv[n] = '\0';
    /* <venv>/bin/ocirun -> <venv> */
    for (i = 0; i < 2; i++) {
        slash = strrchr(venv, '/');
        if (!slash || slash == venv) {
            fprintf(stderr, "ocirun: not installed in a venv (%s)\n", venv);
            return 127;
        }
        *slash = '\0';
    }
    if ((size_t) snprintf(python, sizeof(python), "%s/bin/python3", venv) >= sizeof(python) ||
        (size_t) snprintf(site, sizeof(site), "%s/%s", venv, SITE_REL) >= sizeof(site)) {
        fprintf(stderr, "ocirun: path too long: %s\n", venv);
        return 127;
    }
    args[k++] = python;
    args[k++] = "-IS";
    args[k++] = "-c";
    args[k++] = (char *) CODE;
#ifdef SOURCE_DIR
    args[k++] = SOURCE_DIR;
#endif
    args[k++] = site;
    for (i = 1; i < argc; i++)
        args[k++] = argv[i];
    args[k] = NULL;
    execv(python, args);
    fprintf(stderr, "ocirun: exec %s: %s\n", python, strerror(errno));
    return 127;
}

/* --- the command line, as _lean.parse reads it (declared in clispec.py) */

struct opt {
    const char *name; /* without dashes */
    int takes_value;
    const char **value; /* where a value goes; a boolean's "true"/"false" too */
};

static const char *TRUE_ = "true", *FALSE_ = "false";

/* Go's strconv.ParseBool: 1, 0, t, f, T, F, true, false, TRUE, FALSE, True, False. */
static const char *go_bool(const char *v)
{
    static const char *const yes[] = { "1", "t", "T", "TRUE", "true", "True" };
    static const char *const no[] = { "0", "f", "F", "FALSE", "false", "False" };
    int i;

    for (i = 0; i < 6; i++) {
        if (!strcmp(v, yes[i]))
            return TRUE_;
        if (!strcmp(v, no[i]))
            return FALSE_;
    }
    return NULL;
}

/* Take the option at argv[*i] into the table's slot; -1 if it is not one of the table. */
static int take(int argc, char **argv, int *i, struct opt *table)
{
    const char *arg = argv[*i], *eq, *base = arg + 1;
    size_t len;
    struct opt *o;

    if (base[0] == '-')
        base++;
    if (base[0] == '-' || base[0] == '\0' || base[0] == '=')
        return -1;
    eq = strchr(base, '=');
    len = eq ? (size_t) (eq - base) : strlen(base);
    for (o = table; o->name; o++) {
        if (strlen(o->name) == len && !strncmp(o->name, base, len))
            break;
    }
    if (!o->name)
        return -1;
    if (!o->takes_value) {
        *o->value = eq ? go_bool(eq + 1) : TRUE_;
        if (!*o->value)
            return -1;
    } else if (eq) {
        *o->value = eq + 1;
    } else {
        if (*i + 1 >= argc)
            return -1;
        *o->value = argv[++*i];
    }
    (*i)++;
    return 0;
}

/* paths.abspath: relative to the cwd, ".", ".." and repeated slashes resolved lexically. */
static char *abspath(const char *path)
{
    char cwd[PATH_MAX], *full, *out, *seg, *save = NULL;
    size_t n = 0;

    if (path[0] == '/') {
        full = strdup(path);
    } else {
        if (!getcwd(cwd, sizeof(cwd)))
            return NULL;
        full = malloc(strlen(cwd) + strlen(path) + 2);
        if (full)
            sprintf(full, "%s/%s", cwd, path);
    }
    out = full ? malloc(strlen(full) + 2) : NULL;
    if (!out) {
        free(full);
        return NULL;
    }
    for (seg = strtok_r(full, "/", &save); seg; seg = strtok_r(NULL, "/", &save)) {
        if (!strcmp(seg, "."))
            continue;
        if (!strcmp(seg, "..")) {
            while (n && out[n - 1] != '/')
                n--;
            if (n)
                n--;
            continue;
        }
        out[n++] = '/';
        memcpy(out + n, seg, strlen(seg));
        n += strlen(seg);
    }
    if (!n)
        out[n++] = '/';
    out[n] = '\0';
    free(full);
    return out;
}

static const char default_root[] = "/run/ocirun";

static int fast(int argc, char **argv)
{
    const char *root = default_root, *log = NULL, *log_format = "text", *debug = FALSE_;
    const char *systemd = FALSE_, *criu = NULL, *rootless = NULL, *cgroup_manager = NULL;
    const char *all = FALSE_, *force = FALSE_, *quiet = FALSE_, *format = "table";
    const char *pos[2] = { NULL, NULL };
    struct opt gopts[] = { { "root", 1, &root },
                           { "log", 1, &log },
                           { "log-format", 1, &log_format },
                           { "debug", 0, &debug },
                           { "systemd-cgroup", 0, &systemd },
                           { "cgroup-manager", 1, &cgroup_manager },
                           { "criu", 1, &criu },
                           { "rootless", 1, &rootless },
                           { NULL, 0, NULL } };
    struct opt kill_opts[] = { { "all", 0, &all }, { "a", 0, &all }, { NULL, 0, NULL } };
    struct opt delete_opts[] = { { "force", 0, &force }, { "f", 0, &force }, { NULL, 0, NULL } };
    struct opt list_opts[] = { { "format", 1, &format },
                               { "f", 1, &format },
                               { "quiet", 0, &quiet },
                               { "q", 0, &quiet },
                               { NULL, 0, NULL } };
    struct opt none[] = { { NULL, 0, NULL } }, *table;
    int i = 1, npos = 0, min = 1, max = 1, rc;
    struct globals g;
    const char *cmd;
    char *absroot;

    while (i < argc && argv[i][0] == '-') {
        if (take(argc, argv, &i, gopts))
            return FALLBACK;
    }
    if (i >= argc || (strcmp(log_format, "text") && strcmp(log_format, "json")))
        return FALLBACK;
    cmd = argv[i++];
    if (!strcmp(cmd, "state") || !strcmp(cmd, "start")) {
        table = none;
    } else if (!strcmp(cmd, "kill")) {
        table = kill_opts, max = 2;
    } else if (!strcmp(cmd, "delete")) {
        table = delete_opts;
    } else if (!strcmp(cmd, "list")) {
        table = list_opts, min = max = 0;
    } else {
        return FALLBACK;
    }
    while (i < argc) {
        if (argv[i][0] == '-' && argv[i][1]) {
            if (take(argc, argv, &i, table))
                return FALLBACK;
        } else {
            if (npos >= max)
                return FALLBACK;
            pos[npos++] = argv[i++];
        }
    }
    if (npos < min)
        return FALLBACK;
    /* Without --root, the default may be $XDG_RUNTIME_DIR/ocirun (rootless.default_root:
     * runc's rule for a non-root caller, or root in a user namespace): Python decides. */
    if (root == default_root && (geteuid() != 0 || getenv("XDG_RUNTIME_DIR")))
        return FALLBACK;
    absroot = abspath(root);
    if (!absroot)
        return FALLBACK;
    g.root = absroot;
    log_configure(log, !strcmp(log_format, "json"), debug == TRUE_);
    if (!strcmp(cmd, "state"))
        rc = cmd_state(&g, pos[0]);
    else if (!strcmp(cmd, "start"))
        rc = cmd_start(&g, pos[0]);
    else if (!strcmp(cmd, "kill"))
        rc = cmd_kill(&g, pos[0], pos[1] ? pos[1] : "TERM", all == TRUE_);
    else if (!strcmp(cmd, "delete"))
        rc = cmd_delete(&g, pos[0], force == TRUE_);
    else
        rc = cmd_list(&g, format, quiet == TRUE_);
    free(absroot);
    return rc;
}

int main(int argc, char **argv)
{
    const char *off = getenv("OCIRUN_NO_FASTPATH");
    int rc = FALLBACK;

    if (!off || !*off || !strcmp(off, "0"))
        rc = fast(argc, argv);
    if (rc != FALLBACK)
        phase_flush();
    return rc == FALLBACK ? exec_python(argc, argv) : rc;
}
