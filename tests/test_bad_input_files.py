"""The bad-input table of issue 17, files and folders: predict outputs never overwrite inputs or each other,
images are read as OpenCV reads them (16-bit, EXIF), datasets without labels are refused, output paths are
checked before any work, and disk or memory failures are one line with exit code 2."""
from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import torch
import pytest
from PIL import Image

import zoo
from tests.bad_input_helpers import refused, snapshot
from zoo.cli import main
from zoo.core.checkpoint import save_safetensors
from zoo.core.errors import DataError
from zoo.eval.datasets import coco_dataset, yolo_dataset
from zoo.eval.images import image_size, load_image


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """An effzoo file of an untrained nano (the table is about files, not accuracy)."""
    return save_safetensors(zoo.create_model("leyolo-nano"), tmp_path_factory.mktemp("w") / "nano.safetensors")


def _image(path: Path, size=(64, 48), seed=0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def _predict(weights: Path, source, out: Path, *extra) -> list[str]:
    return ["predict", "leyolo-nano", "--weights", weights, "--source", source, "--out", out, "--imgsz", "64", *extra]


# -- 1. outputs never overwrite inputs or each other ------------------------------------------------------
@pytest.mark.parametrize("out", [".", "sub"])
def test_predict_refuses_an_out_folder_holding_a_source(tmp_path, weights, capsys, out):
    folder = tmp_path / "imgs"
    _image(folder / "a.jpg")
    _image(folder / "sub" / "b.jpg", seed=1)
    before = snapshot(tmp_path)
    source = folder if out == "." else f"{folder}/**/*.jpg"
    refused(_predict(weights, source, folder / out if out != "." else folder), capsys, "contains the source image",
            "overwrite")
    assert snapshot(tmp_path) == before


def test_predict_keeps_relative_paths_so_same_names_never_collide(tmp_path, weights, capsys):
    a = _image(tmp_path / "coll" / "a" / "x" / "img.jpg", seed=1)
    b = _image(tmp_path / "coll" / "b" / "x" / "img.jpg", seed=2)
    out = tmp_path / "out"
    assert main([str(v) for v in _predict(weights, f"{tmp_path}/coll/**/*.jpg", out)]) == 0
    report = json.loads((out / "detections.json").read_text())
    annotated = sorted(e["annotated"] for e in report["images"])
    assert annotated == [str(out / "a" / "x" / "img.jpg"), str(out / "b" / "x" / "img.jpg")]
    assert all(Path(p).is_file() for p in annotated)
    assert "2 annotated image(s)" in capsys.readouterr().out
    assert a.is_file() and b.is_file()  # the inputs stay as they were


@pytest.mark.parametrize("suffix, fmt", [(".gif", "GIF"), (".jfif", "JPEG")])
def test_gif_and_jfif_are_read_in_folders_as_alone(tmp_path, weights, suffix, fmt):
    (tmp_path / "imgs").mkdir()
    Image.fromarray(np.full((48, 64, 3), 120, np.uint8)).save(tmp_path / "imgs" / f"a{suffix}", format=fmt)
    out = tmp_path / "out"
    assert main([str(v) for v in _predict(weights, tmp_path / "imgs", out)]) == 0
    (entry,) = json.loads((out / "detections.json").read_text())["images"]
    assert entry["source"].endswith(f"a{suffix}") and Path(entry["annotated"]).is_file()


def test_empty_source_is_refused_not_the_current_folder(tmp_path, weights, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _image(tmp_path / "here.jpg")
    refused(_predict(weights, "", tmp_path / "out"), capsys, "source is empty")
    assert not (tmp_path / "out").exists()


def test_one_unreadable_image_in_a_folder_is_named_before_any_work(tmp_path, weights, capsys):
    _image(tmp_path / "imgs" / "a.jpg")
    (tmp_path / "imgs" / "b.jpg").write_bytes(b"not a jpeg")
    refused(_predict(weights, tmp_path / "imgs", tmp_path / "out"), capsys, "unreadable image", "b.jpg")
    assert not (tmp_path / "out").exists()


def test_predict_by_name_without_weights_is_refused():
    with pytest.raises(ValueError, match="needs weights="):
        zoo.predict("leyolo-nano", np.zeros((32, 32, 3), np.uint8))


# -- 2. 16-bit images, 6. EXIF rotation: one reader, OpenCV's pixels -------------------------------------
@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_png_is_scaled_by_8_bits_like_opencv(tmp_path, suffix):
    eight = np.random.default_rng(0).integers(0, 256, (24, 32), dtype=np.uint16)
    wide = eight * 256 + np.random.default_rng(1).integers(0, 256, eight.shape, dtype=np.uint16)  # any low byte
    path = tmp_path / f"deep{suffix}"
    Image.fromarray(wide).save(path)
    with Image.open(path) as im:
        assert im.mode.startswith("I")  # really a 16-bit file
    got = load_image(path)
    assert got.dtype == np.uint8 and got.shape == (24, 32, 3)
    np.testing.assert_array_equal(got[:, :, 0], (wide >> 8).astype(np.uint8))  # cv2.imread: value >> 8
    np.testing.assert_array_equal(got[:, :, 0], eight.astype(np.uint8))
    assert (got == 255).mean() < 0.05  # convert("RGB") made 99.9 % of pixels 255


def _exif_rotated_jpeg(path: Path, size=(80, 40), orientation=6) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.new("RGB", size, (10, 200, 30)).save(path, exif=exif)
    return path


def test_exif_rotated_dataset_image_is_sized_after_rotation(tmp_path):
    root = tmp_path / "yolo"
    img = _exif_rotated_jpeg(root / "images" / "val" / "r.jpg")  # stored 80x40, shown 40x80
    (root / "labels" / "val").mkdir(parents=True)
    (root / "labels" / "val" / "r.txt").write_text("0 0.5 0.5 0.5 0.25\n")
    data = tmp_path / "data.yaml"
    data.write_text(f"path: {root}\nval: images/val\nnames: [thing]\n")
    ds = yolo_dataset(data)
    assert image_size(img) == (40, 80) and (ds.records[0].width, ds.records[0].height) == (40, 80)
    image, target = ds[0]  # the loader rotates too: the size check agrees
    assert tuple(image.shape) == (3, 80, 40)
    assert target["boxes"].tolist() == [[10.0, 30.0, 30.0, 50.0]]  # 0.5*40 ± 0.25*40, 0.5*80 ± 0.125*80


# -- 5. datasets whose labels are absent are refused -----------------------------------------------------
def test_yolo_dataset_without_labels_folder_is_refused(tmp_path, weights, capsys):
    root = tmp_path / "yolo"
    _image(root / "images" / "val" / "a.jpg")
    data = tmp_path / "data.yaml"
    data.write_text(f"path: {root}\nval: images/val\nnames: [thing]\n")
    with pytest.raises(DataError, match=r"none of its 1 images has a label file .*labels"):
        yolo_dataset(data)
    refused(["val", "leyolo-nano", "--data", data, "--out", tmp_path / "s.json", "--imgsz", "64"], capsys,
            "label file")
    assert not (tmp_path / "s.json").exists()


def test_coco_file_without_annotations_is_refused(tmp_path):
    _image(tmp_path / "images" / "a.jpg")
    ann = tmp_path / "annotations.json"
    ann.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}],
                               "annotations": [], "categories": [{"id": 1, "name": "thing"}]}))
    with pytest.raises(DataError, match="no annotations"):
        coco_dataset(ann)


