"""Training LeYOLO end to end: bad input refused before training, loss goes down, exact resume, overfit."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import zoo
from zoo.core.errors import CheckpointError, DataError
from zoo.engine.checkpointing import load_state, state_path

REPO = Path(__file__).resolve().parents[1]

# Everything off that is not needed to check the loop, so a step at 64 px takes a fraction of a second.
FAST = dict(imgsz=64, batch=4, workers=0, device="cpu", optimizer="AdamW", lr0=0.003, lrf=0.1, warmup_epochs=0.0,
            warmup_steps=2, nbs=0, plots=False, ema_tau=10.0)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """8 train / 2 val synthetic 64 px images (5 classes), generated once for the module."""
    from zoo.eval.datasets.synthetic import SyntheticConfig, generate

    return generate(tmp_path_factory.mktemp("data") / "shapes",
                    SyntheticConfig(num_train=8, num_val=2, image_size=64, min_size=10, max_size=30, seed=1))


def _losses(run: Path) -> list[tuple[int, float, float, float]]:
    rows = [json.loads(line) for line in (run / "steps.jsonl").read_text().splitlines()]
    return [(r["iteration"], r["box_loss"], r["cls_loss"], r["dfl_loss"]) for r in rows]


def _coco_without_images(folder: Path) -> Path:
    (folder / "images").mkdir(parents=True)
    ann = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "thing"}]}
    (folder / "annotations.json").write_text(json.dumps(ann))
    return folder


# -- bad input: clear errors, nothing trained, no run folder --------------------------------------------
def test_dataset_with_zero_images_is_refused_before_training(tmp_path):
    data = _coco_without_images(tmp_path / "empty")
    with pytest.raises(DataError, match="zero images"):
        zoo.train("leyolo-nano", data=str(data), out=str(tmp_path / "run"), **FAST)
    assert not (tmp_path / "run").exists()


def test_labels_outside_the_models_classes_are_refused(tmp_path, tiny_data):
    from zoo.core.checkpoint import save_safetensors

    weights = save_safetensors(zoo.create_model("leyolo-nano", num_classes=3), tmp_path / "nc3.safetensors")
    with pytest.raises(DataError, match=r"has class id [34], outside the model's 3 classes"):
        zoo.train("leyolo-nano", data=str(tiny_data), weights=str(weights), out=str(tmp_path / "run"), **FAST)
    assert not (tmp_path / "run").exists()


def test_unknown_recipe_key_and_conflicting_flags_fail_fast(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("imgsz: 64\nmosiac: 0.5\n")
    with pytest.raises(ValueError, match="unknown key 'mosiac'. Did you mean 'mosaic'"):
        zoo.train("leyolo-nano", config=recipe)
    with pytest.raises(ValueError, match="imgsz=100 must be a positive multiple of 32"):
        zoo.train("leyolo-nano", imgsz=100)


def test_shipped_recipes_load_and_name_real_keys():
    from zoo.tasks.base.recipe import load_config
    from zoo.tasks.detection.train_config import DetectionTrainConfig

    coco = load_config(DetectionTrainConfig, REPO / "configs" / "leyolo_coco.yaml")
    assert (coco.optimizer, coco.lr0, coco.lrf, coco.momentum, coco.epochs, coco.batch) == \
        ("SGD", 0.01, 0.01, 0.937, 500, 128)
    assert (coco.weight_decay * coco.batch * max(round(coco.nbs / coco.batch), 1) / coco.nbs) == pytest.approx(0.001)
    assert (coco.close_mosaic, coco.mosaic, coco.scale, coco.translate, coco.fliplr) == (10, 1.0, 0.5, 0.1, 0.5)
    assert (coco.hsv_h, coco.hsv_s, coco.hsv_v, coco.warmup_epochs, coco.warmup_bias_lr) == (0.015, 0.7, 0.4, 3.0, 0.0)
    load_config(DetectionTrainConfig, REPO / "configs" / "leyolo_synthetic.yaml")


# -- training -----------------------------------------------------------------------------------------
def _loss_on_training_images(model, data: Path) -> list[float]:
    """v8 loss terms of ``model`` on the 8 letterboxed training images, BatchNorm in batch mode.

    Normalised by the exact target-score sum (no clamp at 1): with a handful of tiny objects the v8
    normaliser is often clamped, which makes raw per-batch losses jump and not comparable across models.
    """
    from zoo.eval.datasets import load_dataset
    from zoo.models.leyolo.loss import DetectionLoss

    from zoo.tasks.detection.augment import Sample, letterbox_square, resize_long_side
    from zoo.tasks.detection.train_data import collate

    ds = load_dataset(str(data), "train")
    items = []
    for i, rec in enumerate(ds.records):
        smp = letterbox_square(resize_long_side(Sample(ds.load_image(i), rec.boxes, rec.labels), 64), 64)
        items.append((torch.from_numpy(smp.image.transpose(2, 0, 1).copy()),
                      torch.from_numpy(__import__("numpy").concatenate([smp.classes[:, None], smp.boxes], 1)).float()))
    images, targets = collate(items)
    with torch.no_grad():
        _, items = DetectionLoss(5)(model.train()(images.float() / 255), targets, normalizer=lambda s: s)
    return items.tolist()


def test_nano_loss_decreases_on_tiny_synthetic_set(tmp_path, tiny_data):
    """Fast sanity check of the whole pipeline (the mAP overfit test below is the slow, stronger one)."""
    import copy

    initial = {}
    grab = {"on_train_start": [lambda t: initial.setdefault("model", copy.deepcopy(t.model))]}
    result = zoo.train("leyolo-nano", data=str(tiny_data), out=str(tmp_path / "run"), epochs=8, val_period=8,
                       save_period=8, mosaic=0.0, scale=0.0, translate=0.0, callbacks=grab, **FAST)
    assert len((tmp_path / "run" / "steps.jsonl").read_text().splitlines()) == 16
    trained = zoo.create_model("leyolo-nano", num_classes=5)
    trained.load_state_dict(load_state(tmp_path / "run").model)
    before = _loss_on_training_images(initial["model"], tiny_data)
    after = _loss_on_training_images(trained, tiny_data)
    assert sum(after) < 0.9 * sum(before) and after[2] < 0.8 * before[2], (before, after)  # (box, cls, dfl)
    for name in ("last.safetensors", "best.safetensors", "last.state.pt", "last.json"):
        assert (result.run_dir / "weights" / name).is_file()
    model = zoo.create_model("leyolo-nano", checkpoint_path=result.last)  # deployable as is (EMA weights)
    assert model.num_classes == 5 and set(result.metrics) >= {"metrics/mAP50-95", "metrics/mAP50"}
    header = (tmp_path / "run" / "results.csv").read_text().splitlines()[0]
    assert header.startswith("epoch,iteration,train/box_loss,train/cls_loss,train/dfl_loss,metrics/mAP50-95")


def test_detection_resume_after_stop_matches_uninterrupted_run_bitwise(tmp_path, tiny_data):
    from zoo.tasks.base.training import StopTraining

    kw = dict(data=str(tiny_data), epochs=2, close_mosaic=1, val=False, **FAST)  # mosaic (then closed), affine,
    # HSV and flip on; 2 iterations per epoch, stopped in the middle of the second epoch

    def stop_after_3(trainer):
        if trainer.iteration == 3:
            raise StopTraining

    zoo.train("leyolo-nano", out=str(tmp_path / "a"), **kw)
    zoo.train("leyolo-nano", out=str(tmp_path / "b"), callbacks={"on_step_end": [stop_after_3]}, **kw)
    assert load_state(tmp_path / "b").iteration == 3
    with pytest.raises(CheckpointError, match="trained with model 'leyolo-nano' but 'leyolo-small' was requested"):
        zoo.train("leyolo-small", resume=tmp_path / "b")
    with pytest.raises(ValueError, match="epochs=4 differs from the run's epochs=2"):
        zoo.train(resume=tmp_path / "b", epochs=4)
    zoo.train(resume=tmp_path / "b")
    assert _losses(tmp_path / "b") == _losses(tmp_path / "a") and len(_losses(tmp_path / "a")) == 4
    a, b = load_state(tmp_path / "a"), load_state(tmp_path / "b")
    assert all(torch.equal(a.model[k], b.model[k]) for k in a.model)


def test_new_run_refuses_a_folder_that_holds_a_run(tmp_path, tiny_data):
    zoo.train("leyolo-nano", data=str(tiny_data), out=str(tmp_path / "r"), max_steps=1, val=False, **FAST)
    with pytest.raises(ValueError, match="already holds a training run; continue it with --resume"):
        zoo.train("leyolo-nano", data=str(tiny_data), out=str(tmp_path / "r"), max_steps=1, val=False, **FAST)


@pytest.mark.slow
def test_cli_resume_after_sigkill_reproduces_losses(tmp_path, tiny_data):
    """A real kill -9 in the middle of training, then `zoo train --resume`."""
    args = ["--data", str(tiny_data), "--epochs", "4", "--imgsz", "64", "--batch", "4", "--workers", "0",
            "--device", "cpu", "--set", "val=false", "--set", "plots=false", "--set", "optimizer=AdamW"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "zoo", "train", "leyolo-nano", *args]
    subprocess.run([*cmd, "--out", str(tmp_path / "a")], check=True, env=env, cwd=REPO, capture_output=True)
    proc = subprocess.Popen([*cmd, "--out", str(tmp_path / "b"), "--set", "save_every_steps=1"], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:
        state = tmp_path / "b" / "weights" / "last.json"
        if state.exists() and json.loads(state.read_text())["iteration"] >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(state_path(tmp_path / "b"), weights_only=True)["iteration"]
    assert 3 <= killed_at < 8
    out = subprocess.run([sys.executable, "-m", "zoo", "train", "--resume", str(tmp_path / "b"), "--json"],
                         check=True, env=env, cwd=REPO, capture_output=True, text=True)
    assert json.loads(out.stdout)["iterations"] == 8
    assert _losses(tmp_path / "b") == _losses(tmp_path / "a")


@pytest.mark.slow
def test_nano_overfits_eight_images_to_map50_above_0_8(tmp_path):
    """Nano learns 8 synthetic images by heart within 220 steps (BN running stats need ~200 at momentum 0.03)."""
    from zoo.eval.datasets.synthetic import SyntheticConfig, generate

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    data = generate(tmp_path / "d", SyntheticConfig(num_train=8, num_val=1, image_size=128, min_size=16, max_size=42))
    result = zoo.train("leyolo-nano", data=str(data), val_split="train", out=str(tmp_path / "r"), imgsz=128,
                       batch=8, workers=0, device="cpu", epochs=220, optimizer="AdamW", lr0=0.003, lrf=0.01,
                       lr_per_epoch=False, warmup_epochs=0.0, warmup_steps=10, nbs=0, weight_decay=0.0,
                       mosaic=0.0, translate=0.0, scale=0.0, hsv_h=0.0, hsv_s=0.0, hsv_v=0.0, fliplr=0.0, ema=False,
                       val_period=220, save_period=220, plots=False)
    assert result.iterations == 220
    assert result.metrics["metrics/mAP50"] >= 0.8, result.metrics


# -- DDP ------------------------------------------------------------------------------------------------
def _grads_then_stop(out_file: Path):
    from zoo.tasks.base.training import StopTraining

    def cb(trainer):
        if trainer.dist.is_main:
            torch.save({n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}, out_file)
        raise StopTraining
    return cb


def _frozen_bn_run(model: str, data: str, run_dir: str, out_file: str) -> None:
    """One detection step with BatchNorm in eval mode (per-rank batch statistics are the one thing DDP does
    not average, so they are taken out of the comparison), gradients saved by rank 0."""
    from zoo.engine.trainer import Trainer
    from zoo.tasks.base.recipe import load_config
    from zoo.tasks.detection.train import DetectionTask
    from zoo.tasks.detection.train_config import DetectionTrainConfig

    class FrozenBN(DetectionTask):
        def training_step(self, model, batch, ctx):
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.eval()
            return super().training_step(model, batch, ctx)

    cfg = load_config(DetectionTrainConfig, None, {**FAST, "model": model, "data": data, "val": False, "batch": 4,
                                                   "optimizer": "SGD", "ema": False})
    Trainer(FrozenBN(cfg), run_dir, callbacks={"on_before_optimizer_step": [_grads_then_stop(Path(out_file))]}).fit()


def _det_ddp_worker(rank: int, world: int, port: int, model: str, data: str, run_dir: str, out_file: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from zoo.core.distributed import cleanup_distributed

    try:
        _frozen_bn_run(model, data, run_dir, out_file)
    finally:
        cleanup_distributed()


@pytest.mark.slow
def test_medium_two_process_ddp_step_equals_one_process(tmp_path, tiny_data):
    """LeYOLO-Medium (dead layers -> find_unused_parameters) under 2-process gloo DDP: the averaged gradient
    equals one process on the concatenated batch (global target-score normaliser, global batch size)."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_det_ddp_worker, args=(2, port, "leyolo-medium", str(tiny_data), str(tmp_path / "ddp"),
                                              str(tmp_path / "ddp.pt")), nprocs=2, join=True, start_method="spawn")
    _frozen_bn_run("leyolo-medium", str(tiny_data), str(tmp_path / "one"), str(tmp_path / "one.pt"))
    ddp, one = torch.load(tmp_path / "ddp.pt"), torch.load(tmp_path / "one.pt")
    dead = [n for n in zoo.create_model("leyolo-medium", num_classes=5).state_dict() if n.startswith("model.38.")]
    assert dead and not any(n in one for n in dead)  # the dead layers get no gradient on either side
    assert ddp.keys() == one.keys()
    for name in one:
        torch.testing.assert_close(ddp[name], one[name], atol=1e-5, rtol=1e-4)


def test_cli_train_bad_flag_is_one_line_error_with_exit_code_2(capsys):
    from zoo.cli import main

    assert main(["train", "leyolo-nano", "--set", "mosiac=0.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown key 'mosiac'. Did you mean 'mosaic'" in err
    assert main(["train", "leyolo-nano", "--resume", "/nonexistent/run"]) == 2
    assert "No training state to resume" in capsys.readouterr().err
