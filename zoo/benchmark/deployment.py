"""Deployment rows of ``zoo bench``: each detector in every runtime effzoo exports to, timed side by side.

Why: FLOPs are what a paper compares, milliseconds are what a deployment pays, and the two part ways
(depthwise convolutions are cheap in FLOPs and memory-bound in time; an int8 file is only faster where the
runtime fuses it into integer kernels). Per detector, at the size its paper reports an mAP at (so every
point of the latency-vs-accuracy plot has a published accuracy; ``--imgsz`` overrides), batch 1:

* five runtimes, all timed in one interleaved loop (``zoo.export.latency``: rotating blocks, median of
  block means, quartiles): eager PyTorch on the fused model, onnxruntime on the ``cpu`` (float32) and
  ``edge`` (int8) files, OpenVINO on the float32 IR (float32 inference precision, what its parity check
  measured) and the NNCF int8 IR; every file comes from ``zoo.export``, float files parity-checked;
* the fastest runtime, and the int8 speed-up of each runtime (int8 / float32 latency, < 1 is faster);
* the int8 files' accuracy: with released COCO weights, *agreement* with the float32 model on real photos
  (``zoo.tasks.detection.agreement``, the exporter's own check); for the model the benchmark trained on the
  synthetic set, the true mAP50-95 change on its val split, at the size it was trained at; for untrained
  models nothing (latency does not depend on the weights; accuracy does).

``reference_latency`` times YOLO11n / YOLOv8n (built from ultralytics' YAMLs, exported by ultralytics
itself) in onnxruntime and OpenVINO when ultralytics is installed: the reference points of the plot.

``zoo bench`` runs both in a fresh interpreter (``zoo.benchmark.worker``: OpenVINO must not load in the
benchmark process).
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import tempfile
from pathlib import Path
from typing import Any

import torch

from zoo.benchmark.latency import inference_copy
from zoo.benchmark.measure import reported, stopwatch
from zoo.benchmark.settings import BenchSettings
from zoo.core.factory import create_model
from zoo.core.registry import ModelCard
from zoo.export import export_onnx
from zoo.export.latency import interleaved_latency, openvino_runner, ort_runner, torch_runner
from zoo.runtime.openvino import EXTRA_NOTE, openvino_available

logger = logging.getLogger(__name__)

RUNTIMES = {"eager": "eager PyTorch (fused)", "ort-fp32": "onnxruntime fp32", "ort-int8": "onnxruntime int8",
            "ov-fp32": "OpenVINO fp32", "ov-int8": "OpenVINO int8"}
INT8_PAIRS = {"onnxruntime": ("ort-int8", "ort-fp32"), "openvino": ("ov-int8", "ov-fp32")}
# Reference detectors: ultralytics' own export of its YAML-built models; mAP50-95 on COCO val2017 at 640 as
# published in the Ultralytics model docs.
REFERENCES = {"yolo11n": ("yolo11n.yaml", 39.5), "yolov8n": ("yolov8n.yaml", 37.3)}
REFERENCE_SOURCE = "Ultralytics docs (docs.ultralytics.com/models/yolo11, /models/yolov8): COCO val2017 mAP50-95 @640"
REFERENCE_SIZE = 640
MEASURE_ONLY = 1.0  # int8 check bound: any accuracy passes, so the benchmark reports the number instead of failing


def deployment_size(card: ModelCard, settings: BenchSettings) -> int:
    """``settings.imgsz``, else the largest size the paper reports an mAP at, else the card's default size."""
    if settings.imgsz:
        return settings.imgsz
    sizes = [int(k.split("@")[1]) for k in card.paper if k.startswith("map50-95@")]
    return max(sizes) if sizes else card.input_size