def test_non_utf8_label_file_names_the_file(tmp_path):
    root = tmp_path / "yolo"
    _image(root / "images" / "val" / "a.jpg")
    (root / "labels" / "val").mkdir(parents=True)
    (root / "labels" / "val" / "a.txt").write_bytes("0 0.5 0.5 0.1 0.1 # caf\xe9\n".encode("latin-1"))
    data = tmp_path / "data.yaml"
    data.write_text(f"path: {root}\nval: images/val\nnames: [thing]\n")
    with pytest.raises(DataError, match=r"a.txt: label file is not UTF-8"):
        yolo_dataset(data)


# -- 8. output paths checked before any work; OS and memory failures are one line --------------------------
def _parent_is_a_file(tmp_path: Path) -> Path:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    return blocker


@pytest.mark.parametrize("command", ["predict", "val", "coco-eval", "convert", "export"])
def test_output_under_a_file_is_refused_before_any_work(tmp_path, weights, capsys, command, monkeypatch):
    bad = _parent_is_a_file(tmp_path) / "sub" / "x.out"
    img = _image(tmp_path / "imgs" / "a.jpg")
    gt = tmp_path / "gt.json"
    gt.write_text("{}")  # never read: the output is checked first
    work = []
    monkeypatch.setattr("zoo.core.factory.read_checkpoint", lambda *a, **k: work.append(a) or 1 / 0)
    argv = {
        "predict": _predict(weights, img, bad),
        "val": ["val", "leyolo-nano", "--weights", weights, "--out", bad],
        "coco-eval": ["coco-eval", gt, gt, "--out", bad],
        "convert": ["convert", weights, bad.with_suffix(".safetensors")],
        "export": ["export", "leyolo-nano", "--weights", weights, "--imgsz", "64", "--out", bad.with_suffix(".onnx")],
    }[command]
    before = snapshot(tmp_path)
    refused(argv, capsys, "blocker is a file")
    assert not work and snapshot(tmp_path) == before


