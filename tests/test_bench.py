"""``zoo bench``: the whole pipeline on two tiny models, and the numbers it writes checked against the tools
that should have produced them (``count_flops``, the parameter sum, the COCO evaluator, the perplexity
evaluator). Quick budgets keep it to well under a minute on 2 cores."""
from __future__ import annotations

import json
import math
import shutil
import sysconfig
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

import zoo
from zoo.benchmark.markdown import render_markdown
from zoo.benchmark.plots import pareto_front

DETECTOR, LM = "leyolo-nano", "pi-gpt2-tiny-sm-ln-g"
TOP_KEYS = {"schema", "created", "command", "effzoo_version", "git_commit", "versions", "machine", "settings",
            "selection", "models", "deployment_references", "notes", "timing"}


def _corpus(folder: Path) -> Path:
    """A small corpus of real code (stdlib files) with at least two documents in the held-out split."""
    from zoo.eval.corpus import split_of

    folder.mkdir()
    src = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"), key=lambda p: p.stat().st_size)
    files = [p for p in src if 4_000 < p.stat().st_size < 20_000]
    n_val = n_train = 0
    for path in files:
        split = split_of(path.name)
        if (split == "val" and n_val >= 3) or (split == "train" and n_train >= 12):
            continue
        shutil.copy(path, folder / path.name)
        n_val, n_train = n_val + (split == "val"), n_train + (split == "train")
        if n_val >= 3 and n_train >= 12:
            return folder
    pytest.skip("not enough stdlib files to build a corpus with a held-out split")


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("bench")
    mp = pytest.MonkeyPatch()
    mp.setenv("EFFZOO_CACHE", str(tmp / "cache"))  # synthetic set + token files in the test's own folder
    mp.setenv("EFFZOO_WEIGHTS", str(tmp / "no-weights"))  # never pick up a developer's released weights
    corpus = _corpus(tmp / "corpus")
    out = tmp / "out"
    from zoo.cli import main

    try:
        rc = main(["bench", "--quick", f"{DETECTOR},{LM}", "--lm-corpus", str(corpus), "--out", str(out)])
        report = json.loads((out / "bench.json").read_text())
        yield {"rc": rc, "out": out, "report": report, "corpus": corpus, "tmp": tmp}
    finally:
        mp.undo()


def _models(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in report["models"]}


