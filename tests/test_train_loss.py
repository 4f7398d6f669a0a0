"""The v8 detection loss of ``models/leyolo/loss.py`` against hand-computed numbers."""
from __future__ import annotations

import math

import pytest
import torch
from zoo.models.leyolo.loss import DetectionLoss, TaskAlignedAssigner, bbox2dist, ciou, dfl_loss


def _ciou_by_hand(a: list[float], b: list[float]) -> float:
    """CIoU (Zheng et al. 2020) written from the paper's formula, no eps."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    wa, ha, wb, hb = a[2] - a[0], a[3] - a[1], b[2] - b[0], b[3] - b[1]
    iou = inter / (wa * ha + wb * hb - inter)
    rho2 = ((a[0] + a[2]) / 2 - (b[0] + b[2]) / 2) ** 2 + ((a[1] + a[3]) / 2 - (b[1] + b[3]) / 2) ** 2
    c2 = (max(a[2], b[2]) - min(a[0], b[0])) ** 2 + (max(a[3], b[3]) - min(a[1], b[1])) ** 2
    v = 4 / math.pi**2 * (math.atan(wb / hb) - math.atan(wa / ha)) ** 2
    alpha = v / (1 - iou + v) if v > 0 else 0.0
    return iou - rho2 / c2 - alpha * v


@pytest.mark.parametrize("a,b,expected", [
    ([0, 0, 2, 2], [1, 1, 3, 3], 1 / 7 - 2 / 18),  # same aspect: IoU minus distance term
    ([0, 0, 4, 2], [0, 0, 2, 4], None),  # different aspect: the v term matters
    ([0, 0, 32, 32], [0, 0, 32, 16], None),
    ([5, 5, 9, 15], [5, 5, 9, 15], 1.0),
])
def test_ciou_matches_paper_formula(a, b, expected):
    got = ciou(torch.tensor([a], dtype=torch.float64), torch.tensor([b], dtype=torch.float64)).item()
    want = _ciou_by_hand(a, b) if expected is None else expected
    assert got == pytest.approx(want, abs=1e-6)


def test_dfl_uniform_logits_give_log_of_bins():
    pred = torch.zeros(3, 4, 16)
    target = torch.tensor([[0.0, 3.5, 7.25, 14.99]] * 3)
    assert torch.allclose(dfl_loss(pred, target), torch.full((3, 1), math.log(16)), atol=1e-6)


def test_dfl_known_value_for_two_bin_distribution():
    # p(bin 3) = 0.6, p(bin 4) = 0.4, target 3.25 -> 0.75 * -ln 0.6 + 0.25 * -ln 0.4 on every side
    logits = torch.full((1, 4, 16), -1e4)
    logits[..., 3] = math.log(0.6)
    logits[..., 4] = math.log(0.4)
    got = dfl_loss(logits, torch.full((1, 4), 3.25)).item()
    assert got == pytest.approx(0.75 * -math.log(0.6) + 0.25 * -math.log(0.4), abs=1e-6)


def test_bbox2dist_clamps_to_last_bin_minus_margin():
    anchors = torch.tensor([[10.0, 10.0]])
    box = torch.tensor([[-20.0, 8.0, 12.0, 40.0]])
    assert torch.allclose(bbox2dist(anchors, box, 14.99), torch.tensor([[14.99, 2.0, 2.0, 14.99]]))


def test_assigner_hand_case_topk_and_normalised_scores():
    # One gt [0, 0, 32, 32] of class 1; four anchors, the last one outside the box.
    anchors = torch.tensor([[8.0, 8.0], [24.0, 8.0], [8.0, 24.0], [40.0, 40.0]])
    scores = torch.tensor([[[0.2, 0.9], [0.7, 0.4], [0.1, 0.1], [0.0, 0.99]]])  # (1, 4, 2)
    boxes = torch.tensor([[[0, 0, 32, 32], [0, 0, 32, 16], [8, 8, 24, 24], [32, 32, 48, 48]]], dtype=torch.float)
    gt_box = [0.0, 0.0, 32.0, 32.0]
    out = TaskAlignedAssigner(num_classes=2, topk=2)(
        scores, boxes, anchors, torch.tensor([[[1.0]]]), torch.tensor([[gt_box]]), torch.ones(1, 1, 1))
    metric = [math.sqrt(s) * _ciou_by_hand(gt_box, b) ** 6
              for s, b in [(0.9, [0, 0, 32, 32]), (0.4, [0, 0, 32, 16]), (0.1, [8, 8, 24, 24])]]
    # top-2 by metric: anchors 0 and 1; anchor 3 is outside the gt although its score is highest
    assert out.fg_mask.tolist() == [[True, True, False, False]]
    assert out.labels[0, :2].tolist() == [1, 1]
    assert out.boxes[0, 1].tolist() == gt_box
    # normalised: best anchor gets the best CIoU among positives (1.0), the other its metric ratio
    expected = [[0.0, 1.0], [0.0, metric[1] / metric[0]], [0.0, 0.0], [0.0, 0.0]]
    assert torch.allclose(out.scores[0], torch.tensor(expected), atol=1e-5)


def test_assigner_anchor_claimed_by_two_gts_goes_to_higher_ciou():
    anchors = torch.tensor([[16.0, 16.0]])
    scores = torch.tensor([[[0.5, 0.5]]])
    pred = torch.tensor([[[8.0, 8.0, 24.0, 24.0]]])
    gts = torch.tensor([[[0.0, 0.0, 32.0, 32.0], [6.0, 6.0, 26.0, 26.0]]])  # the second fits pred better
    out = TaskAlignedAssigner(num_classes=2, topk=1)(
        scores, pred, anchors, torch.tensor([[[0.0], [1.0]]]), gts, torch.ones(1, 2, 1))
    assert out.gt_index.tolist() == [[1]] and out.labels.tolist() == [[1]]
    # normalised target = best CIoU of gt 1 (its only positive anchor) = IoU 256/400
    assert out.scores[0, 0, 1].item() == pytest.approx(256 / 400, abs=1e-5)


def _raw_maps(b: int, nc: int, imgsz: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, 64 + nc, imgsz // s, imgsz // s, generator=g, dtype=torch.float64).float()
            .requires_grad_(True) for s in (8, 16, 32)]


def test_loss_without_objects_is_bce_of_all_logits_against_zero():
    nc, imgsz = 2, 64
    feats = [torch.zeros(2, 64 + nc, imgsz // s, imgsz // s, requires_grad=True) for s in (8, 16, 32)]
    loss, items = DetectionLoss(nc)(feats, torch.zeros(0, 6))
    n_anchors = 8 * 8 + 4 * 4 + 2 * 2
    expected_cls = 0.5 * 2 * n_anchors * nc * math.log(2)  # gain 0.5, normaliser 1, both images
    assert items.tolist()[0] == 0.0 and items.tolist()[2] == 0.0
    assert items[1].item() == pytest.approx(expected_cls, rel=1e-6)
    assert loss.item() == pytest.approx(2 * expected_cls, rel=1e-6)  # x batch size
    loss.backward()
    assert feats[0].grad is not None and feats[0].grad[:, :64].abs().sum() == 0  # box branch in graph, zero grad


def test_loss_decreases_when_prediction_moves_towards_target():
    nc = 3
    targets = torch.tensor([[0, 2, 8.0, 12.0, 40.0, 50.0], [1, 0, 20.0, 20.0, 60.0, 36.0]])
    loss_fn = DetectionLoss(nc)
    feats = _raw_maps(2, nc, 64)
    opt = torch.optim.SGD(feats, lr=0.01)
    first = None
    for _ in range(20):
        opt.zero_grad()
        loss, items = loss_fn(feats, targets)
        first = first if first is not None else items.clone()
        loss.backward()
        opt.step()
    assert (items < first).all(), (first, items)


def test_split_batch_with_global_normaliser_reproduces_concatenated_gradient():
    """What DDP relies on: mean over 2 'ranks' of per-half gradients == gradient on the whole batch."""
    nc = 2
    targets = torch.tensor([[0, 1, 4.0, 4.0, 30.0, 40.0], [1, 0, 10.0, 20.0, 50.0, 60.0],
                            [2, 1, 0.0, 0.0, 64.0, 64.0], [3, 0, 30.0, 30.0, 44.0, 41.0], [3, 1, 1.0, 2.0, 9, 9]])
    loss_fn = DetectionLoss(nc)
    feats = _raw_maps(4, nc, 64, seed=3)
    loss, _ = loss_fn(feats, targets)
    full = torch.autograd.grad(loss, feats)

    halves = []
    for r in range(2):
        part = [f.detach()[2 * r:2 * r + 2].clone().requires_grad_(True) for f in feats]
        t = targets[(targets[:, 0] >= 2 * r) & (targets[:, 0] < 2 * r + 2)].clone()
        t[:, 0] -= 2 * r
        halves.append((part, t))
    sums = []
    for part, t in halves:  # first pass: each rank's local target-score sum (what all_reduce adds)
        loss_fn(part, t, normalizer=lambda s: sums.append(s) or s.clamp(min=1))
    global_sum = sum(sums).clamp(min=1)
    for r, (part, t) in enumerate(halves):
        loss_r, _ = loss_fn(part, t, normalizer=lambda s: global_sum / 2, batch_size=4)
        grads = torch.autograd.grad(loss_r / 2, part)  # DDP averages over the 2 ranks
        for g_full, g_half in zip(full, grads):
            assert torch.allclose(g_full[2 * r:2 * r + 2], g_half, atol=1e-6, rtol=1e-5)
