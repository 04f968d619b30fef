"""cffi build script (API mode, out of line): the front door's status derivation and record
parser (status.c, record.c) as `ocirun._status`, so that Python derives a container's status
with the very code the front door runs (state.py) and tests drive the parser directly.

A separate module from the shim (csrc/build_shim.py): small, loaded only by the commands
that derive a status, and built from csrc/launcher alone.
"""

import pathlib

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent
SOURCES = [str((HERE / name).relative_to(HERE.parents[1])) for name in ("status.c", "record.c")]

CDEF = """
#define ST_CREATED ...
#define ST_RUNNING ...
#define ST_STOPPED ...
#define ST_PAUSED ...
#define REC_MAX ...
#define REC_RMDIRS ...
#define REC_CGROUPS ...

struct record {
    unsigned long long state_ino, state_size, state_mtime_ns;
    int pid;
    unsigned long long start_time;
    const char *freezer, *frozen;
    const char *procs_dir;
    const char *rmdir[...];
    int n_rmdir;
    const char *cgroup[...];
    int n_cgroup;
    int python_start, python_delete;
    const char *oci_version, *bundle, *rootfs, *created;
    const char *annotations;
    ...;
};

int proc_start_time(int pid, unsigned long long *out);
int container_status(int dirfd, const char *fifo, int pid, unsigned long long start_time,
                     const char *freezer, const char *frozen_value);
int rec_parse(char *buf, size_t len, struct record *r);
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "ocirun._status",
    '#include "front.h"\n',
    sources=SOURCES,
    include_dirs=[str(HERE)],
    extra_compile_args=["-std=gnu11"],  # -Werror: the front door build (frontdoor.py)
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
