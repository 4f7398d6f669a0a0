"""zoo.count_flops / zoo.count_nonlinear against independent numbers: the LeYOLO spec tables (thop, official
code), torchvision's documented resnet18 cost, torch's FlopCounterMode, fvcore itself, and hand arithmetic."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import zoo
from zoo.cli import main as cli_main
from zoo.flops import count_flops, count_nonlinear

# spec leyolo.md §4: (variant, imgsz) -> (measured fused, measured unfused) GFLOPs, paper convention
SPEC_GFLOPS = {
    ("leyolo-nano", 320): (0.6603, 0.6677),
    ("leyolo-nano", 480): (1.4856, 1.5022),
    ("leyolo-nano", 640): (2.6411, 2.6706),
    ("leyolo-small", 480): (2.5343, 2.5510),
    ("leyolo-small", 640): (4.5055, 4.5351),
    ("leyolo-medium", 640): (5.8177, 5.8474),
    ("leyolo-large", 768): (8.3775, 8.4202),
}
# spec §3 / §5.1: totals @640 to six decimals (unfused, fused)
SPEC_GFLOPS_640_6DP = {"leyolo-nano": (2.670618, 2.641126), "leyolo-small": (4.535117, 4.505472),
                       "leyolo-medium": (5.847386, 5.817741)}

_models: dict[str, nn.Module] = {}
_results: dict[tuple[str, int, bool], zoo.FlopResult] = {}


def leyolo_result(name: str, imgsz: int, fused: bool) -> zoo.FlopResult:
    """Paper-convention count at the real size, traced once per (variant, size, fused) for the whole module."""
    key = (name, imgsz, fused)
    if key not in _results:
        if name not in _models:
            _models[name] = zoo.create_model(name)
        _results[key] = count_flops(_models[name], torch.zeros(1, 3, imgsz, imgsz), fused=fused)
    return _results[key]


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "unfused"])
@pytest.mark.parametrize("name,imgsz", list(SPEC_GFLOPS))
def test_leyolo_paper_gflops_match_spec_table(name, imgsz, fused):
    result = leyolo_result(name, imgsz, fused)
    expected = SPEC_GFLOPS[(name, imgsz)][0 if fused else 1]
    assert result.convention == "paper" and result.unit == "FLOPs"
    assert result.fused is fused
    assert result.gflops == pytest.approx(expected, rel=1e-4)
    assert result.unsupported == {}


@pytest.mark.parametrize("name", list(SPEC_GFLOPS_640_6DP))
def test_leyolo_totals_at_640_match_spec_to_six_decimals(name):
    unfused, fused = SPEC_GFLOPS_640_6DP[name]
    assert abs(leyolo_result(name, 640, True).gflops - fused) <= 5e-7
    assert abs(leyolo_result(name, 640, False).gflops - unfused) <= 5e-7


def test_medium_dead_layers_are_counted_like_thop():
    # spec §2.8: layers 38-41 run but feed nothing; the tracer would prune them, thop counts them (0.2403 @640)
    result = leyolo_result("leyolo-medium", 640, True)
    dead = sum(result.module(f"model.{i}").flops for i in (38, 39, 40, 41))
    assert dead / 1e9 == pytest.approx(0.2403, abs=5e-5)
    assert result.module("model.42").flops / 1e9 == pytest.approx(0.3795, abs=5e-5)  # fused Detect row, spec §3
    assert result.module("model.0").flops / 1e9 == pytest.approx(0.1524, abs=5e-5)


def test_paper_operator_breakdown_follows_thop_rules():
    result = leyolo_result("leyolo-nano", 320, True)
    census = result.nonlinear
    # BatchNorm: 4 ops per element (affine), x2; nearest upsample: output elements, x2; conv: 2 x MACs
    assert result.by_operator["batch_norm"] == 8 * census.by_kind["batch_norm"]
    assert result.by_operator["conv"] == 2 * result.macs
    # upsample outputs of Nano @320: 96x20x20 and 64x40x40 (spec §3 widths)
    assert result.by_operator["upsample_nearest2d"] == 2 * (96 * 20 * 20 + 64 * 40 * 40)
    assert set(result.by_operator) == {"conv", "batch_norm", "upsample_nearest2d"}
    assert result.total == sum(result.by_operator.values())
    # detector head census: nc x A sigmoids and 4 x 16 x A softmax elements (A = 2100 at 320)
    assert census.by_kind["sigmoid"] == 80 * 2100
    assert census.by_kind["softmax"] == 4 * 16 * 2100 and census.rows["softmax"] == 4 * 2100


def test_resnet18_macs_exact():
    model = torchvision.models.resnet18()
    result = count_flops(model, torch.zeros(1, 3, 224, 224), convention="macs")
    assert result.total == 1_814_073_344 == result.macs
    assert result.unit == "MACs"
    assert result.by_operator == {"conv": 1_813_561_344, "linear": 512_000}


class ConvLinearNet(nn.Module):
    """Strided, grouped, dilated, transposed and 1-D convs, and linears on 2-D and 3-D inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.c2 = nn.Conv2d(8, 16, 3, padding=2, dilation=2, groups=4, bias=False)
        self.up = nn.ConvTranspose2d(16, 4, 4, stride=2, padding=1)
        self.c1d = nn.Conv1d(4, 6, 5)
        self.fc_seq = nn.Linear(28, 10)
        self.fc = nn.Linear(60, 3)

    def forward(self, x):
        x = self.up(self.c2(self.c1(x)))  # (B, 4, 32, 32)
        x = self.c1d(x.flatten(2)[..., :32])  # (B, 6, 28)
        return self.fc(self.fc_seq(x).flatten(1))  # (B, 3)


