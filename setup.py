# setuptools' cffi hook (cffi_modules) cannot be expressed in pyproject.toml.
from setuptools import setup

setup(cffi_modules=["csrc/build_shim.py:ffibuilder"])
