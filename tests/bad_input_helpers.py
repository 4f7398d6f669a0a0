"""Shared checks of the bad-input table (issue 17): one line, exit code 2, nothing written or changed."""
from __future__ import annotations

import hashlib
from pathlib import Path

from zoo.cli import main


def snapshot(*folders: Path) -> dict[str, str]:
    """sha256 of every file (hidden ones included) under ``folders``: equal snapshots = nothing written or changed."""
    out = {}
    for folder in folders:
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file():
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def refused(argv: list[str], capsys, *words: str) -> str:
    """Run ``zoo ARGV`` in-process; assert exit code 2 and one stderr line holding every word; return it."""
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    captured = capsys.readouterr()
    err = captured.err
    assert rc == 2, f"exit code {rc} for {argv}: {err or captured.out}"
    assert err.count("\n") == 1 and err.startswith("zoo "), f"not one line: {err!r}"
    assert "Traceback" not in err
    for word in words:
        assert word.lower() in err.lower(), f"{word!r} not in {err!r}"
    return err
