"""ocirun: an OCI container runtime, a drop-in for runc.

Python decides (spec -> plan), a small C shim executes the plan between clone and execve.
"""

__version__ = "0.1.0"
SPEC_VERSION = "1.3.0"
