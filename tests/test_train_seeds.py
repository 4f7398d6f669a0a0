"""benchmarks/train_seeds.py: the seed statistics and the refusal of unfinished runs (no training here)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def seeds():
    spec = importlib.util.spec_from_file_location("train_seeds", REPO / "benchmarks" / "train_seeds.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_summary_is_mean_and_sample_std_over_seeds(seeds):
    rows = [{"seed": s, "mAP50-95": m, "mAP50": m + 0.1, "wall_s": w}
            for s, m, w in [(0, 0.25, 100.0), (1, 0.29, 110.0), (2, 0.27, 90.0)]]
    out = seeds.summarize(rows)
    values = np.array([0.25, 0.29, 0.27])
    assert out["mAP50-95"]["mean"] == pytest.approx(values.mean())
    assert out["mAP50-95"]["std"] == pytest.approx(values.std(ddof=1))  # 0.02
    assert out["mAP50"]["mean"] == pytest.approx(values.mean() + 0.1)
    assert "0.2700 ± 0.0200" in seeds.markdown("t", rows, out)


def test_unfinished_run_is_refused_with_exit_code_2(seeds, tmp_path, capsys):
    run = tmp_path / "seed0"
    (run / "weights").mkdir(parents=True)
    (run / "args.yaml").write_text("epochs: 8\n")
    (run / "results.csv").write_text("epoch,iteration\n1,32\n")
    (run / "weights" / "last.safetensors").write_bytes(b"")
    assert seeds.main(["--runs", str(run)]) == 2
    assert "not a finished run" in capsys.readouterr().err
