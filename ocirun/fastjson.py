"""Moved to ocirun/_lean/json.py; this name stays importable for the modules that still
import it (to be switched to `from ._lean import json` when their branches merge)."""

from ._lean.json import __getattr__, dumps, loads  # noqa: F401
