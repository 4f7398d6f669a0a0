"""COCO / YOLO datasets are validated on load; the synthetic set is deterministic and exact; val runs end to end."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from zoo.eval.datasets import coco_dataset, load_dataset, yolo_dataset
from zoo.eval.datasets.synthetic import SyntheticConfig, generate, synthetic_dataset

from zoo.cli import main
from zoo.core.errors import DataError
from zoo.tasks.detection.val import val_full

SMALL = SyntheticConfig(num_train=3, num_val=6, image_size=128, min_size=16, max_size=48, seed=11)


@pytest.fixture(scope="module")
def small_root(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("syn") / "set", SMALL)


def test_synthetic_set_is_deterministic(small_root, tmp_path):
    other = generate(tmp_path / "again", SMALL)
    for split in ("train", "val"):
        a = json.loads((small_root / split / "annotations.json").read_text())
        b = json.loads((other / split / "annotations.json").read_text())
        assert a == b and len(a["annotations"]) >= len(a["images"])
        for img in a["images"]:
            pa = np.asarray(Image.open(small_root / split / "images" / img["file_name"]))
            pb = np.asarray(Image.open(other / split / "images" / img["file_name"]))
            assert np.array_equal(pa, pb)
    different = generate(tmp_path / "seed12", SyntheticConfig(**{**SMALL.__dict__, "seed": 12}))
    assert (json.loads((different / "val" / "annotations.json").read_text())["annotations"]
            != json.loads((small_root / "val" / "annotations.json").read_text())["annotations"])


def test_synthetic_items_follow_the_documented_format(small_root):
    ds = synthetic_dataset("val", SMALL, root=small_root)
    image, target = ds[0]
    assert image.dtype == torch.uint8 and tuple(image.shape) == (3, 128, 128)
    boxes = target["boxes"]
    assert boxes.dtype == torch.float32 and boxes.shape[1] == 4 and len(target["labels"]) == len(boxes)
    assert (boxes[:, 2:] > boxes[:, :2]).all() and (boxes >= 0).all() and (boxes <= 128).all()
    assert ds.names == ["circle", "rectangle", "triangle", "cross", "diamond"] and target["image_id"] == 1
    assert set(target["labels"].tolist()) <= set(range(5))


class _OracleModel:
    """Duck-typed detector that outputs the ground truth of the images it is shown, in dataset order."""

    def __init__(self, dataset, imgsz):
        self.names = dataset.names
        self.stride = 32
        self.queue = [dataset[i][1] for i in range(len(dataset))]
        self.scale = imgsz / 128

    def __call__(self, x):
        out = torch.zeros(x.shape[0], 4 + len(self.names), 64)
        for b in range(x.shape[0]):
            t = self.queue.pop(0)
            for a, (box, label) in enumerate(zip(t["boxes"] * self.scale, t["labels"])):
                out[b, :4, a] = torch.stack([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2, box[2] - box[0],
                                             box[3] - box[1]])
                out[b, 4 + label, a] = 0.9
        return out


def test_val_with_perfect_model_scores_one_and_maps_boxes_back(small_root):
    ds = synthetic_dataset("val", SMALL, root=small_root)
    result = val_full(_OracleModel(ds, 320), ds, imgsz=320, batch=4)  # 128 -> 320: r = 2.5, no padding
    assert result.stats["AP"] == pytest.approx(1.0) and result.stats["AR100"] == pytest.approx(1.0)


def test_val_cli_on_a_synthetic_folder_prints_and_writes_stats(small_root, tmp_path, capsys):
    out = tmp_path / "stats.json"
    assert main(["val", "leyolo-nano", "--data", str(small_root), "--imgsz", "128", "--out", str(out)]) == 0
    assert "AP50" in capsys.readouterr().out
    stats = json.loads(out.read_text())["stats"]
    assert stats["AP"] < 0.05  # an untrained detector finds nothing


@pytest.mark.slow
def test_val_cli_defaults_to_the_synthetic_set(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EFFZOO_CACHE", str(tmp_path / "cache"))
    assert main(["val", "leyolo-nano", "--out", str(tmp_path / "s.json")]) == 0
    assert (tmp_path / "s.json").is_file()


# ---- COCO validation errors ------------------------------------------------------------------------------

def _coco_folder(tmp_path, mutate=None):
    folder = tmp_path / "coco"
    (folder / "images").mkdir(parents=True)
    Image.new("RGB", (64, 48), (10, 20, 30)).save(folder / "images" / "a.png")
    data = {"images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 48}],
            "categories": [{"id": 3, "name": "thing"}],
            "annotations": [{"id": 9, "image_id": 1, "category_id": 3, "bbox": [4, 4, 20, 10], "area": 200,
                             "iscrowd": 0}]}
    if mutate:
        mutate(data, folder)
    (folder / "annotations.json").write_text(json.dumps(data))
    return folder


def test_valid_coco_folder_loads(tmp_path):
    ds = load_dataset(_coco_folder(tmp_path))
    assert ds.category_ids == [3] and ds[0][1]["boxes"].tolist() == [[4.0, 4.0, 24.0, 14.0]]


@pytest.mark.parametrize("mutate, message", [
    (lambda d, f: d["annotations"][0].update(bbox=[50, 4, 20, 10]), r"annotation id 9: field 'bbox' .* box outside image"),
    (lambda d, f: d["annotations"][0].update(bbox=[4, 4, -2, 10]), r"annotation id 9: field 'bbox' .* negative size"),
    (lambda d, f: d["annotations"][0].update(category_id=4), r"annotation id 9: unknown category: field 'category_id'"),
    (lambda d, f: (f / "images" / "a.png").unlink(), r"image id 1: missing image, file .*a.png not found"),
    (lambda d, f: (f / "images" / "a.png").write_bytes(b"garbage"), r"image id 1: unreadable image .*a.png"),
])
def test_bad_coco_dataset_is_a_clear_error(tmp_path, mutate, message):
    folder = _coco_folder(tmp_path, mutate)
    with pytest.raises(DataError, match=message) as err:
        coco_dataset(folder / "annotations.json")
    assert "annotations.json" in str(err.value)


def test_bad_dataset_leaves_no_val_output(tmp_path, capsys):
    folder = _coco_folder(tmp_path, lambda d, f: d["annotations"][0].update(category_id=4))
    out = tmp_path / "out" / "stats.json"
    assert main(["val", "leyolo-nano", "--data", str(folder), "--out", str(out)]) == 2
    assert "unknown category" in capsys.readouterr().err
    assert not out.exists()


# ---- YOLO validation errors ------------------------------------------------------------------------------

def _yolo_set(tmp_path, label_text="0 0.5 0.5 0.25 0.5\n", image_bytes=None):
    root = tmp_path / "yolo"
    (root / "images" / "val").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    img = root / "images" / "val" / "x.jpg"
    Image.new("RGB", (80, 40)).save(img)
    if image_bytes is not None:
        img.write_bytes(image_bytes)
    (root / "labels" / "val" / "x.txt").write_text(label_text)
    yaml_path = tmp_path / "data.yaml"
    yaml_path.write_text(f"path: {root}\ntrain: images/val\nval: images/val\nnames:\n  0: cat\n  1: dog\n")
    return yaml_path


def test_valid_yolo_set_loads_boxes_in_pixels(tmp_path):
    ds = yolo_dataset(_yolo_set(tmp_path))
    assert ds.names == ["cat", "dog"] and ds.records[0].boxes.tolist() == [[30.0, 10.0, 50.0, 30.0]]


@pytest.mark.parametrize("labels, message", [
    ("0 0.95 0.5 0.3 0.2\n", r"x.txt: line 1: .*box outside image"),
    ("1 0.5 0.5 -0.1 0.2\n", r"x.txt: line 1: field 'w'/'h' .* negative size"),
    ("0 0.5 0.5 0.1 0.1\n5 0.5 0.5 0.1 0.1\n", r"x.txt: line 2: field 'class' = 5 is an unknown category"),
])
def test_bad_yolo_labels_are_clear_errors(tmp_path, labels, message):
    with pytest.raises(DataError, match=message):
        yolo_dataset(_yolo_set(tmp_path, labels))


def test_yolo_missing_and_unreadable_images_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match=r"x.jpg: unreadable image"):
        yolo_dataset(_yolo_set(tmp_path / "a", image_bytes=b"nope"))
    yaml_path = _yolo_set(tmp_path / "b")
    listing = tmp_path / "b" / "yolo" / "val.txt"
    listing.write_text("images/val/x.jpg\nimages/val/gone.jpg\n")
    yaml_path.write_text(yaml_path.read_text().replace("val: images/val", "val: val.txt"))
    with pytest.raises(DataError, match=r"missing image .*gone.jpg"):
        yolo_dataset(yaml_path)
