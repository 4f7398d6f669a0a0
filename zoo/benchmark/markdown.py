"""``bench.md``: a header that says what was run and on what budget, then one table per family.

Measured and reported numbers never share a column: quality columns are headed "measured" (the data and
budget are in the header and the "measured on" column) or "reported" (the papers' numbers; sources listed
at the end). A dash means "not measured"; the reason is in the notes.
"""
from __future__ import annotations

from typing import Any

from zoo.tasks import DETECTION, LANGUAGE_MODELING

DASH = "—"


def _val(rec: dict[str, Any] | None) -> float | None:
    return None if rec is None else rec.get("value")


def _num(x: float | None, digits: int = 2) -> str:
    return DASH if x is None else f"{x:.{digits}f}"


def _si(n: float | None) -> str:
    """Element counts: 65.5K, 2.36M, 1.2G (3 significant digits)."""
    if n is None:
        return DASH
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.3g}{suffix}"
    return f"{n:.0f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _reported(entry: dict[str, Any], metric: str) -> list[dict[str, Any]]:
    return [r for r in entry.get("reported", []) if r["metric"] == metric]


def _latency(entry: dict[str, Any], key: str) -> str:
    lat = entry.get("latency") or {}
    return _num(_val(lat.get(key)), 1)


# -- header ---------------------------------------------------------------------------------------------
def cpu_flags_text(flags: dict[str, bool]) -> str:
    """``has avx2 avx512_vnni ...; lacks amx_int8 ...`` (what int8 / bf16 latency numbers need beside them)."""
    have, lack = [f for f, on in flags.items() if on], [f for f, on in flags.items() if not on]
    return f"has {' '.join(have) or 'none of ' + ' '.join(lack)}" + (f"; lacks {' '.join(lack)}" if have and lack else "")


def header(report: dict[str, Any]) -> str:
    s, sel, m, v = report["settings"], report["selection"], report["machine"], report["versions"]
    total = report["timing"]["total_s"]
    cmd = " ".join(report["command"]) if report.get("command") else "zoo.bench()"
    det_set = (f"the synthetic shapes set ({s['det_synthetic']['num_train']} train / {s['det_synthetic']['num_val']} "
               f"val images, {s['det_synthetic']['image_size']} px)" if s.get("det_synthetic") else
               "the default synthetic shapes set (512 train / 64 val images, 256 px)") \
        if s["data"] == "synthetic" else f"`{s['data']}`"
    trained = sel["trained_by_bench"]
    lines = [
        "# effzoo benchmark",
        "",
        f"`{cmd}` · {report['created']} · effzoo {report['effzoo_version']}"
        + (f" ({report['git_commit']})" if report.get("git_commit") else "")
        + f" · torch {v.get('torch')} · onnxruntime {v.get('onnxruntime')} · {m['cpu']}"
        + (f" ({cpu_flags_text(m['cpu_flags'])})" if m.get("cpu_flags") else "") + ", "
          f"{m.get('cpus_available', m['cpu_count'])} CPUs, torch {m['torch_threads']} threads"
        + (f", load average at start {m['load_average_at_start'][0]}" if m.get("load_average_at_start") else "")
        + (f" · total wall time {total / 60:.1f} min" if total is not None else ""),
        "",
        f"**Selection.** {len(sel['models'])} models"
        + (f" matching `{s['pattern']}`" if s["pattern"] else " (every registered model)")
        + f": {len(sel['detectors'])} detectors, {len(sel['transformers'])} PI transformers."
        + (" **Quick preset** (tiny budgets: a smoke run, not a result)." if s["quick"] else ""),
        "",
        "**Cost** (measured, every model): parameters; GFLOPs in the paper convention (`zoo.count_flops`, "
        "2 x MACs + BatchNorm/upsample rules, fused model) and the nonlinearity census from the same trace; "
        "for transformers the private-inference cost of `zoo.pi_cost` (a published 2PC measurement when one "
        "exists for that architecture, else effzoo's own 2PC measurement (`zoo pi-measure`, communication only) where "
        "one was made, else the spec §8.3 estimate: the provenance column says which).",
        "",
        "**Quality.** *measured* = computed in this run; *reported* = the paper's number (sources at the end), "
        f"never in the same column. Detectors: COCO-style mAP50-95 on {det_set}, from weights found in "
        "`--weights-dir` / the local weights folder, or for "
        + ", ".join(f"`{n}`" for n in s["det_train_models"])
        + f" from a run of {s['det_max_steps']} steps x {s['det_batch']} images at {s['det_imgsz']} px trained "
          "from scratch by the benchmark. Transformers: perplexity on the held-out split of "
          f"`{s['lm_corpus']}` (byte-level, "
        + (f"{s['lm_val_chunks']} fixed-seed chunks" if s["lm_val_chunks"] else "every chunk")
        + f") for the size(s) {', '.join(s['lm_train_sizes'])}, each trained for {s['lm_max_steps']} steps x "
          f"{s['lm_batch']} sequences of {s['lm_seq_len']} tokens (spec §9.2 recipe otherwise); the "
          "GPT-2-small-sized variants (~100M+ parameters, hours of CPU each) are not trained: their quality "
          "is the reported one. Trained runs are cached under `cache/` (reused unless `--fresh`)"
        + (f"; trained in this selection: {len(trained)}." if trained else "."),
        "",
    ]
    if s["latency"]:
        lines += [f"**Latency** (measured): batch 1 on the CPU at the model's default input size, median of "
                  f"{s['latency_repeats']} runs after {s['latency_warmup']} warm-up, eager PyTorch on the "
                  "fused/folded inference graph and onnxruntime on its parity-checked `export_onnx(target='cpu')` "
                  f"file; models above {s['ort_max_params'] / 1e6:.0f}M parameters: eager only, "
                  f"{s['latency_repeats_large']} runs.{_busy(m)}", ""]
    return "\n".join(lines)


