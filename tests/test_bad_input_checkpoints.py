"""The bad-input table of issue 17, checkpoints: nothing a file merely claims is allocated (sizes, views,
depth), non-float weights never load as a zero model, and every refusal is one line with exit code 2 that
writes nothing."""
from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import zoo
from tests.bad_input_helpers import refused, snapshot


@pytest.fixture(scope="module")
def nano_state() -> dict[str, torch.Tensor]:
    return {k: v.contiguous() for k, v in zoo.create_model("leyolo-nano").state_dict().items()}


def _expanded(path: Path, numel: int) -> Path:
    torch.save({"w": torch.zeros(1).expand(numel)}, path)  # a 1.6 KB file describing numel floats
    return path


def _deep_tree(path: Path, depth: int = 3000) -> Path:
    root = cur = nn.Sequential()
    for _ in range(depth):
        nxt = nn.Sequential()
        cur.add_module("0", nxt)
        cur = nxt
    cur.add_module("0", nn.Linear(2, 2))
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20 * depth))  # the pickler recurses while writing it
    try:
        torch.save({"model": root}, path)
    finally:
        sys.setrecursionlimit(limit)
    return path


def _zip_bomb(path: Path) -> Path:
    """A torch.save zip whose 16 MB storage is deflated to a few KB: its entry claims more than the file."""
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(4 * 10**6)}, buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as src, \
            zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    return path


def _legacy(path: Path) -> Path:
    torch.save({"w": torch.zeros(3)}, path, _use_new_zipfile_serialization=False)
    return path


def _directory(path: Path) -> Path:
    path.mkdir()
    return path


CASES = {  # name: (make the file, words of the one-line message)
    "expand-1e13": (lambda p, s: _expanded(p.with_suffix(".pt"), 10**13), ["over the limit", "40,000,000,000,004"]),
    "expand-2e8": (lambda p, s: _expanded(p.with_suffix(".pt"), 2 * 10**8), ["over the limit", "800,000,004"]),
    "deep-tree": (lambda p, s: _deep_tree(p.with_suffix(".pt")), ["64 levels deep"]),
    "zip-bomb": (lambda p, s: _zip_bomb(p.with_suffix(".pt")), ["more than the whole file", "decompress"]),
    "legacy-pickle": (lambda p, s: _legacy(p.with_suffix(".pt")), ["legacy", "non-zip"]),
    "directory": (lambda p, s: _directory(p.with_suffix(".pt")), ["is a folder"]),
    "int32-safetensors": (lambda p, s: _safetensors(p, {k: v.to(torch.int32) for k, v in s.items()}),
                          ["557 tensors have a non-floating dtype"]),
    "overrides-list": (lambda p, s: _safetensors(p, s, overrides="[1, 2]"), ["must be a JSON object"]),
    "overrides-unknown-key": (lambda p, s: _safetensors(p, s, overrides='{"bogus": 1}'), ["overrides", "bogus"]),
    "overrides-bad-type": (lambda p, s: _safetensors(p, s, overrides='{"num_classes": "x"}'),
                           ["overrides", "does not accept"]),
}


def _safetensors(path: Path, state: dict[str, torch.Tensor], overrides: str | None = None) -> Path:
    meta = {"format": "effzoo", "model": "leyolo-nano"}
    if overrides is not None:
        meta["overrides"] = overrides
    save_file(state, str(path.with_suffix(".safetensors")), metadata=meta)
    return path.with_suffix(".safetensors")


@pytest.mark.parametrize("model_flag", [[], ["--model", "leyolo-nano"]], ids=["inferred", "given"])
@pytest.mark.parametrize("case", list(CASES))
def test_hostile_or_wrong_checkpoint_is_one_line_and_writes_nothing(tmp_path, capsys, nano_state, case, model_flag):
    make, words = CASES[case]
    (tmp_path / "in").mkdir()
    src = make(tmp_path / "in" / "ckpt", nano_state)
    out = tmp_path / "out"
    out.mkdir()
    before = snapshot(tmp_path)
    refused(["convert", src, out / "x.safetensors", *model_flag], capsys, *words)
    assert snapshot(tmp_path) == before  # input unchanged, no output, no temporary file


def test_byte_limit_follows_the_target_model(tmp_path):
    """Known before reading: 8 fp32 copies of the target's weights (+64 MiB), or 8x the file when unknown."""
    from zoo.core.checkpoint import BYTE_LIMIT_SLACK, checkpoint_byte_limit
    from zoo.core.registry import get_card

    path = _expanded(tmp_path / "e.pt", 10)
    assert checkpoint_byte_limit(path, get_card("leyolo-nano")) == 8 * 4 * 1_120_480 + BYTE_LIMIT_SLACK
    assert checkpoint_byte_limit(path) == 8 * path.stat().st_size + BYTE_LIMIT_SLACK


def test_an_honest_training_checkpoint_fits_the_byte_limit(tmp_path, nano_state):
    """Model + EMA (fp16) + Adam's two fp32 moments per weight, as a training run saves them, still loads."""
    half = {k: v.half() if v.is_floating_point() else v for k, v in nano_state.items()}
    moments = {i: {"exp_avg": v.float().clone(), "exp_avg_sq": v.float().clone()}
               for i, v in enumerate(nano_state.values()) if v.is_floating_point()}
    path = tmp_path / "last.pt"
    torch.save({"model": half, "ema": {k: v.clone() for k, v in half.items()},
                "optimizer": {"state": moments, "param_groups": []}}, path)
    model = zoo.create_model("leyolo-nano", checkpoint_path=path)
    assert all(torch.equal(model.state_dict()[k], half[k].to(model.state_dict()[k].dtype)) for k in half)
