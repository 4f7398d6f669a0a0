"""``zoo explain`` for PI-GPT models: attention-entropy maps per layer, head and query position."""
from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch

import zoo
from zoo.cli import main
from zoo.core.checkpoint import save_safetensors
from zoo.tasks.language.explain_attention import explain_attention


class _UniformCausal(torch.nn.Module):
    """Returns uniform causal attention (row i spreads over i + 1 keys): entropy ln(i + 1) by hand."""

    def __init__(self, layers: int = 2, heads: int = 3) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.layers, self.heads = layers, heads

    def forward(self, x, return_attn=False):
        B, T = x.shape
        mask = torch.tril(torch.ones(T, T))
        attn = (mask / mask.sum(1, keepdim=True)).expand(B, self.heads, T, T)
        return SimpleNamespace(attn=[attn] * self.layers)


def test_uniform_causal_attention_has_entropy_ln_i_plus_1():
    ex = explain_attention(_UniformCausal(), torch.zeros(5, 16, dtype=torch.long), batch_size=2)
    expected = torch.log(torch.arange(1, 17, dtype=torch.float64))
    assert ex.position.shape == (2, 3, 16)
    torch.testing.assert_close(ex.position[1, 2], expected, atol=1e-6, rtol=0)
    d = ex.to_dict()
    assert len(d["heads"]) == 6 and d["heads"][0]["mean_fraction_of_ceiling"] == pytest.approx(1.0, abs=1e-6)
    # the head mean of the position maps = the causal-uniform ceiling (1/T) sum ln i
    assert float(ex.report.head[0, 0]) == pytest.approx(math.lgamma(17) / 16, abs=1e-6)


def test_head_means_match_zoo_entropy():
    torch.manual_seed(0)
    model = zoo.create_model("pi-gpt2-tiny-sm-ln-g")
    tokens = torch.randint(0, 256, (3, 32))
    ex = explain_attention(model, tokens, batch_size=2)
    torch.testing.assert_close(ex.report.head, zoo.attention_entropy(model, tokens).head, atol=1e-9, rtol=0)


@pytest.fixture(scope="module")
def pi_weights(tmp_path_factory):
    torch.manual_seed(0)
    return save_safetensors(zoo.create_model("pi-gpt2-tiny-sm-ln-g"), tmp_path_factory.mktemp("pi") / "pi.safetensors")


def test_cli_writes_position_maps_and_json(pi_weights, tmp_path, capsys):
    text = tmp_path / "code.py"
    text.write_text("def f(x):\n    return x * 2\n" * 40)
    out = tmp_path / "out"
    assert main(["explain", "pi-gpt2-tiny-sm-ln-g", "--weights", str(pi_weights), "--text", str(text),
                 "--max-seqs", "3", "--out", str(out)]) == 0
    data = json.loads((out / "attention_entropy.json").read_text())
    assert data["n_sequences"] == 3 and len(data["heads"]) == 4 * 4 and len(data["heads"][0]["position"]) == 64
    for name in ("attention_positions.png", "attention_first.png", "entropy_heatmap.png"):
        assert (out / name).stat().st_size > 0
    assert "4 layers x 4 heads" in capsys.readouterr().out


def test_cli_refuses_the_other_familys_input(pi_weights, tmp_path, capsys):
    assert main(["explain", "pi-gpt2-tiny-sm-ln-g", "--weights", str(pi_weights), "--source", "x.jpg",
                 "--out", str(tmp_path)]) == 2
    assert "pass --text FILE or --corpus" in capsys.readouterr().err
    assert main(["explain", "leyolo-nano", "--weights", "w.pt", "--text", "a.py", "--out", str(tmp_path)]) == 2
    assert "--text/--corpus are for PI-GPT models" in capsys.readouterr().err