def _busy(machine: dict[str, Any]) -> str:
    """A warning when other jobs shared the CPUs (load average above the CPU count at start or end)."""
    cpus = machine.get("cpus_available") or machine.get("cpu_count") or 1
    loads = [machine.get(k, [0])[0] for k in ("load_average_at_start", "load_average_at_end") if machine.get(k)]
    if loads and max(loads) > cpus:
        return (f" Other jobs shared the machine (load average up to {max(loads):.1f} on {cpus} CPUs): latencies "
                "are noisy, compare them within this table only.")
    return ""


# -- tables -----------------------------------------------------------------------------------------------
def detector_tables(entries: list[dict[str, Any]]) -> str:
    rows, size_rows = [], []
    for e in entries:
        default = e["cost"].get(str(e["input_size"]), {})
        q = e["quality"]["measured"]
        reported = "; ".join(f"{r['value']} @{r['input_size']}" for r in _reported(e, "map50-95")) or DASH
        rows.append([f"`{e['name']}`", _num(_val(e["params"]) / 1e6 if e["params"] else None, 2),
                     str(e["input_size"]), _num(_val(default.get("gflops")), 3),
                     _si(_val(default.get("nonlinear"))), _latency(e, "eager_ms"), _latency(e, "onnxruntime_ms"),
                     _map_cell(q), _measured_on(q, e), reported])
        paper = {r["input_size"]: r["value"] for r in _reported(e, "gflops")}
        for size, cost in e["cost"].items():
            g = _val(cost.get("gflops"))
            p = paper.get(int(size))
            diff = f"{100 * (g - p) / p:+.1f} %" if g is not None and p else DASH
            label = f"{size} (measured mAP's size)" if cost.get("registered") is False else size
            size_rows.append([f"`{e['name']}`", label, _num(g, 4), _num(p, 2), diff])
    main = _table(["model", "params (M)", "imgsz", "GFLOPs (measured)", "nonlinear elements", "eager ms",
                   "onnxruntime ms", "mAP50-95 measured", "measured on", "mAP50-95 reported (COCO val2017)"], rows)
    sizes = _table(["model", "imgsz", "GFLOPs measured", "GFLOPs reported", "difference"], size_rows)
    return f"## Detectors\n\n{main}\n\nGFLOPs at every registered input size, measured vs reported:\n\n{sizes}\n"


def _map_cell(q: dict[str, Any] | None) -> str:
    """The measured mAP, with the recipe's seed-to-seed std next to it when known (``21.3 ± 1.1``)."""
    cell = _num(_val(q), 1)
    if q is not None and q.get("seed_std") is not None:
        cell += f" ± {q['seed_std']:.1f} (seed std)"
    return cell


