"""Shared fixtures. ``reference`` points at ../shared/reference and skips cleanly when it is absent."""
from __future__ import annotations

import json
import os
import shutil
import sysconfig
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EFFZOO_SHARED", REPO.parent / "shared"))


def reference_file(*parts: str) -> Path:
    """Path of a fixture under ../shared/reference; skips the test when it is not there."""
    path = SHARED.joinpath("reference", *parts)
    if not path.exists():
        pytest.skip(f"reference fixture {path} not available")
    return path


@pytest.fixture(scope="session")
def nano_checkpoint() -> Path:
    return reference_file("leyolo", "LeYOLONano.pt")


@pytest.fixture(scope="session")
def nano_golden() -> dict:
    return json.loads(reference_file("leyolo", "nano_golden.json").read_text())


@pytest.fixture(scope="session")
def bus_image() -> Path:
    return reference_file("leyolo", "bus.jpg")


@pytest.fixture(autouse=True)
def _deterministic_threads():
    """Keep tests reproducible on CI's 2 cores (and not oversubscribed when run beside other jobs)."""
    torch.manual_seed(0)
    yield


@pytest.fixture
def one_torch_thread():
    """One intra-op thread: on a shared 2-core machine two OpenMP threads per process thrash (5-10x slower)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory) -> Path:
    """40 small real standard-library modules (~280 KB), so tiny LM runs read real code quickly."""
    root = Path(sysconfig.get_paths()["stdlib"])
    out = tmp_path_factory.mktemp("corpus")
    small = [p for p in sorted(root.glob("*.py")) if 2_000 < p.stat().st_size < 12_000][:40]
    for path in small:
        shutil.copyfile(path, out / path.name)
    return out
