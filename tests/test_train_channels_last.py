"""channels_last training: the same network and loss as NCHW (only float rounding differs), weights saved usable."""
from __future__ import annotations

import json

import pytest
import torch

import zoo

FAST = dict(imgsz=64, batch=4, workers=0, device="cpu", optimizer="AdamW", lr0=0.003, lrf=0.1, warmup_epochs=0.0,
            warmup_steps=2, nbs=0, plots=False, ema_tau=10.0, epochs=1, val=False, mosaic=0.0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from zoo.eval.datasets.synthetic import SyntheticConfig, generate

    return generate(tmp_path_factory.mktemp("data") / "shapes",
                    SyntheticConfig(num_train=8, num_val=2, image_size=64, min_size=10, max_size=30, seed=1))


def _losses(run) -> list[list[float]]:
    rows = [json.loads(line) for line in (run / "steps.jsonl").read_text().splitlines()]
    return [[r["box_loss"], r["cls_loss"], r["dfl_loss"]] for r in rows]


def test_channels_last_run_follows_the_nchw_run(tmp_path, tiny):
    torch.set_num_threads(1)
    a = zoo.train("leyolo-nano", data=str(tiny), out=str(tmp_path / "a"), **FAST)
    b = zoo.train("leyolo-nano", data=str(tiny), out=str(tmp_path / "b"), channels_last=True, **FAST)
    la, lb = _losses(tmp_path / "a"), _losses(tmp_path / "b")
    assert len(la) == len(lb) == 2
    assert la[0] == pytest.approx(lb[0], rel=1e-4)  # same initial weights and batch: same loss up to rounding
    assert la[1] == pytest.approx(lb[1], rel=1e-2)  # after one AdamW step rounding has been amplified a little
    model = zoo.create_model("leyolo-nano", checkpoint_path=b.last)
    assert all(p.is_contiguous() for p in model.parameters())
    ref = zoo.create_model("leyolo-nano", checkpoint_path=a.last)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model.eval()(x)[0], ref.eval()(x)[0], atol=1e-2, rtol=1e-2)
