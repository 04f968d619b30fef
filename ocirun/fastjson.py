"""Moved into ocirun/_lean.py (loads, dumps, JSONDecodeError); this name stays importable
for the modules that still import it, until their branches switch to `_lean`."""

from ._lean import __getattr__, dumps, loads  # noqa: F401
