"""AdaBN (models/adaptation.py): weights unchanged, running statistics set to the target's moments."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from emoshift.models.adaptation import AdaptationError, reestimate_batchnorm


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Dropout(0.5), nn.Conv2d(3, 2, 3),
                         nn.BatchNorm2d(2))


def test_adabn_sets_running_stats_to_the_target_moments_and_keeps_the_weights() -> None:
    net = _net()
    with torch.no_grad():  # a trained-looking state: scales, shifts and source statistics that are not the target's
        for bn in (net[1], net[5]):
            bn.weight.uniform_(0.5, 2.0)
            bn.bias.uniform_(-1, 1)
            bn.running_mean.fill_(5.0)
            bn.running_var.fill_(9.0)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    target = torch.randn(16, 1, 8, 8) * 3 + 2  # one batch: the cumulative average is this batch's moments
    assert reestimate_batchnorm(net, [target]) == 16
    after = net.state_dict()
    for k, v in before.items():
        if "running" in k or "num_batches" in k:
            continue
        assert torch.equal(after[k], v), k  # every weight and bias as it was
    h = net[0](target)  # (16, 3, 6, 6): what the first batch norm sees
    torch.testing.assert_close(net[1].running_mean, h.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(net[1].running_var, h.var(dim=(0, 2, 3), unbiased=True))
    # the second sees the first's output normalised with the target's own moments, as the running ones now are
    # (up to n / (n - 1): a training-mode batch norm divides by the biased variance, the running one is unbiased)
    h2 = net[4](net[2](net[1](h)))
    torch.testing.assert_close(net[5].running_mean, h2.mean(dim=(0, 2, 3)), atol=1e-4, rtol=2e-3)
    assert not net.training and all(m.momentum == 0.1 for m in (net[1], net[5]))  # momentum restored, eval mode


def test_adabn_averages_over_batches_and_refuses_what_it_cannot_do() -> None:
    net = _net()
    a, b = torch.randn(8, 1, 8, 8), torch.randn(8, 1, 8, 8) + 1
    reestimate_batchnorm(net, [a, b])
    with torch.no_grad():
        mean = (net[0](a).mean(dim=(0, 2, 3)) + net[0](b).mean(dim=(0, 2, 3))) / 2
    torch.testing.assert_close(net[1].running_mean, mean)
    with pytest.raises(AdaptationError, match="no target inputs"):
        reestimate_batchnorm(net, [])
    with pytest.raises(AdaptationError, match="no batch-norm layer"):
        reestimate_batchnorm(nn.Linear(3, 2), [torch.randn(4, 3)])
