"""LeYOLO architecture: parameter counts and state_dict layout vs the official models, head maths, fuse().

Expected numbers come from the spec (leyolo.md §3-§5) and the official fixtures in
../shared/reference/leyolo (param_counts.json, nano_state_shapes.json), never from this code.
"""
from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from torch import nn
from zoo.models.leyolo.blocks import Conv
from zoo.models.leyolo.head import Detect
from zoo.models.leyolo.model import LeYOLO, LeYOLOConfig

import zoo
from tests.conftest import reference_file

# spec §5.1: total params, state_dict entries, BatchNorm layers, params after the official fuse() (§4).
SPEC = {
    "leyolo-nano": dict(params=1_120_480, keys=651, bns=94, fused=1_119_040, layers=36, official="nano"),
    "leyolo-small": dict(params=1_917_440, keys=651, bns=94, fused=1_915_952, layers=36, official="small"),
    "leyolo-medium": dict(params=2_402_744, keys=798, bns=115, fused=2_401_256, layers=43, official="medium"),
    "leyolo-large": dict(params=2_402_744, keys=798, bns=115, fused=2_401_256, layers=43, official="medium"),
}


@pytest.fixture(scope="module")
def models() -> dict[str, LeYOLO]:
    return {name: zoo.create_model(name) for name in SPEC}


@pytest.fixture(scope="module")
def param_counts() -> dict:
    return json.loads(reference_file("leyolo", "param_counts.json").read_text())["variants"]