def _records(obj: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every dict that holds a number under ``value``, with its JSON path."""
    found = []
    if isinstance(obj, dict):
        if "value" in obj and isinstance(obj["value"], (int, float)):
            found.append((path, obj))
        for k, v in obj.items():
            found += _records(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            found += _records(v, f"{path}[{i}]")
    return found


def test_bench_quick_writes_every_output_and_succeeds(bench_run, capsys):
    assert bench_run["rc"] == 0
    out = bench_run["out"]
    for name in ("bench.json", "bench.md", "pareto_detectors.png", "pareto_pi.png", "pareto_latency.png"):
        assert (out / name).is_file(), name
    for png in ("pareto_detectors.png", "pareto_pi.png", "pareto_latency.png"):
        with Image.open(out / png) as im:
            assert im.format == "PNG" and im.size[0] > 300
    md = (out / "bench.md").read_text()
    assert "mAP50-95 measured" in md and "mAP50-95 reported (COCO val2017)" in md
    assert "PPL measured" in md and "PPL reported (CodeParrot)" in md and "Where the time went" in md
    assert not list(out.glob(".*.tmp")), "atomic writes left temporary files"


def test_bench_json_schema_and_selection(bench_run):
    report = bench_run["report"]
    assert TOP_KEYS <= set(report) and report["schema"] == "effzoo-bench/1"
    assert report["settings"]["quick"] is True and report["versions"]["torch"] == torch.__version__
    assert report["selection"]["models"] == [DETECTOR, LM]
    assert set(report["selection"]["trained_by_bench"]) == {DETECTOR, LM}
    stages = {s["stage"] for s in report["timing"]["stages"]}
    assert {"cost", "quality: detectors", "quality: transformers", "latency", "deployment", "report"} <= stages
    assert report["timing"]["total_s"] >= sum(s["seconds"] for s in report["timing"]["stages"]) - 0.5
    for m in report["models"]:
        assert m["errors"] == [], m["errors"]


def test_every_number_is_finite_and_measured_or_labelled_reported(bench_run):
    records = _records(bench_run["report"]["models"])
    assert len(records) >= 12
    for path, rec in records:
        assert math.isfinite(rec["value"]), path
        if rec.get("kind") == "reported":
            assert rec["source"], path  # a published figure always names its source
        else:
            assert rec["method"] and rec["unit"], path
            assert isinstance(rec["seconds"], float) and rec["seconds"] >= 0, path
    for m in bench_run["report"]["models"]:
        lat = m["latency"]
        for key in ("eager_ms", "onnxruntime_ms"):
            assert lat[key]["value"] > 0 and len(lat[key]["runs_ms"]) == lat[key]["repeats"] == 3
            assert lat[key]["value"] == sorted(lat[key]["runs_ms"])[1]  # the median of the 3 runs
        assert lat["onnxruntime_ms"]["parity"]["passed"] is True
        assert m["quality"]["measured"] is not None


def test_cost_equals_count_flops_and_parameter_sum(bench_run):
    models = _models(bench_run["report"])
    for name, x in ((DETECTOR, torch.zeros(1, 3, 64, 64)), (LM, torch.zeros(1, 64, dtype=torch.long))):
        model = zoo.create_model(name)
        size = str(x.shape[-1])
        cost = models[name]["cost"][size]
        ref = zoo.count_flops(model, x, convention="paper", fused=True)
        assert cost["gflops"]["flops"] == ref.total
        assert cost["macs"]["value"] == ref.macs
        assert cost["nonlinear"]["value"] == ref.nonlinear.total
        assert cost["nonlinear"]["by_kind"] == dict(ref.nonlinear.by_kind)
        assert models[name]["params"]["value"] == sum(p.numel() for p in model.parameters())
    pi = models[LM]["pi_cost"]["64"]
    # tiny SM+LN+G at T=64 is one of the Cheetah 2PC rows measured by benchmarks/pi_measure_table.py (issue 19)
    assert pi["kind"] == "measured" and pi["comm_gb"] == pytest.approx(zoo.pi_cost(LM, seq_len=64).comm_gb)


def test_measured_quality_reproduces_with_the_evaluators(bench_run):
    models = _models(bench_run["report"])
    det = models[DETECTOR]
    q = det["quality"]["measured"]
    assert det["training"]["steps"] == 2 and Path(q["weights"]).is_file()
    assert 0.0 <= q["value"] <= 100.0 and q["imgsz"] == 64 and q["images"] == 4
    from zoo.benchmark.quality import synthetic_data
    from zoo.benchmark.settings import BenchSettings

    mp = pytest.MonkeyPatch()
    mp.setenv("EFFZOO_CACHE", str(bench_run["tmp"] / "cache"))
    try:
        data = synthetic_data(BenchSettings.quick_preset())
        stats = zoo.val(DETECTOR, data, weights=q["weights"], imgsz=64, batch=8)
    finally:
        mp.undo()
    assert q["value"] == pytest.approx(round(100 * stats["AP"], 3))
    assert str(q["imgsz"]) in det["cost"]  # the size mAP was measured at is counted too

    lm = models[LM]
    q = lm["quality"]["measured"]
    assert lm["training"]["steps"] == 3 and q["chunks"] == 8 and q["seq_len"] == 32
    assert 1.0 < q["value"] < 1000.0 and q["value"] == pytest.approx(math.exp(q["ce"]), rel=1e-4)
    reported = {(r["metric"], r["input_size"]): r for r in det["reported"]}
    assert reported[("map50-95", 320)]["value"] == 25.2 and reported[("map50-95", 320)]["kind"] == "reported"


def test_rerun_reuses_the_cached_training_run(bench_run):
    mp = pytest.MonkeyPatch()
    mp.setenv("EFFZOO_CACHE", str(bench_run["tmp"] / "cache"))
    try:
        again = zoo.bench(LM, quick=True, latency=False, lm_corpus=str(bench_run["corpus"]),
                          out=bench_run["out"], progress=False)  # same folder: same cache
    finally:
        mp.undo()
    first = _models(bench_run["report"])[LM]
    second = _models(again.report)[LM]
    assert second["training"]["cached"] is True and second["training"]["key"] == first["training"]["key"]
    assert second["quality"]["measured"]["value"] == first["quality"]["measured"]["value"]
    assert second["latency"] is None and "latency" not in {s["stage"] for s in again.report["timing"]["stages"]}


def test_fresh_retrains_instead_of_reusing_the_cache(bench_run):
    from zoo.benchmark.quality import MARKER

    run_dir = Path(_models(bench_run["report"])[LM]["training"]["run_dir"])
    (run_dir / MARKER).write_text(json.dumps({**json.loads((run_dir / MARKER).read_text()), "finished": "stale"}))
    mp = pytest.MonkeyPatch()
    mp.setenv("EFFZOO_CACHE", str(bench_run["tmp"] / "cache"))
    try:
        again = zoo.bench(LM, quick=True, latency=False, fresh=True, lm_corpus=str(bench_run["corpus"]),
                          out=bench_run["out"], progress=False)
    finally:
        mp.undo()
    training = _models(again.report)[LM]["training"]
    assert training["cached"] is False and training["finished"] != "stale" and training["run_dir"] == str(run_dir)
    assert json.loads((run_dir / MARKER).read_text())["finished"] == training["finished"]


def test_unknown_pattern_and_missing_data_are_one_line_errors(tmp_path, capsys):
    from zoo.cli import main

    assert main(["bench", "no-such-model*", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No registered model matches 'no-such-model*'" in err
    assert main(["bench", "leyolo-nano", "--data", str(tmp_path / "missing.yaml"), "--out", str(tmp_path)]) == 2
    assert "--data" in capsys.readouterr().err
    assert not (tmp_path / "bench.json").exists()


def test_pareto_front_keeps_only_undominated_points():
    pts = [(1.0, 20.0), (2.0, 30.0), (2.5, 25.0), (3.0, 30.0), (4.0, 40.0), (0.5, 10.0)]
    assert pareto_front(pts, maximize_y=True) == [(0.5, 10.0), (1.0, 20.0), (2.0, 30.0), (4.0, 40.0)]
    # perplexity: lower is better on both axes
    assert pareto_front([(1, 9.0), (2, 5.0), (3, 6.0), (4, 4.0)], maximize_y=False) == [(1, 9.0), (2, 5.0), (4, 4.0)]


def test_found_weights_are_evaluated_on_given_data_not_trained(tmp_path, nano_checkpoint, nano_golden, bus_image,
                                                               monkeypatch):
    """The --weights-dir + --data path: the released Nano on a one-image COCO set whose ground truth is the
    golden detections at 640. Measured at 480 (the largest size the paper reports for Nano)."""
    from zoo.models.leyolo.coco_names import COCO80_NAMES

    (tmp_path / "data" / "images").mkdir(parents=True)
    shutil.copy(bus_image, tmp_path / "data" / "images" / "bus.jpg")
    golden = nano_golden["bus_predict_default"]
    h, w = golden["orig_shape_hw"]
    anns = [{"id": i + 1, "image_id": 1, "category_id": d["class_id"] + 1, "iscrowd": 0,
             "bbox": [d["xyxy_full"][0], d["xyxy_full"][1], d["xyxy_full"][2] - d["xyxy_full"][0],
                      d["xyxy_full"][3] - d["xyxy_full"][1]],
             "area": (d["xyxy_full"][2] - d["xyxy_full"][0]) * (d["xyxy_full"][3] - d["xyxy_full"][1])}
            for i, d in enumerate(golden["detections"])]
    coco = {"images": [{"id": 1, "file_name": "bus.jpg", "height": h, "width": w}], "annotations": anns,
            "categories": [{"id": i + 1, "name": n} for i, n in enumerate(COCO80_NAMES)]}
    gt = tmp_path / "data" / "annotations.json"
    gt.write_text(json.dumps(coco))
    monkeypatch.setenv("EFFZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("EFFZOO_WEIGHTS", str(tmp_path / "no-weights"))
    result = zoo.bench(DETECTOR, quick=True, latency=False, data=str(gt), weights_dir=str(nano_checkpoint.parent),
                       out=tmp_path / "out", progress=False)
    entry = result.report["models"][0]
    q = entry["quality"]["measured"]
    assert entry["training"] is None and result.report["selection"]["trained_by_bench"] == []
    assert q["source"] == "weights found" and q["weights"] == str(nano_checkpoint) and q["imgsz"] == 480
    stats = zoo.val(DETECTOR, str(gt), weights=nano_checkpoint, imgsz=480, batch=8)
    assert q["value"] == pytest.approx(round(100 * stats["AP"], 3)) and q["value"] > 50


def test_deployment_rows_time_every_runtime_and_measure_the_int8_files(bench_run):
    """Every runtime in one loop; the int8 files' float side re-measures the quality stage's mAP (same weights,
    same val split, same size) through the exporter's own check, so the two code paths must agree."""
    nano = _models(bench_run["report"])[DETECTOR]
    dep = nano["deployment"]
    assert dep["input_size"] == 64 and dep["batch"] == 1  # --quick times at imgsz 64
    assert set(dep["runtimes"]) == {"eager", "ort-fp32", "ort-int8", "ov-fp32", "ov-int8"}
    for t in dep["runtimes"].values():
        assert 0 < t["q1_ms"] <= t["median_ms"] <= t["q3_ms"] and t["blocks"] == 2
    assert dep["fastest"] == min(dep["runtimes"], key=lambda k: dep["runtimes"][k]["median_ms"])
    ort, ov = dep["runtimes"]["ort-int8"]["median_ms"] / dep["runtimes"]["ort-fp32"]["median_ms"], \
        dep["runtimes"]["ov-int8"]["median_ms"] / dep["runtimes"]["ov-fp32"]["median_ms"]
    assert dep["int8_speedup"] == {"onnxruntime": pytest.approx(ort, rel=1e-3), "openvino": pytest.approx(ov, rel=1e-3)}
    measured = nano["quality"]["measured"]
    for rt in ("onnxruntime", "openvino"):
        acc = dep["int8_accuracy"][rt]
        assert acc["kind"] == "map_change" and acc["input_size"] == measured["imgsz"]
        assert acc["float_map50_95"] == pytest.approx(measured["value"], abs=0.01)
        assert acc["change_points"] == pytest.approx(acc["int8_map50_95"] - acc["float_map50_95"], abs=2e-3)
    md = render_markdown(bench_run["report"])  # bench.md itself is rewritten by later tests' runs
    assert "## Deployment" in md and f"| `{DETECTOR}` | 64 |" in md


def test_deployment_size_is_the_largest_size_with_a_published_map():
    from zoo.benchmark.deployment import deployment_size
    from zoo.benchmark.settings import BenchSettings
    from zoo.core.registry import get_card

    # spec leyolo.md §1: Nano 25.2 @320 / 31.3 @480, Small 38.2 @640, Medium 39.3 @640, Large 41.0 @768
    expected = {"leyolo-nano": 480, "leyolo-small": 640, "leyolo-medium": 640, "leyolo-large": 768}
    assert {n: deployment_size(get_card(n), BenchSettings()) for n in expected} == expected
    assert deployment_size(get_card("leyolo-large"), BenchSettings(imgsz=320)) == 320


def test_latency_points_pair_a_runtime_with_the_map_published_at_the_timed_size():
    from zoo.benchmark.plots import latency_points

    def entry(name, size, reported):
        return {"name": name, "task": "detection", "reported": reported,
                "deployment": {"input_size": size, "runtimes": {"ort-fp32": {"median_ms": 20.0},
                                                                "ov-int8": {"median_ms": 9.0}}}}

    nano = [{"metric": "map50-95", "value": 25.2, "input_size": 320},
            {"metric": "map50-95", "value": 31.3, "input_size": 480}]
    report = {"models": [entry("leyolo-nano", 480, nano), entry("leyolo-small", 512, [])]}
    assert latency_points(report) == {"ort-fp32": [(20.0, 31.3, "nano@480")], "ov-int8": [(9.0, 31.3, "nano@480")]}


def test_deployment_without_openvino_says_which_extra_and_times_the_rest(monkeypatch):
    import zoo.benchmark.deployment as deployment
    from zoo.benchmark.settings import BenchSettings
    from zoo.core.registry import get_card

    monkeypatch.setattr(deployment, "openvino_available", lambda: False)
    torch.manual_seed(0)
    dep = deployment.model_deployment(get_card(DETECTOR), BenchSettings.quick_preset())
    assert set(dep["runtimes"]) == {"eager", "ort-fp32", "ort-int8"} and set(dep["int8_speedup"]) == {"onnxruntime"}
    assert any("pip install effzoo[openvino]" in n for n in dep["notes"])
    assert any("untrained weights" in n for n in dep["notes"]) and dep["int8_accuracy"] == {}
