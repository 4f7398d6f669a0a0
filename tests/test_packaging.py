"""The install exposes one import package, ``zoo``, holding every source file of the repository's folders."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = {"zoo": "zoo", "models": "zoo/models", "eval": "zoo/eval", "export": "zoo/export"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the sources (so no build/ or egg-info lands in the checkout), offline."""
    if shutil.which("git") is None:
        pytest.skip("git is needed to list the tracked files")
    src = tmp_path_factory.mktemp("src")
    tracked = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout.split()
    for rel in tracked:
        if rel.split("/")[0] in (*SOURCES, "pyproject.toml", "README.md") and (REPO / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, src / rel)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out)], check=True, capture_output=True)
    (path,) = out.glob("effzoo-*.whl")
    return path


def test_the_wheel_installs_exactly_one_top_level_package_zoo(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"zoo"}
    (info,) = [t for t in top if t.endswith(".dist-info")]
    assert zipfile.ZipFile(wheel).read(f"{info}/top_level.txt").decode().split() == ["zoo"]
    entry_points = zipfile.ZipFile(wheel).read(f"{info}/entry_points.txt").decode()
    assert "zoo = zoo.cli:main" in entry_points


def test_every_source_file_is_in_the_wheel_under_zoo(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", *SOURCES], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.split()
    expected = set()
    for rel in tracked:
        if rel.endswith(".py"):
            folder, _, rest = rel.partition("/")
            expected.add(f"{SOURCES[folder]}/{rest}")
    missing = sorted(expected - names)
    assert not missing, f"not packaged (add the package to pyproject's packages list): {missing[:10]}"
