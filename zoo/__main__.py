"""``python -m zoo`` (and ``torchrun -m zoo train ...``) runs the CLI.

The guard matters: a spawned worker (``zoo bench``'s deployment stage) re-imports the main module.
"""
import sys

from zoo.cli import main

if __name__ == "__main__":
    sys.exit(main())
