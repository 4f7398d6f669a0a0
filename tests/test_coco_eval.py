"""COCO evaluator: known answers, equality with pycocotools, crowd / empty / max_dets, bad input."""
from __future__ import annotations

import contextlib
import copy
import io
import json

import numpy as np
import pytest
from zoo.eval.coco import COCOEvaluator, available_backends, evaluate, evaluate_full, load_detections, load_ground_truth
from zoo.eval.coco_backends import run_pycocotools
from zoo.eval.coco_engine import run_numpy
from zoo.eval.synthetic_results import make_detections, make_ground_truth

from zoo.cli import main
from zoo.core.errors import DataError


@pytest.fixture(scope="module")
def gt() -> dict:
    # 60 images, 8 classes, ~4 objects each, 5% crowd: every class has many boxes of every size.
    return make_ground_truth(60, num_categories=8, objects_per_image=4, crowd_fraction=0.05, seed=3)


def _perfect(gt: dict) -> list[dict]:
    return [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": list(a["bbox"]), "score": 0.9}
            for a in gt["annotations"] if not a["iscrowd"]]


def _reference_stats(gt: dict, dets: list[dict]) -> list[float]:
    """pycocotools' own summarize(), the independent source of expected numbers."""
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
def test_perfect_predictions_score_one(gt, backend):
    stats = evaluate(gt, _perfect(gt), backend=backend)
    assert stats["AP"] == 1.0 and stats["AP50"] == 1.0 and stats["AR100"] == 1.0


def test_shifted_boxes_give_pycocotools_numbers_exactly(gt):
    dets = make_detections(gt, detections_per_image=12, jitter=0.08, seed=5)
    expected = _reference_stats(gt, dets)
    assert 0.05 < expected[0] < 0.95  # a discriminating case, not 0 or 1
    for backend in ("effzoo", "pycocotools"):
        assert list(evaluate(gt, dets, backend=backend).values()) == expected


def test_faster_coco_eval_backend_agrees_to_float_precision(gt):
    if "faster-coco-eval" not in available_backends():
        pytest.skip("faster-coco-eval not installed")
    dets = make_detections(gt, detections_per_image=12, jitter=0.08, seed=5)
    fast = evaluate(gt, dets, backend="faster-coco-eval")
    ref = evaluate(gt, dets, backend="pycocotools")
    assert list(fast.values()) == pytest.approx(list(ref.values()), abs=1e-12)


def test_tables_equal_pycocotools_with_custom_max_dets_and_empty_images(gt):
    data = copy.deepcopy(gt)
    data["images"] += [{"id": 10_000 + i, "width": 640, "height": 480} for i in range(3)]  # never detected
    dets = make_detections(gt, detections_per_image=30, jitter=0.2, seed=9)
    g = load_ground_truth(data)
    d = load_detections(dets, g)
    for max_dets in [(1, 10, 100), (1, 5, 20)]:
        p1, r1 = run_numpy(g, d, max_dets)
        p2, r2 = run_pycocotools(g, d, max_dets)
        assert np.array_equal(p1, p2) and np.array_equal(r1, r2)


def test_crowd_regions_absorb_detections_without_false_positives():
    gt = {"images": [{"id": 1, "width": 100, "height": 100}],
          "categories": [{"id": 5, "name": "thing"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 5, "bbox": [0, 0, 40, 40], "area": 1600,
                           "iscrowd": 0},
                          {"id": 2, "image_id": 1, "category_id": 5, "bbox": [50, 50, 50, 50], "area": 2500,
                           "iscrowd": 1}]}
    dets = [{"image_id": 1, "category_id": 5, "bbox": [0, 0, 40, 40], "score": 0.5},
            {"image_id": 1, "category_id": 5, "bbox": [60, 60, 10, 10], "score": 0.9},   # inside the crowd
            {"image_id": 1, "category_id": 5, "bbox": [55, 55, 20, 20], "score": 0.8}]   # also inside
    stats = evaluate(gt, dets)
    assert stats["AP"] == pytest.approx(_reference_stats(gt, dets)[0]) and stats["AP"] > 0.99


def test_evaluator_maps_contiguous_classes_and_counts_missing_images(gt):
    ev = COCOEvaluator(gt)
    cat_index = {c: i for i, c in enumerate(sorted(c["id"] for c in gt["categories"]))}
    per_image: dict[int, list] = {}
    for a in gt["annotations"]:
        if not a["iscrowd"]:
            per_image.setdefault(a["image_id"], []).append(a)
    for image_id, anns in list(per_image.items())[:-5]:  # the last 5 images get no detections at all
        xywh = np.array([a["bbox"] for a in anns])
        ev.add(image_id, np.c_[xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], np.full(len(anns), 0.9),
               [cat_index[a["category_id"]] for a in anns])
    result = ev.compute()
    assert 0.8 < result.stats["AR100"] < 1.0  # the missed images cost recall
    assert set(result.per_class) == {c["name"] for c in gt["categories"]}
    with pytest.raises(ValueError, match="has no category"):
        ev.add(1, np.zeros((1, 4)), [0.5], [99])


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d[0].update(image_id=424242), "'image_id' = 424242 is not an image of the ground truth"),
    (lambda d: d[0].update(category_id=777), "'category_id' = 777 is not a category"),
    (lambda d: d[0].update(bbox=[1, 2, -3, 4]), "negative size"),
    (lambda d: d[0].pop("score"), "needs image_id, category_id, bbox"),
])
def test_bad_detections_are_clear_errors(gt, mutate, message):
    dets = _perfect(gt)[:5]
    mutate(dets)
    with pytest.raises(DataError, match=message):
        evaluate(gt, dets)


def test_coco_eval_cli_prints_stats_and_leaves_no_file_on_bad_input(gt, tmp_path, capsys):
    gt_path, det_path, out = tmp_path / "gt.json", tmp_path / "dets.json", tmp_path / "stats.json"
    gt_path.write_text(json.dumps(gt))
    det_path.write_text(json.dumps(_perfect(gt)))
    assert main(["coco-eval", str(gt_path), str(det_path), "--json", "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["AP"] == 1.0
    assert json.loads(out.read_text())["stats"]["AP"] == 1.0
    out.unlink()
    det_path.write_text('[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1')  # truncated file
    assert main(["coco-eval", str(gt_path), str(det_path), "--out", str(out)]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    assert sorted(tmp_path.iterdir()) == sorted([gt_path, det_path])  # no stats.json, no temporary file


def test_evaluate_full_reports_per_class_ap(gt):
    result = evaluate_full(gt, _perfect(gt))
    assert all(v["AP"] == 1.0 for v in result.per_class.values())
    assert "AP" in result.table()
