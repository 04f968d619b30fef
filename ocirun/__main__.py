"""`python -m ocirun`: the same command line as the `ocirun` executable."""

from .main import main

main()
