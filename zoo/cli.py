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
    "explain",
    "val",
    "coco-eval",
    "export",
    "bench",
    "eval-lm",
    "study",
    "train",
    "distill",
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
    except (ZooError, OSError, ValueError, MemoryError) as err:
        print(f"zoo {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        if not _is_out_of_memory(err):
            raise  # a bug: keep the traceback
        print(f"zoo {args.command}: error: {_one_line(MemoryError(str(err).splitlines()[0]))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"zoo {args.command}: interrupted", file=sys.stderr)
        return 130


def _is_out_of_memory(err: RuntimeError) -> bool:
    """torch reports a failed allocation as a RuntimeError (CPU) or its subclass OutOfMemoryError (CUDA)."""
    text = str(err)
    return type(err).__name__ == "OutOfMemoryError" or "can't allocate memory" in text or "out of memory" in text


def _one_line(err: BaseException) -> str:
    """The message of an error users cause, on one line, naming the file when the OS names one.

    OSError covers what the disk says (ENOSPC, a parent that is a file, no permission); MemoryError what an
    input size asks for (``--imgsz 99999``). Either is the user's situation, not a bug, so no traceback.
    """
    if isinstance(err, MemoryError):
        return (f"out of memory ({err or 'allocation failed'}); use a smaller --imgsz/--seq-len or --batch, "
                "or check the input file's size.")
    if isinstance(err, OSError) and err.strerror and str(err).startswith("[Errno"):
        msg = err.strerror  # '[Errno 28] No space left on device' -> 'No space left on device'
    else:
        msg = str(err) or err.__class__.__name__
    if isinstance(err, OSError):
        for name in (err.filename, err.filename2):
            if name and str(name) not in msg:
                msg = f"{msg}: {name}"
    return " ".join(msg.split())


if __name__ == "__main__":
    sys.exit(main())
