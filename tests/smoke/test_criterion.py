import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from envdoctor.smoke.criterion import (HungarianMatcher, SetCriterion, bce_cost, bce_loss, dice_cost, dice_loss,
                                       point_sample)


def brute_force_min(cost: np.ndarray) -> float:
    q, t = cost.shape
    return min(sum(cost[r, c] for r, c in zip(rows, range(t))) for rows in itertools.permutations(range(q), t))


@pytest.mark.parametrize("seed", range(6))
def test_matcher_finds_the_brute_force_optimum(seed):
    gen = torch.Generator().manual_seed(seed)
    q, t, k = 5, 1 + seed % 4, 3
    logits = torch.randn(q, k + 1, generator=gen)
    masks = torch.randn(q, 16, 16, generator=gen)
    labels = torch.randint(0, k, (t,), generator=gen)
    targets = torch.rand(t, 16, 16, generator=gen) > 0.5
    matcher = HungarianMatcher(2.0, 5.0, 5.0, num_points=64)
    torch.manual_seed(seed)
    (rows, cols), = matcher({"pred_logits": logits[None], "pred_masks": masks[None]},
                            [{"labels": labels, "masks": targets}])
    torch.manual_seed(seed)
    coords = torch.rand(1, 64, 2)  # the same points the matcher drew
    cost = matcher.cost_matrix(logits, masks, labels, targets, coords).numpy()
    assert sorted(cols.tolist()) == list(range(t))
    assert len(set(rows.tolist())) == t
    assert cost[rows, cols].sum() == pytest.approx(brute_force_min(cost), rel=1e-6)


def test_matcher_recovers_a_known_permutation():
    targets = torch.zeros(3, 32, 32, dtype=torch.bool)
    targets[0, :10], targets[1, 12:22], targets[2, 24:] = True, True, True
    order = [2, 0, 1]  # query i predicts target order[i]
    masks = torch.where(targets[order], 8.0, -8.0)
    logits = torch.zeros(3, 4)
    labels = torch.tensor([0, 1, 2])
    (rows, cols), = HungarianMatcher(2.0, 5.0, 5.0, 256)({"pred_logits": logits[None], "pred_masks": masks[None]},
                                                         [{"labels": labels, "masks": targets}])
    assert dict(zip(rows.tolist(), cols.tolist())) == {0: 2, 1: 0, 2: 1}


def test_pairwise_costs_agree_with_the_elementwise_losses():
    gen = torch.Generator().manual_seed(1)
    pred = torch.randn(4, 50, generator=gen)
    tgt = (torch.rand(3, 50, generator=gen) > 0.5).float()
    bce = bce_cost(pred, tgt)
    dice = dice_cost(pred, tgt)
    for i in range(4):
        for j in range(3):
            expect_bce = F.binary_cross_entropy_with_logits(pred[i], tgt[j])
            assert bce[i, j] == pytest.approx(float(expect_bce), rel=1e-5)
            assert dice[i, j] == pytest.approx(float(dice_loss(pred[i:i + 1], tgt[j:j + 1], 1.0)), rel=1e-5)


def test_dice_and_bce_losses_on_sampled_points():
    tgt = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    perfect = torch.tensor([[20.0, 20.0, -20.0, -20.0]])
    wrong = -perfect
    assert float(dice_loss(perfect, tgt, 1.0)) == pytest.approx(0.0, abs=1e-6)
    # all-wrong: overlap 0, sizes 2 + 2, smoothing 1: 1 - (0+1)/(4+1)
    assert float(dice_loss(wrong, tgt, 1.0)) == pytest.approx(0.8, abs=1e-6)
    assert float(bce_loss(perfect, tgt, 1.0)) < 1e-6
    assert float(bce_loss(wrong, tgt, 1.0)) == pytest.approx(20.0, rel=1e-4)
    two = torch.cat([wrong, wrong])
    assert float(bce_loss(two, torch.cat([tgt, tgt]), 2.0)) == pytest.approx(float(bce_loss(wrong, tgt, 1.0)))


def test_point_sample_reads_pixel_centres():
    image = torch.arange(16.0).view(1, 1, 4, 4)
    coords = torch.tensor([[[0.125, 0.125], [0.875, 0.125], [0.125, 0.875]]])  # x, y of pixel centres
    assert point_sample(image, coords).flatten().tolist() == [0.0, 3.0, 12.0]


def test_criterion_no_object_weight_and_deep_supervision():
    torch.manual_seed(0)
    matcher = HungarianMatcher(2.0, 5.0, 5.0, 64)
    crit = SetCriterion(3, matcher, {"class": 2.0, "mask": 5.0, "dice": 5.0}, eos_coef=0.1, num_points=64)
    assert crit.empty_weight.tolist() == pytest.approx([1, 1, 1, 0.1])
    outputs = {"pred_logits": torch.randn(2, 5, 4), "pred_masks": torch.randn(2, 5, 8, 8)}
    targets = [{"labels": torch.tensor([0, 2]), "masks": torch.rand(2, 32, 32) > 0.5},
               {"labels": torch.tensor([1]), "masks": torch.rand(1, 32, 32) > 0.5}]
    torch.manual_seed(1)
    one = crit(outputs, targets)
    torch.manual_seed(1)
    with_aux = crit({**outputs, "aux_outputs": [dict(outputs), dict(outputs)]}, targets)
    assert float(with_aux) == pytest.approx(3 * float(one), rel=0.2)  # same predictions, resampled points
    assert torch.isfinite(one)