def test_macs_match_torch_flop_counter_mode_exactly():
    model = ConvLinearNet().eval()
    x = torch.randn(2, 3, 32, 32)
    with FlopCounterMode(display=False) as mode:
        model(x)
    result = count_flops(model, x, convention="macs")
    assert 2 * result.total == mode.get_total_flops()
    assert count_flops(model, x).total == mode.get_total_flops()  # paper = 2 x MACs without BN/upsample


def test_fvcore_convention_reproduces_flop_count_analysis():
    from fvcore.nn import FlopCountAnalysis

    model = torchvision.models.resnet18().eval()
    x = torch.zeros(1, 3, 64, 64)
    reference = FlopCountAnalysis(model, x).unsupported_ops_warnings(False)
    result = count_flops(model, x, convention="fvcore", fused=False)
    assert result.total == reference.total()
    assert result.unsupported == dict(reference.unsupported_ops())


class CensusNet(nn.Module):
    """Linear -> GELU -> LayerNorm -> attention (explicit softmax + causal SDPA) -> SiLU -> image ops."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 16)
        self.act = nn.GELU()
        self.ln = nn.LayerNorm(16)
        self.attn = Attention()
        self.rms = nn.RMSNorm(16)
        self.pool = nn.MaxPool2d(3, stride=1, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.gn = nn.GroupNorm(4, 16)
        self.tail = nn.Sequential(nn.ReLU6(), nn.LeakyReLU(0.1), nn.Hardswish())

    def forward(self, x):  # x: (2, 6, 8)
        h = self.rms(F.silu(self.attn(self.ln(self.act(self.fc(x))))))  # (2, 6, 16)
        img = h.transpose(1, 2).reshape(2, 16, 2, 3)
        img = self.gn(self.bn(self.pool(img)))
        return torch.sigmoid(self.tail(img))


class Attention(nn.Module):
    def forward(self, x):  # (B, T, 16) -> two heads of 8
        q = x.view(2, 6, 2, 8).transpose(1, 2)  # (B, H, T, hs)
        probs = (q @ q.transpose(-1, -2) / math.sqrt(8)).softmax(-1)  # (B, H, T, T)
        y = probs @ q + F.scaled_dot_product_attention(q, q, q, is_causal=True)
        return y.transpose(1, 2).reshape(2, 6, 16)


def test_census_of_hand_built_module_matches_arithmetic():
    n = 2 * 6 * 16  # every activation tensor in CensusNet has 192 elements
    census = count_nonlinear(CensusNet(), torch.randn(2, 6, 8))
    assert census.by_kind == {
        "gelu": n, "layer_norm": n, "silu": n, "rms_norm": n, "batch_norm": n, "group_norm": n,
        "relu": 2 * n,  # relu6 + leaky_relu
        "hardswish": n, "sigmoid": n,
        "softmax": 2 * (2 * 2 * 6 * 6),  # explicit + SDPA: B*H*T*T each
        "max_pool": n * (3 * 3 - 1),  # 8 comparisons per output
    }
    assert census.rows == {"softmax": 2 * (2 * 2 * 6), "layer_norm": 12, "rms_norm": 12, "group_norm": 2 * 4}
    assert census.softmax_valid == 2 * 2 * 6 * 6 + 2 * 2 * (6 * 7 // 2)  # causal SDPA keeps T(T+1)/2 per head
    assert census.total == sum(census.by_kind.values())
    # per module: the attention softmaxes live in the custom module; the Sequential holds relu x2 + hardswish
    assert census.by_module["attn"] == {"softmax": 288}
    assert census.count("relu", "tail") == 2 * n and census.count("hardswish", "tail.2") == n
    assert census.count("sigmoid", "tail") == 0 and census.count("sigmoid") == n
    with pytest.raises(KeyError, match="Did you mean 'attn'"):
        census.count("softmax", "atn")


def test_census_and_macs_of_attention_match_arithmetic():
    result = count_flops(CensusNet(), torch.randn(2, 6, 8), convention="macs")
    linear = 2 * 6 * 8 * 16
    explicit = 2 * (2 * 2 * 6 * 6 * 8)  # Q K^T and A V
    sdpa = 2 * 2 * 6 * 6 * (8 + 8)
    assert result.by_operator == {"linear": linear, "matmul": explicit, "scaled_dot_product_attention": sdpa}
    paper = count_flops(CensusNet(), torch.randn(2, 6, 8))
    norms = 4 * (2 * 192 * 2)  # LayerNorm, RMSNorm, BatchNorm, GroupNorm: 2 x numel x 2 (affine) each
    assert paper.total == 2 * (linear + explicit + sdpa + norms)


def test_pi_transformer_census_matches_spec_section_7_formulas():
    model = zoo.create_model("pi-gpt2-tiny-sm-ln-g")  # L4 H4 d128 d_ff 512, T = 64
    L, H, d, d_ff, T = 4, 4, 128, 512, 64
    census = count_nonlinear(model, torch.zeros(1, T, dtype=torch.long))
    assert census.by_kind["softmax"] == L * H * T * T
    assert census.softmax_valid == L * H * T * (T + 1) // 2
    assert census.by_kind["layer_norm"] == 2 * L * T * d + T * d  # blocks + final LayerNorm (listed apart in §7)
    assert census.by_kind["gelu"] == L * T * d_ff
    assert census.count("layer_norm", "ln_f") == T * d


class SelfAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(16, 4, batch_first=True)

    def forward(self, x):
        return self.mha(x, x, x, need_weights=False)[0]


def test_multihead_attention_fast_path_is_counted_through_its_math():
    # eval + no_grad makes nn.MultiheadAttention call one opaque fused kernel; the count must not change
    model, x = SelfAttention().eval(), torch.randn(2, 5, 16)
    with torch.no_grad():
        result = count_flops(model, x, convention="macs")
    b, t, e, h = 2, 5, 16, 4
    assert result.unsupported == {}
    assert result.total == b * t * e * 3 * e + b * h * t * t * 2 * (e // h) + b * t * e * e
    assert result.nonlinear.by_kind == {"softmax": b * h * t * t}


class Odd(nn.Module):
    def forward(self, x):
        return x.cumprod(-1) + x.cumprod(0)


def test_unsupported_ops_are_listed_not_dropped():
    result = count_flops(Odd(), torch.ones(3, 4))
    assert result.unsupported == {"aten::cumprod": 2}
    assert "unsupported (not counted): aten::cumprod x2" in result.table()
    fv = count_flops(Odd(), torch.ones(3, 4), convention="fvcore")  # fvcore also has no rule for add
    assert fv.unsupported == {"aten::add": 1, "aten::cumprod": 2}


def test_table_and_to_dict_content():
    result = count_flops(CensusNet(), torch.randn(2, 6, 8), convention="macs")
    data = json.loads(json.dumps(result.to_dict()))
    assert data["total"] == result.total and data["convention"] == "macs" and data["unit"] == "MACs"
    assert data["modules"][0] == {"name": "", "type": "CensusNet", "params": 8 * 16 + 16 + 2 * 16 + 16 + 2 * 16 + 2 * 16,
                                  "flops": result.total, "macs": result.total, "share": 1.0}
    assert data["nonlinear"]["by_kind"]["gelu"] == 192
    table = result.table(max_depth=1)
    lines = table.splitlines()
    assert lines[0] == "| module | type | #params | #MACs (macs) | share |"
    assert lines[2].startswith("| (root) | CensusNet |") and lines[2].endswith("| 100.0% |")
    assert any(line.startswith("|  attn | Attention |") for line in lines)
    assert not any("tail.0" in line for line in lines)  # deeper than max_depth
    census_lines = result.nonlinear.table(max_depth=1).splitlines()
    assert census_lines[0].startswith("| module | type |") and census_lines[0].endswith("| total |")


def test_model_is_left_untouched():
    model = zoo.create_model("leyolo-nano")  # train mode, unfused
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = count_flops(model, torch.zeros(1, 3, 64, 64))
    assert result.fused and not model.is_fused and model.training
    assert all(m.training for m in model.modules())
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    count_flops(model, torch.zeros(1, 3, 64, 64), fused=False)
    assert all(m.training for m in model.modules())


class InPlaceFuse(nn.Module):
    """A fuse() that edits weights in place and swaps modules; tied weights and a shared module."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 4)
        self.b.weight = self.a.weight  # tied
        self.shared = nn.ReLU()
        self.pair = (self.a, self.shared)

    def forward(self, x):
        return self.shared(self.b(self.shared(self.a(x))))

    def fuse(self):
        with torch.no_grad():
            self.a.weight.mul_(0)
        self.shared = nn.Identity()
        return self


