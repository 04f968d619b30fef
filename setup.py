"""setuptools hooks pyproject.toml cannot express: the cffi shim (cffi_modules) and the
`ocirun` command, the C front door (csrc/launcher/, docs/fastpath.md) compiled for the
interpreter that builds the wheel."""

import os
import shutil
import subprocess
import sys
import tempfile

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))


def launcher() -> list[str]:
    sys.path.insert(0, os.path.join(HERE, "csrc", "launcher"))
    from frontdoor import compile_front_door

    out_dir = os.path.join(HERE, "build", "launcher")
    os.makedirs(out_dir, exist_ok=True)
    out = os.path.join(out_dir, "ocirun")
    compile_front_door(out)
    return [os.path.relpath(out, HERE)]


def criu_rpc() -> None:
    """ocirun/_criu_rpc_pb2.py from proto/criu-rpc.proto (CRIU's images/rpc.proto, MIT), for
    checkpoint/restore (ocirun/criu_rpc.py). Needs protoc (Debian: protobuf-compiler);
    without it ocirun is built without checkpoint/restore, which then says why."""
    src = os.path.join(HERE, "proto", "criu-rpc.proto")
    out = os.path.join(HERE, "ocirun", "_criu_rpc_pb2.py")
    if os.path.exists(out) and os.path.getmtime(out) >= os.path.getmtime(src):
        return
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # protoc names the module after the file: copy it as rpc.proto (CRIU's name,
            # which the descriptor pool registers).
            shutil.copy(src, os.path.join(tmp, "rpc.proto"))
            subprocess.run(
                ["protoc", f"-I{tmp}", f"--python_out={tmp}", "rpc.proto"], check=True, cwd=tmp
            )
            shutil.copy(os.path.join(tmp, "rpc_pb2.py"), out)
    except (OSError, subprocess.CalledProcessError) as e:
        print(
            f"warning: CRIU RPC bindings not generated ({e}): ocirun checkpoint/restore "
            "will be unavailable (install protoc: protobuf-compiler)",
            file=sys.stderr,
        )


criu_rpc()

# data_files, not scripts: setuptools reads scripts as text to rewrite their #! line. The
# launcher lands in <prefix>/bin, i.e. the venv's bin/, executable.
setup(
    cffi_modules=["csrc/build_shim.py:ffibuilder", "csrc/launcher/build_status.py:ffibuilder"],
    data_files=[("bin", launcher())],
)
