"""``zoo list`` / ``zoo info`` / ``zoo convert``: output, round trip, and one-line errors with exit code 2."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import zoo
from tests.conftest import REPO
from zoo.cli import main
from zoo.core.checkpoint import read_checkpoint


def test_list_details_shows_params_and_paper_numbers(capsys):
    assert main(["list", "leyolo-*", "--details"]) == 0
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| leyolo-")}
    assert list(rows) == ["leyolo-large", "leyolo-medium", "leyolo-nano", "leyolo-small"]
    assert "1,120,480" in rows["leyolo-nano"] and "0.66 @320" in rows["leyolo-nano"]
    assert "2,402,744" in rows["leyolo-large"] and "768" in rows["leyolo-large"]
    assert "4.51 @640" in rows["leyolo-small"] and "38.2 @640" in rows["leyolo-small"]


def test_info_prints_the_card(capsys):
    assert main(["info", "leyolo-nano"]) == 0
    out = capsys.readouterr().out
    assert "1,120,480" in out and "gflops@320=0.66" in out and "LeYOLONano.pt" in out


@pytest.mark.parametrize("command", ["list", "info", "convert"])
def test_every_command_has_help_with_examples(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "examples:" in capsys.readouterr().out


def test_convert_round_trip(nano_checkpoint, tmp_path, capsys):
    dst = tmp_path / "nano.safetensors"
    assert main(["convert", str(nano_checkpoint), str(dst)]) == 0  # model inferred from the weights
    assert "leyolo-nano, 651 tensors, 1,120,480 params" in capsys.readouterr().out
    ckpt = read_checkpoint(dst)
    assert ckpt.metadata["model"] == "leyolo-nano" and ckpt.metadata["source"].startswith("LeYOLONano.pt sha256:")
    official = zoo.create_model("leyolo-nano", checkpoint_path=nano_checkpoint).state_dict()
    assert all(torch.equal(ckpt.state_dict[k], v) for k, v in official.items())
    # effzoo -> effzoo uses the recorded model name; an existing DST needs --force
    again = tmp_path / "again.safetensors"
    assert main(["convert", str(dst), str(again)]) == 0
    assert main(["convert", str(dst), str(again)]) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert main(["convert", str(dst), str(again), "--force"]) == 0


def test_convert_refuses_to_guess_between_identical_networks(tmp_path, capsys):
    src = tmp_path / "medium_or_large.pt"
    torch.save(zoo.create_model("leyolo-medium").state_dict(), src)
    assert main(["convert", str(src), str(tmp_path / "x.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "fits several models (leyolo-large, leyolo-medium); pass --model" in err
    assert main(["convert", str(src), str(tmp_path / "x.safetensors"), "--model", "leyolo-large"]) == 0
    assert read_checkpoint(tmp_path / "x.safetensors").metadata["input_size"] == 768


def test_convert_wrong_model_reports_the_diff(nano_checkpoint, tmp_path, capsys):
    assert main(["convert", str(nano_checkpoint), str(tmp_path / "s.safetensors"), "--model", "leyolo-small"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "shape mismatches" in err and "fits leyolo-nano" in err
    assert not (tmp_path / "s.safetensors").exists()


def test_unknown_model_is_one_line_exit_2_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "zoo", "info", "leyolo-nan"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("zoo info: error: Unknown model 'leyolo-nan'. Did you mean 'leyolo-nano'")
    assert proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr and proc.stdout == ""


@pytest.mark.parametrize("argv, old, new", [
    (["entropy", "pi-gpt2-tiny-sm", "--weights", "missing.safetensors", "--batch-size", "4"], "--batch-size", "--batch"),
    (["coco-eval", "missing-gt.json", "missing-dets.json", "--backend", "pycocotools"], "--backend", "--evaluator"),
])
def test_old_flag_spellings_still_parse_with_a_deprecation_warning(argv, old, new, capsys):
    assert main(argv) == 2  # the files do not exist: the run fails after parsing, on the missing file
    err = capsys.readouterr().err
    assert f"{old} is deprecated" in err and f"use {new}" in err and "not found" in err.lower()
