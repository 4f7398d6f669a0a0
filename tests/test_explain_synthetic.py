"""KPCA-CAM is non-trivial on detections: on the synthetic shapes set, whose true boxes are exact (the generator
draws each object into its own mask and takes the mask's extent), more of the map's mass lies inside the true
boxes than a random map's, on average over the images (Score-CAM's energy-based pointing game)."""
from __future__ import annotations

import numpy as np
import pytest

import zoo
from zoo.eval.datasets.synthetic import SyntheticConfig, generate, synthetic_dataset
from zoo.tasks.detection.explain import explain
from zoo.tasks.detection.explain_metrics import box_mask, energy_in_boxes, pointing_hit, random_map

pytest.importorskip("pytorch_grad_cam")


def _energies(model, dataset, n, imgsz, method="kpca-cam"):
    images = [dataset.load_image(i) for i in range(n)]
    boxes = [dataset.records[i].boxes for i in range(n)]
    maps = [e.map for e in explain(model, images, method=method, imgsz=imgsz, per_detection=False)]
    cam = np.array([energy_in_boxes(m, b) for m, b in zip(maps, boxes)])
    rnd = np.array([energy_in_boxes(random_map(im.shape[:2], seed=i), b) for i, (im, b) in enumerate(zip(images, boxes))])
    hits = np.array([pointing_hit(m, b) for m, b in zip(maps, boxes)])
    # A peak placed uniformly at random lands in the boxes with probability = their area share.
    chance = np.array([box_mask(im.shape[:2], b).mean() for im, b in zip(images, boxes)])
    return cam, rnd, hits, chance


def test_kpca_energy_in_true_boxes_beats_a_random_map(nano_checkpoint, tmp_path_factory, one_torch_thread):
    # 24 fresh val images (the default set's generator and parameters, its own seed), the released COCO Nano:
    # a detector that never saw these shapes still looks at them rather than at the textured background.
    root = generate(tmp_path_factory.mktemp("shapes") / "set", SyntheticConfig(num_train=0, num_val=24, seed=7))
    data = synthetic_dataset("val", root=root)
    model = zoo.create_model("leyolo-nano", checkpoint_path=nano_checkpoint).eval()
    cam, rnd, hits, chance = _energies(model, data, 24, imgsz=256)
    assert cam.mean() > 1.2 * rnd.mean(), (cam.mean(), rnd.mean())
    assert hits.mean() > chance.mean(), (hits.mean(), chance.mean())


@pytest.mark.slow
def test_kpca_on_a_synthetic_trained_nano_points_at_the_objects(tmp_path):
    """The default recipe's Nano (8 epochs on the synthetic train split) on the whole default val split."""
    result = zoo.train("leyolo-nano", config="configs/leyolo_synthetic.yaml", out=str(tmp_path / "run"))
    model = zoo.create_model("leyolo-nano", checkpoint_path=result.best).eval()
    data = synthetic_dataset("val")
    cam, rnd, hits, chance = _energies(model, data, len(data), imgsz=160)
    assert cam.mean() > 1.5 * rnd.mean(), (cam.mean(), rnd.mean())
    assert hits.mean() > 3 * chance.mean(), (hits.mean(), chance.mean())