def _randomise_bn(model: nn.Module, seed: int = 0) -> None:
    """Give every BatchNorm non-trivial statistics so that fusing is actually exercised."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.data = 0.5 + torch.rand(c, generator=gen)
            m.bias.data = 0.2 * torch.randn(c, generator=gen)
            m.running_mean = 0.2 * torch.randn(c, generator=gen)
            m.running_var = 0.5 + torch.rand(c, generator=gen)


def test_leyolo_family_is_registered():
    assert zoo.list_models("leyolo-*") == ["leyolo-large", "leyolo-medium", "leyolo-nano", "leyolo-small"]


@pytest.mark.parametrize("name", SPEC)
def test_param_count_and_state_dict_size_match_spec(name, models):
    model, spec = models[name], SPEC[name]
    assert sum(p.numel() for p in model.parameters()) == spec["params"]
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == spec["params"] - 16  # frozen DFL
    assert len(model.state_dict()) == spec["keys"]
    assert len(model.model) == spec["layers"]
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == spec["bns"]
    assert all(m.eps == 1e-3 and m.momentum == 0.03 for m in bns)  # the released checkpoint's BN numerics
    assert zoo.model_info(name).n_params == spec["params"]


@pytest.mark.parametrize("name", ["leyolo-nano", "leyolo-small", "leyolo-medium"])
def test_per_layer_params_match_official(name, models, param_counts):
    official = param_counts[SPEC[name]["official"]]
    ours = [sum(p.numel() for p in layer.parameters()) for layer in models[name].model]
    assert ours == [layer["params"] for layer in official["layers"]]
    assert sum(ours) == official["total_params"]


def test_nano_state_dict_keys_and_shapes_equal_official(models):
    official = json.loads(reference_file("leyolo", "nano_state_shapes.json").read_text())
    ours = {k: list(v.shape) for k, v in models["leyolo-nano"].state_dict().items()}
    assert list(ours) == list(official)  # same keys in the same order
    assert ours == {k: v["shape"] for k, v in official.items()}


def test_medium_and_large_are_the_same_network(models):
    medium, large = models["leyolo-medium"].state_dict(), models["leyolo-large"].state_dict()
    assert {k: v.shape for k, v in medium.items()} == {k: v.shape for k, v in large.items()}
    assert zoo.model_info("leyolo-large").input_size == 768


def test_medium_head_reads_as_released_layers_and_dead_layers_get_no_gradient(models):
    model = models["leyolo-medium"]
    head = model.model[42]
    assert isinstance(head, Detect) and head.channels == (48, 88, 256)  # spec §2.8: Detect from [27, 32, 37]
    assert model.dead_layer_indices == (38, 39, 40, 41)
    assert sum(p.numel() for i in model.dead_layer_indices for p in model.model[i].parameters()) == 298_072
    model = copy.deepcopy(model).train()
    sum(r.sum() for r in model(torch.rand(1, 3, 64, 64))).backward()
    for i, layer in enumerate(model.model):
        for p in layer.parameters():
            if p.requires_grad:
                assert (p.grad is None) == (i in model.dead_layer_indices), f"layer {i}"


def test_nano_every_trainable_parameter_gets_a_gradient(models):
    model = copy.deepcopy(models["leyolo-nano"]).train()
    sum(r.sum() for r in model(torch.rand(2, 3, 64, 96))).backward()
    assert models["leyolo-nano"].dead_layer_indices == ()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_train_forward_returns_three_raw_maps(models):
    model = models["leyolo-small"].train()
    raw = model(torch.rand(2, 3, 96, 160))
    assert [tuple(r.shape) for r in raw] == [(2, 144, 12, 20), (2, 144, 6, 10), (2, 144, 3, 5)]
    assert model.stride.tolist() == [8.0, 16.0, 32.0]


def test_eval_forward_returns_decoded_tensor_and_raw_on_request(models):
    model = models["leyolo-nano"].eval()
    x = torch.rand(1, 3, 320, 320)
    with torch.no_grad():
        y = model(x)
        y2, raw = model(x, return_raw=True)
    assert isinstance(y, torch.Tensor) and tuple(y.shape) == (1, 84, 2100)  # spec §5.2: A = 2100 at 320
    assert torch.equal(y, y2)
    assert [tuple(r.shape) for r in raw] == [(1, 144, 40, 40), (1, 144, 20, 20), (1, 144, 10, 10)]
    scores = y[:, 4:]
    assert scores.min() >= 0 and scores.max() <= 1
    assert model.names[0] == "person" and model.names[79] == "toothbrush" and model.num_classes == 80


def test_decode_follows_dfl_anchor_formula():
    """One-hot DFL logits give integer distances; boxes must be (anchor +- distance) * stride."""
    head = Detect(2, (8, 8, 8)).eval()
    raw = [torch.zeros(1, 64 + 2, s, s) for s in (4, 2, 1)]
    big = 50.0  # softmax of a 50-logit gap is one-hot to ~1e-21
    ltrb = (1, 2, 3, 4)
    for r in raw:
        for side, dist in enumerate(ltrb):
            r[0, side * 16 + dist] = big
    raw[1][0, 64 + 1, 1, 0] = math.log(3.0)  # class-1 score sigmoid(ln 3) = 0.75 at level 1, row 1, col 0
    y = head.decode(raw)
    assert tuple(y.shape) == (1, 6, 16 + 4 + 1)
    # level 1 (stride 16), row 1, col 0 -> anchor index 16 + 1*2 + 0; anchor (0.5, 1.5)
    a = 18
    x1, y1, x2, y2 = 0.5 - 1, 1.5 - 2, 0.5 + 3, 1.5 + 4
    expected = torch.tensor([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]) * 16
    torch.testing.assert_close(y[0, :4, a], expected, atol=1e-5, rtol=0)
    assert y[0, 5, a].item() == pytest.approx(0.75, abs=1e-6)
    assert y[0, 4, a].item() == pytest.approx(0.5, abs=1e-6)


def test_head_bias_init_matches_spec():
    head = zoo.create_model("leyolo-nano").head
    for level, expected in enumerate((-11.5366, -10.1503, -8.7641)):  # spec §2.6, nc = 80
        assert torch.allclose(head.cv3[level][-1].bias, torch.full((80,), expected), atol=1e-4)
        assert torch.equal(head.cv2[level][-1].bias, torch.ones(64))
    assert head.dfl.conv.weight.flatten().tolist() == list(range(16))
    assert not head.dfl.conv.weight.requires_grad


@pytest.mark.parametrize("num_classes,c_cls", [(1, 32), (3, 32), (80, 80), (150, 100)])
def test_any_num_classes_rebuilds_the_head(num_classes, c_cls):
    model = zoo.create_model("leyolo-nano", num_classes=num_classes).eval()
    # spec §2.6: class width c3 = max(ch0, min(nc, 100)), ch0 = 32 for Nano
    assert model.head.cv3[0][0].conv.weight.shape[0] == c_cls
    assert model.head.cv3[2][-1].weight.shape[0] == num_classes
    with torch.no_grad():
        assert tuple(model(torch.rand(1, 3, 64, 32)).shape) == (1, 4 + num_classes, 32 + 8 + 2)
    assert len(model.names) == num_classes and model.num_classes == num_classes


def test_names_must_match_num_classes():
    model = zoo.create_model("leyolo-nano", num_classes=2, names=["cat", "dog"])
    assert model.names == ("cat", "dog")
    with pytest.raises(ValueError, match="num_classes=3"):
        zoo.create_model("leyolo-nano", num_classes=3, names=["cat", "dog"])


def test_reset_head_for_fine_tuning():
    model = zoo.create_model("leyolo-nano").reset_head(5, names=list("abcde"))
    assert model.num_classes == 5 and model.config.num_classes == 5 and model.names == tuple("abcde")
    # Hand count (spec §2.6): box branches 64*x + 5,696 per level; class width c3 = max(32, 5) = 32, so a
    # class branch is 32*x + 2*32 (1x1 + BN) + 2*(9*32 + 2*32) (two dw 3x3 + BN) + 32*5 + 5; DFL 16.
    widths = (32, 64, 96)
    expected = sum(64 * x + 5_696 for x in widths) + sum(32 * x + 64 + 2 * (288 + 64) + 165 for x in widths) + 16
    assert sum(p.numel() for p in model.head.parameters()) == expected == 38_335


@pytest.mark.parametrize("shape,match", [((1, 3, 100, 64), "multiples of 32"), ((1, 3, 64, 48), "multiples of 32"),
                                         ((1, 1, 64, 64), r"\(B, 3, H, W\)"), ((3, 64, 64), r"\(B, 3, H, W\)")])
def test_bad_input_shape_raises_clear_error(models, shape, match):
    with pytest.raises(ValueError, match=match):
        models["leyolo-nano"](torch.rand(*shape))


def test_fuse_folds_only_the_stock_convs_and_keeps_outputs(models):
    """Fusing is exact maths: in float64 outputs agree far below 1e-5; in float32 within rounding."""
    base = copy.deepcopy(models["leyolo-nano"])
    _randomise_bn(base)
    base.double().eval()
    x = torch.rand(2, 3, 96, 64, dtype=torch.float64)
    with torch.no_grad():
        y, raw = base(x, return_raw=True)
        fused = copy.deepcopy(base)
        assert fused.fuse() is fused and fused.is_fused and not base.is_fused
        yf, rawf = fused(x, return_raw=True)
    assert (yf - y).abs().max().item() <= 1e-5
    assert max((a - b).abs().max().item() for a, b in zip(raw, rawf)) <= 1e-5
    # The official fuse() folds SPPF (2 Convs) and the head (18 Convs); mn_conv/bottleneck BNs stay.
    assert sum(isinstance(m, nn.BatchNorm2d) for m in fused.modules()) == 94 - 20
    assert sum(p.numel() for p in fused.parameters()) == SPEC["leyolo-nano"]["fused"]
    assert all(m.is_fused for m in fused.modules() if isinstance(m, Conv))
    # float32: same check at float32 rounding of the raw logits
    f32, f32_fused = copy.deepcopy(base).float(), copy.deepcopy(fused).float()
    with torch.no_grad():
        r32, r32f = f32(x.float(), return_raw=True)[1], f32_fused(x.float(), return_raw=True)[1]
    assert max((a - b).abs().max().item() for a, b in zip(r32, r32f)) <= 1e-4


@pytest.mark.parametrize("name", ["leyolo-small", "leyolo-medium"])
def test_fused_param_counts_match_spec(name, models):
    fused = copy.deepcopy(models[name]).fuse()
    assert sum(p.numel() for p in fused.parameters()) == SPEC[name]["fused"]


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="num_classes"):
        LeYOLOConfig(num_classes=0)
    with pytest.raises(ValueError, match="stage_depths"):
        LeYOLOConfig(stage_depths=(2, 0, 4))
    # ultralytics make_divisible is a ceiling: spec §2.1 width-1.33 mapping
    cfg = LeYOLOConfig.small()
    assert [cfg.channels(c) for c in (16, 32, 64, 96, 128, 192, 576, 1000)] == [24, 48, 88, 128, 176, 256, 768, 768]


def test_dfl_explicit_softmax_form_equals_the_softmax_form():
    """The exporter's DFL (exp / sum, no Softmax node) computes the official expectation; large logits included."""
    from zoo.models.leyolo.head import DFL

    dfl = DFL(16)
    x = torch.randn(2, 64, 300, generator=torch.Generator().manual_seed(0)) * torch.tensor([1.0, 40.0]).view(2, 1, 1)
    probs = x.view(2, 4, 16, 300).softmax(2)
    expected = (probs * torch.arange(16.0).view(1, 1, 16, 1)).sum(2)  # E[bin] of the softmax, written by hand
    plain = dfl(x)
    dfl.explicit_softmax = True
    assert torch.allclose(dfl(x), expected, atol=1e-5) and torch.allclose(plain, expected, atol=1e-5)


def test_export_uses_the_explicit_dfl_and_leaves_the_callers_model_alone(tmp_path):
    import onnx
    from zoo.export import export_onnx

    model = zoo.create_model("leyolo-nano").eval()
    result = export_onnx(model, "cpu", imgsz=64, batch=1, out=tmp_path / "n.onnx")
    ops = {n.op_type for n in onnx.load(str(result.path)).graph.node}
    assert "Softmax" not in ops and "Exp" in ops and result.parity.passed
    assert not any(getattr(m, "explicit_softmax", False) for m in model.modules())
