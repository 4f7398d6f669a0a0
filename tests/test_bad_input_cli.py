"""The bad-input table of issue 17, the weaker cases: flags checked up front, no silent overwrite by
export, evaluator inputs that used to lose stats, and one-line errors that name the right flag and file."""
from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path

import pytest

import zoo
from tests.bad_input_helpers import refused, snapshot
from zoo.cli import main
from zoo.core.checkpoint import save_safetensors
from zoo.eval.coco import evaluate


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return save_safetensors(zoo.create_model("leyolo-nano"), tmp_path_factory.mktemp("w") / "nano.safetensors")


# -- export: no silent overwrite, flags checked before minutes of work -------------------------------------
def test_export_refuses_an_existing_out_without_force(tmp_path, weights, capsys):
    out = tmp_path / "keep.onnx"
    out.write_bytes(b"a user's file")
    refused(["export", "leyolo-nano", "--weights", weights, "--out", out], capsys, "already exists", "--force")
    assert out.read_bytes() == b"a user's file"


@pytest.mark.parametrize("tolerance", ["-1", "0", "inf", "nan"])
def test_export_tolerance_out_of_range_is_refused_up_front(tmp_path, weights, capsys, tolerance, monkeypatch):
    monkeypatch.setattr("zoo.export.onnx_export._resolve_model", lambda *a: 1 / 0)  # nothing is built
    refused(["export", "leyolo-nano", "--weights", weights, "--tolerance", tolerance, "--out", tmp_path / "x.onnx"],
            capsys, "tolerance must be a positive finite number")
    assert not list(tmp_path.iterdir())


# -- val / coco-eval --------------------------------------------------------------------------------------
def test_val_batch_zero_is_refused(tmp_path, weights, capsys):
    refused(["val", "leyolo-nano", "--weights", weights, "--batch", "0", "--out", tmp_path / "s.json"], capsys,
            "batch must be a positive number")


def _gt(first_ann_id: int = 1) -> dict:
    images = [{"id": i, "width": 100, "height": 100, "file_name": f"{i}.jpg"} for i in (1, 2)]
    anns = [{"id": first_ann_id + k, "image_id": 1 + k % 2, "category_id": 1, "bbox": [10 + 7 * k, 10, 30, 40],
             "area": 1200.0, "iscrowd": 0} for k in range(4)]
    return {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "thing"}]}


def _dets() -> list[dict]:
    return [{"image_id": 1 + k % 2, "category_id": 1, "bbox": [11 + 7 * k, 12, 30, 38], "score": 0.9 - 0.1 * k}
            for k in range(4)] + [{"image_id": 1, "category_id": 1, "bbox": [60, 60, 20, 20], "score": 0.95}]


