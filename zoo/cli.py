"""``zoo``: a thin argparse dispatcher. Each subcommand lives in ``zoo/commands/<name>.py``.

A subcommand module defines ``add_parser(subparsers)`` (flags and help with pasteable examples) and
``run(args) -> int`` (calls one public API function and prints its result). Errors that users cause
(``ZooError``, bad files, bad values) become one line on stderr and exit code 2, never a traceback.
Results go to stdout; logs and progress bars go to stderr.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from zoo.core.errors import ZooError

# Order = order in `zoo --help`.
COMMANDS: tuple[str, ...] = (
    "list",
    "info",
    "convert",
    "flops",
    "pi-cost",
    "pi-measure",
    "entropy",
    "predict",
    "val",
    "coco-eval",
    "export",
    "bench",
    "eval-lm",
    "study",
    "train",
)

EPILOG = """examples:
  zoo list 'leyolo-*' --details
  zoo info leyolo-nano
  zoo convert LeYOLONano.pt leyolo-nano.safetensors
"""


class _Parser(argparse.ArgumentParser):
    """argparse with exit code 2 and a one-line message (argparse's own usage dump is noise here)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``zoo`` parser; ``only`` builds just that subcommand.

    Why: each subcommand module imports the API it calls at module level (the exporter, the trainer, the
    benchmark...), so ``zoo list`` must not import every other command's dependencies. The modules are
    found by name (``zoo.commands.<name>``): this dispatcher is the one place that imports by name.
    """
    parser = _Parser(prog="zoo", description="effzoo: a model zoo for efficient and private inference.",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS if only is None else (only,):
        module = importlib.import_module(f"zoo.commands.{name.replace('-', '_')}")
        p = module.add_parser(sub)
        p.set_defaults(_run=module.run)
    return parser


def _command_word(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line, when it is a known one (else None: build them all)."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(only=_command_word(argv))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except (ZooError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, ValueError) as err:
        msg = str(err) or err.__class__.__name__
        if isinstance(err, OSError) and err.filename and str(err.filename) not in msg:
            msg = f"{msg}: {err.filename}"
        print(f"zoo {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"zoo {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