def model_deployment(card: ModelCard, settings: BenchSettings, *, weights: str | Path | None = None,
                     trained_on: str | None = None, trained_size: int | None = None) -> dict[str, Any]:
    """Latency of ``card`` in every runtime, int8 speed-ups and int8 accuracy (module docstring).

    Args:
        weights: checkpoint (found, or trained by the benchmark); ``None``: fresh weights, latency only.
        trained_on / trained_size: the data spec and image size the benchmark trained ``weights`` on: the
            int8 files' mAP change is then measured there (else, with weights, agreement on real photos).
    """
    size = deployment_size(card, settings)
    threads = torch.get_num_threads()
    model = create_model(card.name, checkpoint_path=weights).eval()
    out: dict[str, Any] = {"input_size": size, "batch": 1, "threads": threads,
                           "weights": str(weights) if weights else None, "runtimes": {}, "int8_accuracy": {},
                           "notes": []}
    have_ov = openvino_available()
    if not have_ov:
        out["notes"].append(f"OpenVINO rows not measured: {EXTRA_NOTE}")
    check_here = weights is not None and trained_on is None  # COCO weights: agreement at the timed size
    with tempfile.TemporaryDirectory(prefix="effzoo-bench-deploy-") as tmp, stopwatch() as elapsed:
        files = _export_all(model, Path(tmp), size, settings, have_ov, check_int8=check_here, out=out)
        if check_here:
            out["int8_accuracy"] = {rt: acc for rt, acc in out.pop("_accuracy").items() if acc}
        x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
        candidates = {"eager": torch_runner(inference_copy(model), x)}
        for key, path in files.items():
            runner = ort_runner if key.startswith("ort") else openvino_runner
            candidates[key] = runner(path, x, threads)
        stats = interleaved_latency(candidates, blocks=settings.deploy_blocks, calls_per_block=settings.deploy_calls,
                                    warmup=settings.latency_warmup)
        out["seconds"] = round(elapsed(), 2)
    for key, s in stats.items():
        out["runtimes"][key] = {"median_ms": round(s.median_ms, 4), "q1_ms": round(s.q1_ms, 4),
                                "q3_ms": round(s.q3_ms, 4), "blocks": s.blocks, "calls_per_block": s.calls_per_block}
    out["method"] = (f"zoo.export.latency.interleaved_latency: {settings.deploy_blocks} rotating blocks of "
                     f"{settings.deploy_calls} calls per runtime, median of block means, batch 1, {threads} threads")
    out["fastest"] = min(out["runtimes"], key=lambda k: out["runtimes"][k]["median_ms"])
    out["int8_speedup"] = {rt: round(out["runtimes"][q]["median_ms"] / out["runtimes"][f]["median_ms"], 4)
                           for rt, (q, f) in INT8_PAIRS.items() if q in out["runtimes"] and f in out["runtimes"]}
    if weights is None:
        out["notes"].append("untrained weights: int8 accuracy not measured (latency does not depend on the weights)")
    elif trained_on is not None:
        out["int8_accuracy"] = _trained_accuracy(model, trained_on, trained_size or size, settings, have_ov, out)
    return out


def _export_all(model: torch.nn.Module, folder: Path, size: int, settings: BenchSettings, have_ov: bool, *,
                check_int8: bool, out: dict[str, Any]) -> dict[str, Path]:
    """The deployment files of ``model`` at ``size``; int8 accuracy reports go to ``out["_accuracy"]``."""
    common: dict[str, Any] = {"imgsz": size, "batch": 1}
    int8: dict[str, Any] = {"calibration_size": settings.deploy_calib_size, "check": check_int8,
                            "tolerance": MEASURE_ONLY}
    results = {"ort-fp32": export_onnx(model, "cpu", out=folder / "cpu.onnx", **common),
               "ort-int8": export_onnx(model, "edge", out=folder / "edge.onnx", **common, **int8)}
    if have_ov:
        from zoo.export.openvino_export import export_openvino  # deferred: optional extra

        results["ov-fp32"] = export_openvino(model, out=folder / "ov.xml", **common)
        results["ov-int8"] = export_openvino(model, int8=True, out=folder / "ov-int8.xml", **common, **int8)
    out["files"] = {k: {"file_mb": round(r.size_mb, 3), "export_seconds": round(r.seconds, 2)}
                    for k, r in results.items()}
    out["_accuracy"] = {rt: _accuracy_record(results[q].parity) for rt, (q, _) in INT8_PAIRS.items() if q in results}
    return {k: r.path for k, r in results.items()}


def _accuracy_record(parity: Any) -> dict[str, Any] | None:
    """``{"kind": "agreement" | "map_change", ...}`` from an int8 export's check, None when it measured none."""
    acc = parity.accuracy
    if not acc:
        return None
    if str(acc.get("check_metric", "")).startswith("agreement"):
        return {"kind": "agreement", "map50": round(acc["onnx"]["AP50"], 4), "map50_95": round(acc["onnx"]["AP"], 4),
                "data": str(acc.get("data", "real photos"))}
    return {"kind": "map_change", "float_map50_95": round(100 * acc["torch"]["AP"], 3),
            "int8_map50_95": round(100 * acc["onnx"]["AP"], 3),
            "change_points": round(100 * (acc["onnx"]["AP"] - acc["torch"]["AP"]), 3),
            "data": str(acc.get("data", "held-out split"))}