def test_fused_copy_leaves_in_place_fuse_edits_local():
    from zoo.flops.fused_copy import module_copy

    model = InPlaceFuse()
    weight = model.a.weight.detach().clone()
    twin = module_copy(model)
    assert twin.b.weight is twin.a.weight and twin.pair[0] is twin.a and twin.pair[1] is twin.shared
    assert twin.a is not model.a and twin.a.weight is not model.a.weight
    result = count_flops(model, torch.zeros(3, 4), convention="macs")
    assert result.fused and result.total == 2 * 3 * 4 * 4
    assert result.module("").params == 4 * 4 + 4 + 4  # tied weight counted once
    assert torch.equal(model.a.weight, weight) and isinstance(model.shared, nn.ReLU)
    assert count_nonlinear(model, torch.zeros(3, 4)).by_kind == {"relu": 2 * 3 * 4}  # as written: unfused


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="Unknown convention 'thop'; choose one of paper, macs, fvcore"):
        count_flops(nn.Linear(2, 2), torch.zeros(1, 2), convention="thop")
    with pytest.raises(ValueError, match="inputs must be a tensor"):
        count_flops(nn.Linear(2, 2), "x")


def test_cli_json_total(capsys):
    assert cli_main(["flops", "leyolo-nano", "--imgsz", "320", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["total"] / 1e9 == pytest.approx(0.6603, rel=1e-4)
    assert out["total"] == leyolo_result("leyolo-nano", 320, True).total
    assert out["model"] == "leyolo-nano" and out["fused"] is True and "modules" not in out


def test_cli_rejects_sequence_length_for_a_detector(capsys):
    assert cli_main(["flops", "leyolo-nano", "--seq-len", "64"]) == 2
    assert "pass --imgsz, not --seq-len" in capsys.readouterr().err