def _measured_on(q: dict[str, Any] | None, e: dict[str, Any]) -> str:
    if q is None:
        return DASH
    t = e.get("training")
    budget = f", trained {t['steps']} steps" if t else ""
    return f"{q['dataset']} @{q['imgsz']} px{budget}"


def deployment_table(entries: list[dict[str, Any]], references: list[dict[str, Any]]) -> str:
    """Per detector: ms per runtime, the fastest, int8 / fp32 per runtime, int8 accuracy; YOLO references."""
    keys = ("eager", "ort-fp32", "ort-int8", "ov-fp32", "ov-int8")
    rows = []
    for e in entries:
        dep = e.get("deployment")
        if not dep:
            continue
        times = dep["runtimes"]
        speed = dep.get("int8_speedup", {})
        rows.append([f"`{e['name']}`", str(dep["input_size"]), *[_ms(times.get(k)) for k in keys],
                     f"{RUNTIME_NAMES.get(dep['fastest'], dep['fastest'])}",
                     *[_num(speed.get(rt), 2) + ("x" if rt in speed else "") for rt in ("onnxruntime", "openvino")],
                     _int8_accuracy(dep)])
    for r in references:
        rows.append([f"{r['name']} (ultralytics export; reported {r['reported']['value']} mAP)", str(r["input_size"]),
                     DASH, _ms(r["runtimes"].get("ort-fp32")), DASH, _ms(r["runtimes"].get("ov-fp32")), DASH,
                     DASH, DASH, DASH, DASH])
    if not rows:
        return ""
    dep0 = next(e["deployment"] for e in entries if e.get("deployment"))
    table = _table(["model", "imgsz", "eager ms", "ORT fp32 ms", "ORT int8 ms", "OpenVINO fp32 ms",
                    "OpenVINO int8 ms", "fastest", "int8/fp32 ORT", "int8/fp32 OpenVINO", "int8 accuracy"], rows)
    return ("## Deployment\n\nBatch-1 latency (measured) of every runtime `zoo export` targets, all of one model "
            f"timed in one interleaved loop ({dep0['method']}); median [quartiles] in ms. Detectors are timed at the "
            "size their paper reports an mAP at. int8/fp32 < 1 means the int8 file is faster. int8 accuracy: "
            "agreement (mAP50) with the float32 model on real photos for COCO weights, the mAP50-95 change on the "
            "val split for the model the benchmark trained. The YOLO rows are timed in their own interleaved loop "
            "(`pareto_latency.png` plots all of them).\n\n" + table + "\n")


RUNTIME_NAMES = {"eager": "eager", "ort-fp32": "ORT fp32", "ort-int8": "ORT int8", "ov-fp32": "OpenVINO fp32",
                 "ov-int8": "OpenVINO int8"}


def _ms(t: dict[str, Any] | None) -> str:
    if not t:
        return DASH
    return f"{t['median_ms']:.1f} [{t['q1_ms']:.1f}-{t['q3_ms']:.1f}]"


def _int8_accuracy(dep: dict[str, Any]) -> str:
    parts = []
    for rt, short in (("onnxruntime", "ORT"), ("openvino", "OpenVINO")):
        acc = dep.get("int8_accuracy", {}).get(rt)
        if not acc:
            continue
        if acc["kind"] == "agreement":
            parts.append(f"{short}: agreement mAP50 {acc['map50']:.3f}")
        else:
            parts.append(f"{short}: {acc['float_map50_95']:.1f} -> {acc['int8_map50_95']:.1f} "
                         f"({acc['change_points']:+.1f} pt @{acc.get('input_size', dep['input_size'])})")
    return "; ".join(parts) or DASH