def _trained_accuracy(model: torch.nn.Module, data: str, size: int, settings: BenchSettings, have_ov: bool,
                      out: dict[str, Any]) -> dict[str, Any]:
    """The int8 files' mAP change on the trained-on set's val split, at the size the model was trained at."""
    with tempfile.TemporaryDirectory(prefix="effzoo-bench-int8-") as tmp:
        kw: dict[str, Any] = {"imgsz": size, "batch": 1, "calibration": data, "eval_data": data,
                              "calibration_size": settings.deploy_calib_size, "tolerance": MEASURE_ONLY}
        results = {"onnxruntime": export_onnx(model, "edge", out=Path(tmp) / "edge.onnx", **kw)}
        if have_ov:
            from zoo.export.openvino_export import export_openvino  # deferred: optional extra

            results["openvino"] = export_openvino(model, int8=True, out=Path(tmp) / "ov-int8.xml", **kw)
    found = {rt: _accuracy_record(r.parity) for rt, r in results.items()}
    for rt, rec in found.items():
        if rec is None:
            out["notes"].append(f"{rt} int8 mAP change not measured: " + "; ".join(results[rt].parity.notes))
        else:
            rec["input_size"] = size
    return {rt: rec for rt, rec in found.items() if rec}


def reference_files(folder: Path, notes: list[str], *, openvino: bool = True) -> dict[str, tuple[Path, Path | None]]:
    """YOLO11n / YOLOv8n at ``REFERENCE_SIZE``: ultralytics' own ONNX export of its YAML-built model (latency
    does not depend on weights) and, with ``openvino``, the float32 IR converted from it; {} without
    ultralytics. Failures become notes: an optional peer must not sink the benchmark."""
    if importlib.util.find_spec("ultralytics") is None:
        notes.append("YOLO11n/YOLOv8n reference points not measured: ultralytics is not installed "
                     "(pip install 'effzoo[peers]')")
        return {}
    from ultralytics import YOLO

    out: dict[str, tuple[Path, Path | None]] = {}
    for name, (yaml, _) in REFERENCES.items():
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.chdir(folder):  # ultralytics writes to cwd
                path = Path(YOLO(yaml).export(format="onnx", imgsz=REFERENCE_SIZE, opset=17, dynamic=False,
                                              batch=1)).resolve()
            xml = None
            if openvino:
                import openvino as ov  # deferred: optional extra

                xml = folder / f"{name}.xml"
                ov.save_model(ov.convert_model(str(path)), str(xml), compress_to_fp16=False)
            out[name] = (path, xml)
        except Exception as err:  # an optional peer must not sink the benchmark
            notes.append(f"{name}: ultralytics export failed ({type(err).__name__}: {err}); reference skipped")
    return out


def reference_latency(settings: BenchSettings, notes: list[str]) -> list[dict[str, Any]]:
    """YOLO11n / YOLOv8n at 640 in onnxruntime and OpenVINO (float32), one interleaved loop; [] without ultralytics."""
    threads = torch.get_num_threads()
    x = torch.rand(1, 3, REFERENCE_SIZE, REFERENCE_SIZE, generator=torch.Generator().manual_seed(0))
    candidates, rows = {}, []
    with tempfile.TemporaryDirectory(prefix="effzoo-bench-refs-") as tmp:
        for name, (path, xml) in reference_files(Path(tmp), notes, openvino=openvino_available()).items():
            candidates[f"{name} ort-fp32"] = ort_runner(path, x, threads)
            if xml is not None:
                candidates[f"{name} ov-fp32"] = openvino_runner(xml, x, threads)
        stats = interleaved_latency(candidates, blocks=settings.deploy_blocks, calls_per_block=settings.deploy_calls,
                                    warmup=settings.latency_warmup) if candidates else {}
    for name, (_, map_) in REFERENCES.items():
        times = {key.split(" ")[1]: {"median_ms": round(s.median_ms, 4), "q1_ms": round(s.q1_ms, 4),
                                     "q3_ms": round(s.q3_ms, 4)}
                 for key, s in stats.items() if key.startswith(name + " ")}
        if times:
            rows.append({"name": name, "input_size": REFERENCE_SIZE, "threads": threads, "runtimes": times,
                         "reported": reported("map50-95", map_, REFERENCE_SOURCE, input_size=REFERENCE_SIZE,
                                              dataset="COCO val2017")})
    return rows
