"""The bench's detector row shows the recipe's seed-to-seed std next to its one-seed mAP, only where it applies."""
from __future__ import annotations

from zoo.benchmark.markdown import _map_cell
from zoo.benchmark.settings import DET_SEED_STD, BenchSettings


def test_seed_noise_is_shown_for_the_budget_it_was_measured_at_only():
    assert BenchSettings().det_seed_noise() == DET_SEED_STD > 0
    assert BenchSettings.quick_preset().det_seed_noise() is None  # other size, steps and set
    assert BenchSettings(det_max_steps=128).det_seed_noise() is None
    assert BenchSettings(det_recipe="leyolo_coco.yaml").det_seed_noise() is None


def test_map_cell_puts_the_std_next_to_the_value():
    assert _map_cell({"value": 31.234, "seed_std": 1.25}) == "31.2 ± 1.2 (seed std)"
    assert _map_cell({"value": 31.234}) == "31.2"