def _pycocotools_stats(gt: dict, dets: list[dict]) -> list[float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(copy.deepcopy(dets)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats.tolist()


@pytest.mark.parametrize("backend", ["effzoo", "pycocotools"])
def test_annotation_id_zero_is_accepted_and_scored_like_ids_from_one(backend):
    pytest.importorskip("pycocotools")
    expected = _pycocotools_stats(_gt(first_ann_id=1), _dets())  # the reference, on ids it handles
    got = evaluate(_gt(first_ann_id=0), _dets(), backend=backend)
    assert list(got.values()) == pytest.approx(expected, abs=1e-12)


def test_duplicate_max_dets_are_refused_not_dropped(tmp_path, capsys):
    gt, dets = tmp_path / "gt.json", tmp_path / "dets.json"
    gt.write_text(json.dumps(_gt()))
    dets.write_text(json.dumps(_dets()))
    refused(["coco-eval", gt, dets, "--max-dets", "100", "100", "100"], capsys, "three different positive counts")
    with pytest.raises(ValueError, match="three different"):
        evaluate(_gt(), _dets(), max_dets=(1, 100, 100))
    assert main(["coco-eval", str(gt), str(dets), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 12


@pytest.mark.parametrize("empty", ["images", "annotations"])
def test_empty_ground_truth_is_refused_not_all_minus_one(tmp_path, capsys, empty):
    data = _gt()
    data[empty] = []
    if empty == "images":
        data["annotations"] = []
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(data))
    dets = tmp_path / "dets.json"
    dets.write_text("[]")
    refused(["coco-eval", gt, dets], capsys, f"no {empty}", "-1")


# -- names, suggestions, streams ------------------------------------------------------------------------
def test_list_without_match_reports_on_stderr(capsys):
    assert main(["list", "zzz*"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "no model matches 'zzz*'" in captured.err


def test_capitalised_name_gets_the_lowercase_suggestion(capsys):
    refused(["info", "LeYOLO-Nano"], capsys, "Did you mean 'leyolo-nano'")


def test_directory_as_checkpoint_is_named_a_folder(tmp_path, capsys):
    (tmp_path / "weights").mkdir()
    refused(["convert", tmp_path / "weights", tmp_path / "x.safetensors", "--model", "leyolo-nano"], capsys,
            "is a folder")


def test_foreign_onnx_file_is_not_taken_for_a_given_model(tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 64, 64])
    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["out"])], "other-tool", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "other.onnx"
    onnx.save(model, path)
    img = tmp_path / "a.png"
    from PIL import Image

    Image.new("RGB", (64, 64)).save(img)
    before = snapshot(tmp_path)
    refused(["predict", "leyolo-nano", "--weights", path, "--source", img, "--out", tmp_path / "out"], capsys,
            "no effzoo metadata", "leyolo-nano")
    assert snapshot(tmp_path) == before


# -- eval-lm --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lm_weights(tmp_path_factory) -> Path:
    model = zoo.create_model("pi-gpt2-tiny-sm-ln-g", context_length=32)
    return zoo.save_safetensors(model, tmp_path_factory.mktemp("lm") / "w.safetensors",
                                overrides=model.checkpoint_overrides())


@pytest.mark.parametrize("seq_len", ["1", "33"])
def test_eval_lm_seq_len_outside_2_to_context_is_refused(lm_weights, capsys, seq_len):
    refused(["eval-lm", "pi-gpt2-tiny-sm-ln-g", "--weights", lm_weights, "--seq-len", seq_len], capsys,
            f"seq_len={seq_len} is out of range", "2..32")


def test_eval_lm_missing_corpus_names_the_corpus_flag(lm_weights, tmp_path, capsys):
    err = refused(["eval-lm", "pi-gpt2-tiny-sm-ln-g", "--weights", lm_weights, "--corpus", tmp_path / "nope"], capsys,
                  "--corpus")
    assert "--data" not in err


def test_every_promise_in_the_readme_names_existing_tests():
    """The README's promises section (issue 17) cites tests; each cited name must be a test in tests/."""
    import re

    repo = Path(__file__).resolve().parents[1]
    readme = (repo / "README.md").read_text(encoding="utf-8")
    section = readme.split("## What effzoo promises (issue 17)", 1)[1].split("\n## ", 1)[0]
    cited = {name for name in re.findall(r"`(test_\w+)", section)}
    defined = {m for path in (repo / "tests").glob("test_*.py")
               for m in re.findall(r"^def (test_\w+)", path.read_text(encoding="utf-8"), flags=re.M)}
    assert len(cited) >= 25 and sorted(cited - defined) == []


@pytest.mark.parametrize("which", ["ground_truth", "detections"])
def test_coco_eval_out_never_overwrites_an_input(tmp_path, capsys, which):
    gt, dets = tmp_path / "gt.json", tmp_path / "dets.json"
    gt.write_text(json.dumps(_gt()))
    dets.write_text(json.dumps(_dets()))
    before = snapshot(tmp_path)
    refused(["coco-eval", gt, dets, "--out", gt if which == "ground_truth" else dets], capsys, "is an input file")
    assert snapshot(tmp_path) == before
