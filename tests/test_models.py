"""Every registered model, as timm's tests/test_models.py does: a new registration is covered without a test.

For each name in ``zoo.list_models()``: a tiny forward; a backward that reaches every parameter the forward
uses (and none of the card's ``unused_modules``, LeYOLO-Medium/Large's dead neck blocks); the card's
parameter count against an independent source (the official per-layer counts, or the PI spec's
closed-form formula) and against the traced model; the card's paper GFLOPs against ``count_flops`` on a
fresh build. GPT-2-small-sized presets run a short forward by default and their backward is ``slow``.
"""
from __future__ import annotations

import json

import pytest
import torch
from conftest import reference_file

import zoo
from zoo.models.pi_transformer.census import param_count
from zoo.tasks import get_task

ALL = zoo.list_models()
LARGE = {n for n in ALL if zoo.model_info(n).n_params > 20_000_000}  # GPT-2 small and small-l18 presets
SMALL_INPUT = {"imgsz": 64, "seq_len": 8}  # 64 px: two cells at stride 32; 8 tokens
# Paper GFLOPs carry two decimals, and the spec (leyolo.md §4) shows that two of them are not the rounded
# official count: Nano@480 (1.4856 vs 1.47, 1.1 %) and Medium@640 (5.8177 vs 5.80, 0.3 %).
PAPER_GFLOPS_RTOL = 0.012


def _small_model(name: str) -> tuple[torch.nn.Module, torch.Tensor]:
    card = zoo.model_info(name)
    task = get_task(card.task)
    size = SMALL_INPUT[task.size_arg]
    overrides = {"vocab_size": 512} if name in LARGE else {}  # a GPT-2-sized vocabulary only costs memory
    model = zoo.create_model(name, **overrides)
    x = task.example_input(size, 1)
    if x.dtype == torch.long:
        x = torch.randint(0, getattr(model.config, "vocab_size", 2), x.shape, generator=torch.Generator().manual_seed(0))
    else:
        x = torch.rand(x.shape, generator=torch.Generator().manual_seed(0))
    return model, x


def _float_sum(out) -> torch.Tensor:
    """Sum of every floating tensor in a model output (a tensor, a list/tuple of them, or ``.logits``)."""
    if hasattr(out, "logits"):
        out = out.logits
    if isinstance(out, (list, tuple)):
        return sum(_float_sum(o) for o in out)
    return out.float().sum()


def _unused(name: str, param: str) -> bool:
    return any(param == m or param.startswith(m + ".") for m in zoo.model_info(name).unused_modules)


@pytest.mark.parametrize("name", ALL)
def test_tiny_forward_is_finite_and_shaped_by_its_task(name):
    model, x = _small_model(name)
    with torch.no_grad():
        out = model.eval()(x)
    out = out[0] if isinstance(out, (tuple, list)) else out
    assert out.shape[0] == 1 and torch.isfinite(out).all()
    if x.dtype == torch.long:  # (B, T, V) logits
        assert out.shape[:2] == x.shape
    else:  # (B, 4 + nc, anchors): 64 px at strides 8/16/32 -> 64 + 16 + 4 anchors
        assert out.shape == (1, 4 + model.num_classes, 84)


def _backward_case(name: str):
    return pytest.param(name, marks=pytest.mark.slow) if name in LARGE else name


@pytest.mark.parametrize("name", [_backward_case(n) for n in ALL])
def test_backward_reaches_every_used_parameter_and_no_unused_one(name):
    model, x = _small_model(name)
    _float_sum(model.train()(x)).backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    missing = [n for n, p in trainable if p.grad is None and not _unused(name, n)]
    leaked = [n for n, p in trainable if p.grad is not None and _unused(name, n)]
    assert not missing, f"{name}: no gradient for {missing[:5]}"
    assert not leaked, f"{name}: unused_modules got a gradient: {leaked[:5]}"
    assert all(torch.isfinite(p.grad).all() for _, p in trainable if p.grad is not None)


def _official_params(variant: str) -> int:
    """Total parameters the official code counted for ``variant`` (nano/small/medium/large)."""
    data = json.loads(reference_file("leyolo", "param_counts.json").read_text())
    return int(data["variants"][variant]["total_params"])


@pytest.mark.parametrize("name", ALL)
def test_card_param_count_matches_an_independent_source_and_the_traced_model(name):
    card = zoo.model_info(name)
    if card.family == "leyolo":
        # official code's count; Large is the Medium YAML (param_counts.json says so) run at 768
        assert card.n_params == _official_params(name.removeprefix("leyolo-").replace("large", "medium"))
    else:
        with torch.device("meta"):
            model = card.builder()
        assert card.n_params == param_count(model.config).model  # spec pi_transformer.md §7 closed form
    task = get_task(card.task)
    with torch.device("meta" if task.trace_on_meta else "cpu"):
        fresh = zoo.create_model(name)
    result = zoo.count_flops(fresh, task.example_input(card.input_size, 1).to(
        "meta" if task.trace_on_meta else "cpu"), fused=False)
    assert result.module("").params == card.n_params


PAPER_GFLOPS = [(n, int(k.split("@")[1]), v) for n in ALL for k, v in zoo.model_info(n).paper.items()
                if k.startswith("gflops@")]


@pytest.mark.parametrize("name, imgsz, paper", PAPER_GFLOPS)
def test_card_paper_gflops_match_count_flops_on_a_fresh_build(name, imgsz, paper):
    card = zoo.model_info(name)
    result = zoo.count_flops(zoo.create_model(name), get_task(card.task).example_input(imgsz, 1))
    assert result.gflops == pytest.approx(paper, rel=PAPER_GFLOPS_RTOL)
    # FLOPs and MACs are separate fields: paper FLOPs = 2 x MACs + BatchNorm/upsample FLOPs, never GMACs
    assert result.gflops > 2 * result.gmacs > 0


def test_flop_units_do_not_follow_the_convention():
    """Under convention='macs' the total is MACs, but ``gflops`` still holds GFLOPs (2 x GMACs for resnet18)."""
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.resnet18()
    macs = zoo.count_flops(model, torch.zeros(1, 3, 224, 224), convention="macs", fused=False)
    assert macs.unit == "MACs" and macs.total == macs.macs == 1_814_073_344  # torchvision's documented 1.81 GMACs
    assert macs.gmacs == pytest.approx(1.814073344) and macs.gflops > 2 * macs.gmacs
    assert macs.to_dict()["gflops"] == macs.gflops and macs.to_dict()["gmacs"] == macs.gmacs


def test_every_card_names_a_registered_task_and_a_positive_input_size():
    for name in ALL:
        card = zoo.model_info(name)
        assert get_task(card.task).name == card.task
        assert card.input_size in card.input_sizes and all(s > 0 for s in card.input_sizes)
