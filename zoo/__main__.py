"""``python -m zoo`` (and ``torchrun -m zoo train ...``) runs the CLI."""
import sys

from zoo.cli import main

sys.exit(main())