def transformer_table(entries: list[dict[str, Any]]) -> str:
    rows = []
    for e in entries:
        T = str(e["input_size"])
        cost = e["cost"].get(T, {})
        census = (cost.get("nonlinear") or {}).get("by_kind", {})
        act = census.get("gelu") or census.get("relu") or census.get("leaky_relu")
        act_kind = "G" if census.get("gelu") else ("R" if census.get("relu") or census.get("leaky_relu") else "")
        pi = (e.get("pi_cost") or {}).get(T)
        prov = DASH if pi is None else {"reported": "published", "measured": "measured (2PC)"}.get(pi["kind"], "estimated")
        ppl_rep = [r for r in _reported(e, "ppl") if r["input_size"] == e["input_size"]]
        rows.append([
            f"`{e['name']}`", e.get("variant") or DASH, T, _num(_val(e["params"]) / 1e6 if e["params"] else None, 2),
            _num(_val(cost.get("gflops")), 3), _si(census.get("softmax")), _si(census.get("layer_norm")),
            f"{_si(act)} {act_kind}".strip() if act else DASH, _si(_val(cost.get("nonlinear"))),
            _num(pi["comm_gb"] if pi else None, 2), _num(pi["latency_min"] if pi else None, 2), prov,
            _latency(e, "eager_ms"), _latency(e, "onnxruntime_ms"), _num(_val(e["quality"]["measured"]), 2),
            _num(ppl_rep[0]["value"], 3) if ppl_rep else DASH])
    table = _table(["model", "variant", "T", "params (M)", "GFLOPs (measured)", "softmax", "LayerNorm",
                    "FFN act.", "nonlinear total", "PI comm GB", "PI latency min", "PI cost", "eager ms",
                    "onnxruntime ms", "PPL measured", "PPL reported (CodeParrot)"], rows)
    return ("## PI transformers\n\nNonlinearity census = elements per forward at T tokens (measured); PI cost = "
            "one output token from T input tokens under 2PC (`zoo.pi_cost`).\n\n" + table + "\n")


def timing_table(report: dict[str, Any]) -> str:
    t = report["timing"]
    rows = [[r["stage"], str(r["items"]), f"{r['seconds']:.1f}", f"{r.get('cpu_seconds', 0.0):.1f}",
             f"{100 * r['share']:.0f} %"] for r in t["stages"]]
    rows.append(["**total**", "", f"**{t['total_s']:.1f}**", f"{t.get('total_cpu_s', 0.0):.1f}", "100 %"])
    return ("## Where the time went\n\nWall seconds per stage, and the CPU seconds this process (and its data "
            "workers) used: on a shared machine the gap is time spent waiting for a core.\n\n"
            + _table(["stage", "items", "wall s", "CPU s", "share of wall"], rows) + "\n")


def notes(report: dict[str, Any]) -> str:
    lines = []
    for e in report["models"]:
        for n in e["quality"]["notes"] + ((e.get("latency") or {}).get("notes") or []) + \
                ((e.get("deployment") or {}).get("notes") or []):
            lines.append(f"- `{e['name']}`: {n}")
        for err in e["errors"]:
            lines.append(f"- `{e['name']}`: **error** in {err['stage']}: {err['error']}")
    sources = sorted({r["source"] for e in report["models"] for r in e.get("reported", []) if r.get("source")})
    lines = [f"- {n}" for n in report.get("notes", [])] + _dedupe(lines)
    out = "## Notes\n\n" + ("\n".join(lines) if lines else "None.") + "\n"
    if sources:
        out += "\n## Sources of reported numbers\n\n" + "\n".join(f"- {s}" for s in sources) + "\n"
    return out


def _dedupe(lines: list[str]) -> list[str]:
    """Collapse the same note on many models ("not trained in the bench budget" x 24) into one line."""
    by_note: dict[str, list[str]] = {}
    for line in lines:
        name, _, note = line.partition(": ")
        by_note.setdefault(note, []).append(name[2:])
    out = []
    for note, names in by_note.items():
        who = names[0] if len(names) == 1 else f"{len(names)} models ({names[0]} ... {names[-1]})"
        out.append(f"- {who}: {note}")
    return out


def render_markdown(report: dict[str, Any]) -> str:
    """The whole ``bench.md``."""
    det = [e for e in report["models"] if e["task"] == DETECTION]
    lm = [e for e in report["models"] if e["task"] == LANGUAGE_MODELING]
    parts = [header(report)]
    if det:
        parts.append(detector_tables(det))
        deployment = deployment_table(det, report.get("deployment_references", []))
        if deployment:
            parts.append(deployment)
    if lm:
        parts.append(transformer_table(lm))
    parts += [timing_table(report), notes(report)]
    return "\n".join(parts)
