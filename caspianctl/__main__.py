# PYTHON_ARGCOMPLETE_OK
"""`python -m caspianctl` and the `caspianctl` entry point; the program is in caspianctl.main."""

import sys

from caspianctl.main import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
