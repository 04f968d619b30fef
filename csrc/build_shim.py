"""cffi build script (API mode, out of line): compiles csrc/*.c into `ocirun._shim`.

`ocirun.h` is both the C header and the cdef: the cdef is that file without its preprocessor
lines, except `#define NAME <integer>` constants, which cffi understands.
"""

import pathlib
import re

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent
HEADER = HERE / "ocirun.h"
SOURCES = sorted(str(p.relative_to(HERE.parent)) for p in HERE.glob("*.c"))


def cdef_text() -> str:
    keep = []
    for line in HEADER.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            if re.match(r"#define\s+\w+\s+\d+\s*(/\*.*)?$", stripped):
                keep.append(re.sub(r"/\*.*", "", stripped))
            continue
        keep.append(line)
    text = "\n".join(keep)
    # cffi's parser does not take multi-line comments spread over #define lines; drop them all.
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


ffibuilder = FFI()
ffibuilder.cdef(cdef_text())
ffibuilder.set_source(
    "ocirun._shim",
    '#include "ocirun.h"\n',
    sources=SOURCES,
    include_dirs=[str(HERE.relative_to(HERE.parent))],
    libraries=["seccomp"],
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-std=gnu11"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