def test_disk_full_is_one_line_and_leaves_no_temporary_file(tmp_path, weights, capsys, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("zoo.core.fileio.os.fsync", full)
    dst = tmp_path / "out" / "nano.safetensors"
    refused(["convert", weights, dst], capsys, "No space left on device")
    assert not dst.parent.exists() or not list(dst.parent.iterdir())


def test_decompression_bomb_is_one_line(tmp_path, weights, capsys, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # so a 64x48 image stands in for a 20000x20000 one
    img = _image(tmp_path / "big.png")
    refused(_predict(weights, img, tmp_path / "out"), capsys, "big.png", "decompression bomb")
    assert not (tmp_path / "out").exists()


def test_memory_error_is_one_line(tmp_path, weights, capsys, monkeypatch):
    def oom(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr("zoo.commands.predict.predict", oom)  # what --imgsz 99999 runs into
    refused(_predict(weights, _image(tmp_path / "a.jpg"), tmp_path / "out"), capsys, "out of memory", "--imgsz")


def test_entropy_of_a_detector_is_refused(capsys, weights):
    refused(["entropy", "leyolo-nano", "--weights", weights], capsys, "PI-GPT")


# -- atomic writes: modes and temporaries ----------------------------------------------------------------
def test_safetensors_output_respects_the_umask(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        path = save_safetensors(zoo.create_model("leyolo-nano"), tmp_path / "m.safetensors")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644  # what open() gives, not mkstemp's 0600


def test_temporaries_of_killed_writers_are_cleaned(tmp_path):
    import subprocess
    import sys

    from zoo.core.fileio import write_text_atomic

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    stale = tmp_path / f".r.json.tmp-{dead}-abcd1234.tmp"  # what kill -9 during a write leaves
    stale.write_text("half")
    alive = tmp_path / f".r.json.tmp-{os_getppid()}-efgh5678.tmp"  # a writer still running keeps its file
    alive.write_text("in progress")
    write_text_atomic(tmp_path / "r.json", "{}")
    assert not stale.exists() and alive.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, "r.json"])


def os_getppid() -> int:
    import os

    return os.getppid()


def test_torch_allocation_failure_is_one_line(tmp_path, weights, capsys, monkeypatch):
    def oom(*args, **kwargs):  # what torch's CPU allocator raises for a huge --imgsz / --batch
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
                           "memory: you tried to allocate 119996000400 bytes.")

    monkeypatch.setattr("zoo.commands.predict.predict", oom)
    refused(_predict(weights, _image(tmp_path / "a.jpg"), tmp_path / "out"), capsys, "out of memory",
            "119996000400 bytes")


def test_train_out_under_a_file_is_refused_before_training(tmp_path, capsys):
    bad = _parent_is_a_file(tmp_path) / "run"
    refused(["train", "leyolo-nano", "--out", bad, "--max-steps", "1"], capsys, "blocker is a file")


@pytest.mark.parametrize("kind", ["image list", "corpus list"])
def test_non_utf8_list_files_name_the_file(tmp_path, kind):
    listing = tmp_path / "list.txt"
    listing.write_bytes("caf\xe9.jpg\n".encode("latin-1"))
    if kind == "image list":
        data = tmp_path / "data.yaml"
        data.write_text(f"path: {tmp_path}\nval: list.txt\nnames: [thing]\n")
        with pytest.raises(DataError, match=r"list.txt: image list is not UTF-8"):
            yolo_dataset(data)
    else:
        from zoo.eval.corpus import list_file_corpus

        with pytest.raises(DataError, match=r"list.txt: corpus file list is not UTF-8"):
            list_file_corpus(listing)


def test_16_bit_copy_of_bus_detects_what_the_8_bit_one_does(tmp_path, nano_checkpoint, bus_image, one_torch_thread):
    """The issue's case: the 16-bit copy gave 'no detections' where the 8-bit one gives 8."""
    rgb = load_image(bus_image)
    gray8 = np.asarray(Image.fromarray(rgb).convert("L"))
    Image.fromarray(gray8).save(tmp_path / "bus8.png")
    Image.fromarray(gray8.astype(np.uint16) * 257).save(tmp_path / "bus16.png")  # 16-bit, same picture
    model = zoo.create_model("leyolo-nano", checkpoint_path=nano_checkpoint).fuse()
    eight, sixteen = zoo.predict(model, [tmp_path / "bus8.png", tmp_path / "bus16.png"])  # at its own 320
    assert len(eight) >= 4
    assert sixteen.labels.tolist() == eight.labels.tolist()
    assert torch.equal(sixteen.boxes, eight.boxes)
    assert zoo.predict(model, Image.open(tmp_path / "bus16.png"))[0].labels.tolist() == \
        eight.labels.tolist()  # a PIL image given directly is converted the same way
