/*
 * launcher.c: the installed `ocirun` command (built into the wheel by setup.py).
 *
 * A console script made by pip would start the interpreter with `site` (every .pth file)
 * and import `re`: ~8 ms on every call of the runtime, and engines call it for every
 * state, start, kill and delete. This execs the interpreter of the venv it is installed in
 * isolated (-I: no PYTHON* variables, no user site, so nothing in an engine's environment
 * can inject modules) and without site (-S), with exactly that venv's site-packages on
 * sys.path: what scripts/mklauncher.py's launcher does for the development venv.
 * SITE_REL is the site-packages path relative to the venv (compile-time, from sysconfig).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifndef SITE_REL
#error "build with -DSITE_REL='\"lib/pythonX.Y/site-packages\"'"
#endif

static const char CODE[] =
    "import sys;sys.path.insert(0,sys.argv.pop(1));sys.argv[0]='ocirun';"
    "from ocirun.main import main;main()";

int main(int argc, char **argv)
{
    char venv[PATH_MAX], python[PATH_MAX], site[PATH_MAX];
    char *args[argc + 5];
    ssize_t n = readlink("/proc/self/exe", venv, sizeof(venv) - 1);
    char *slash;
    int i;

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
    args[0] = python;
    args[1] = "-IS";
    args[2] = "-c";
    args[3] = (char *) CODE;
    args[4] = site;
    for (i = 1; i < argc; i++)
        args[i + 4] = argv[i];
    args[argc + 4] = NULL;
    execv(python, args);
    fprintf(stderr, "ocirun: exec %s: %s\n", python, strerror(errno));
    return 127;
}
