"""PI-GPT plots (PNG, atomic) and the ``zoo pi-cost`` / ``zoo entropy`` / ``zoo info`` commands."""
from __future__ import annotations

import json

import pytest
import torch
from zoo.models.pi_transformer.entropy import EntropyReport
from zoo.models.pi_transformer.plots import (
    plot_head_entropy,
    plot_headwise_distribution,
    plot_layer_entropy_curves,
    plot_nan_counts,
    plot_thresholds,
)

import zoo
from zoo.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 1000


def test_plots_write_png_files_atomically(tmp_path):
    head = torch.rand(4, 4) * 4
    head[3, 1] = float("nan")
    report = EntropyReport.from_head_matrix(head, seq_len=64)
    paths = [
        plot_head_entropy(report, tmp_path / "heat.png"),
        plot_head_entropy(head, tmp_path / "heat_matrix.png", seq_len=64),
        plot_headwise_distribution({"SM+LN+G": (0.04, 0.14, 0.74, 0.08), "SM": report.bins}, tmp_path / "bars.png"),
        plot_thresholds(torch.rand(4, 4), tmp_path / "theta.png"),
        plot_layer_entropy_curves([0, 100, 200], [[1, 2, 3, 4]] * 3, tmp_path / "curves.png", seq_len=64),
        plot_nan_counts([0, 100], [[0, 0, 1, 2]] * 2, tmp_path / "nan.png"),
    ]
    assert all(_is_png(p) for p in paths)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)  # no temp files left


def test_plot_input_errors_leave_no_file(tmp_path):
    with pytest.raises(ValueError, match="needs at least one variant"):
        plot_headwise_distribution({}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="must be equally long"):
        plot_layer_entropy_curves([0, 1], [[1.0]], tmp_path / "y.png")
    assert list(tmp_path.iterdir()) == []


def test_pi_cost_command_prints_published_row_and_json(capsys):
    assert main(["pi-cost", "pi-gpt2-small-ereg-sm-t-scfuffn"]) == 0
    out = capsys.readouterr().out
    assert "6.43 GB" in out and "4.76 min" in out and "3.94x comm, 1.72x latency" in out
    assert "published: 2501.03489 Table 3" in out and "SM: 144 × R^{128×128}" in out
    assert main(["pi-cost", "pi-gpt2-small-sm-scfuffn", "--ffn-layers", "6", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["comm_gb"], data["latency_min"], data["provenance"]) == (6.29, 4.23, "published: AERO Table 4")
    assert data["census"]["flops_string"] == "0.9B / 7.7B"
    assert main(["pi-cost", "pi-gpt2-small-sm-ln-r", "--seq-len", "256"]) == 0
    assert "26.73 GB" in capsys.readouterr().out


def test_pi_cost_command_bad_input_is_one_line_exit_2(capsys):
    assert main(["pi-cost", "pi-gpt2-small-sm-ln-gg"]) == 2
    err = capsys.readouterr().err
    assert "Did you mean 'pi-gpt2-small-sm-ln-g'" in err and err.count("\n") == 1
    assert main(["pi-cost", "leyolo-nano"]) == 2
    assert "'leyolo-nano' is a leyolo model, not a PI-GPT" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:  # argparse choices
        main(["pi-cost", "pi-gpt2-small-sm", "--dataset", "wikitext"])
    assert info.value.code == 2 and "invalid choice: 'wikitext'" in capsys.readouterr().err


def test_entropy_command_writes_matrix_json_and_heatmap(tmp_path, capsys):
    from zoo.core.checkpoint import save_safetensors

    model = zoo.create_model("pi-gpt2-tiny-sm-ln-g", context_length=32)
    weights = save_safetensors(model, tmp_path / "w.safetensors", name=model.model_name,
                               overrides=model.checkpoint_overrides())
    text = tmp_path / "code.py"
    text.write_text("def f(x):\n    return x * 2  # a line of python\n" * 40)
    out = tmp_path / "out"
    assert main(["entropy", "pi-gpt2-tiny-sm-ln-g", "--weights", str(weights), "--text", str(text),
                 "--out", str(out), "--max-seqs", "6"]) == 0
    printed = capsys.readouterr().out
    assert "ln T = 3.4657" in printed and "causal-uniform = 2.5487" in printed  # T = 32: ln(32!)/32
    data = json.loads((out / "entropy.json").read_text())
    assert data["seq_len"] == 32 and data["n_sequences"] == 6
    assert len(data["head"]) == 4 and len(data["head"][0]) == 4 and len(data["layer"]) == 4
    expected = zoo.attention_entropy(model, torch.tensor(list(text.read_bytes()[: 6 * 32])).view(6, 32))
    assert data["head"][0][0] == pytest.approx(expected.head[0, 0].item(), abs=1e-6)
    assert _is_png(out / "entropy_heatmap.png")


def test_entropy_command_reads_the_held_out_split_of_a_corpus(tmp_path, capsys):
    from zoo.core.checkpoint import save_safetensors

    model = zoo.create_model("pi-gpt2-tiny-sm-r", context_length=16)
    weights = save_safetensors(model, tmp_path / "w.safetensors", name=model.model_name,
                               overrides=model.checkpoint_overrides())
    assert main(["entropy", "pi-gpt2-tiny-sm-r", "--weights", str(weights), "--corpus", "stdlib", "--max-seqs", "3",
                 "--out", str(tmp_path / "std"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["n_sequences"] == 3 and data["seq_len"] == 16
    folder = tmp_path / "two_files"
    folder.mkdir()
    for name in ("a.py", "b.py"):  # with a 2 % hash split, neither file is held out
        (folder / name).write_text("x = 1\n" * 100)
    assert main(["entropy", "pi-gpt2-tiny-sm-r", "--weights", str(weights), "--corpus", str(folder),
                 "--out", str(tmp_path / "o")]) == 2
    assert "has no held-out documents" in capsys.readouterr().err


def test_entropy_command_needs_a_tokenizer_for_non_byte_vocabularies(tmp_path, capsys):
    from zoo.core.checkpoint import save_safetensors

    model = zoo.create_model("pi-gpt2-tiny-sm", vocab_size=300)
    weights = save_safetensors(model, tmp_path / "w.safetensors", name=model.model_name,
                               overrides=model.checkpoint_overrides())
    (tmp_path / "t.txt").write_text("x" * 1000)
    assert main(["entropy", "pi-gpt2-tiny-sm", "--weights", str(weights), "--text", str(tmp_path / "t.txt"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "pass --tokenizer" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_info_works_for_the_family(capsys):
    assert main(["info", "pi-gpt2-tiny-ereg-sm-t-scfuffn", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["family"] == "pi_transformer" and data["input_size"] == 64
    assert data["n_params"] == 370_952
