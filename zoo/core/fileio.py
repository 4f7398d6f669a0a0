"""Atomic file writes: a temporary file in the target folder, flushed, then ``os.replace``.

Why: a crash or a failed check while writing must never leave a half-written checkpoint, ONNX file or
result table at the final path, and must never clobber the previous good file. A process killed with
-9 cannot remove its temporary file, so temporary names carry the writer's pid and the next write to
the same path removes those whose writer is gone. ``check_output_path`` refuses an output that cannot
be written *before* any work is done (a parent that is a file, a folder where a file is expected).
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_TMP_TAG = ".tmp-"  # .NAME.tmp-PID-XXXXXXXX.SUFFIX


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # exists but belongs to someone else, or cannot tell: keep its file
        return True
    return True


def remove_stale_temporaries(final: Path) -> list[Path]:
    """Remove ``final``'s temporary files left by writers that no longer run (killed mid-write)."""
    removed = []
    prefix = f".{final.name}{_TMP_TAG}"
    with contextlib.suppress(OSError):
        for entry in final.parent.iterdir():
            if not entry.name.startswith(prefix):
                continue
            pid_text = entry.name[len(prefix):].split("-", 1)[0]
            if pid_text.isdigit() and int(pid_text) != os.getpid() and not _pid_alive(int(pid_text)):
                with contextlib.suppress(OSError):
                    entry.unlink()
                    removed.append(entry)
    return removed


def check_output_path(path: str | os.PathLike[str], *, folder: bool = False, what: str = "output") -> Path:
    """Refuse, before any work, an output path that cannot be created; returns it as a ``Path``.

    Args:
        path: the file (or, with ``folder=True``, the folder) that will be written.
        folder: the output is a folder (it may exist as one) rather than a file.
        what: the flag or role named in the message (``--out``).

    Raises:
        NotADirectoryError: some existing parent of ``path`` is a file.
        IsADirectoryError: a file output names an existing folder.
        FileExistsError: a folder output names an existing file.
        PermissionError: the nearest existing folder is not writable.
    """
    path = Path(path)
    if path.exists():
        if folder and not path.is_dir():
            raise FileExistsError(f"{what} {path} is a file, not a folder; choose a folder.")
        if not folder and path.is_dir():
            raise IsADirectoryError(f"{what} {path} is a folder; give a file name.")
    parent = path if folder and path.is_dir() else path.parent
    for ancestor in (parent, *parent.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                raise NotADirectoryError(f"cannot write {what} {path}: {ancestor} is a file, not a folder.")
            if not os.access(ancestor, os.W_OK | os.X_OK):
                raise PermissionError(f"cannot write {what} {path}: folder {ancestor} is not writable.")
            break
    return path


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``.

    On any exception the temporary file is removed and ``path`` is left untouched. The final file gets
    the permissions a plain ``open()`` would give it (0666 & ~umask), whoever created the temporary.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}{_TMP_TAG}{os.getpid()}-", suffix=suffix or ".tmp",
                                    dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates 0600, and writers such as safetensors re-create the file: set the mode last.
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb+") as fh:  # make the bytes durable before the rename publishes them
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the final path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically and return the final path."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike[str], obj: Any, indent: int | None = 2) -> Path:
    """Serialise ``obj`` as JSON to ``path`` atomically (fails before touching the file if not serialisable)."""
    text = json.dumps(obj, indent=indent, sort_keys=False, allow_nan=False)
    return write_text_atomic(path, text + "\n")
