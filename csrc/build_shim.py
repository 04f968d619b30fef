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
    # Comments first (they may span lines, also after a #define), then preprocessor lines.
    text = re.sub(r"/\*.*?\*/", "", HEADER.read_text(), flags=re.S)
    keep = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            if re.match(r"#define\s+\w+\s+\d+$", stripped):
                keep.append(stripped)
            continue
        keep.append(line)
    return "\n".join(keep)


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
