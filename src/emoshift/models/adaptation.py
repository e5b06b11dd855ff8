"""Test-time adaptation of a trained net's batch norm (AdaBN), and the one error of every adaptation lever.

AdaBN (Li et al. 2016, "Revisiting batch normalization for practical domain adaptation"): a network's batch-norm
layers hold the training domain's activation moments; on another domain those moments are wrong, and replacing
them by the target's (running mean and variance re-estimated on the target's unlabelled inputs, every weight
unchanged) removes the shift each layer sees. :func:`reestimate_batchnorm` does it in one pass: every
batch-norm layer's statistics are reset and accumulated as a cumulative average over the target batches
(``momentum=None``), the layers normalising each batch with its own moments as in training, while dropout and
every other layer stay in eval mode; nothing is back-propagated. With the whole target in one batch the running
mean and (unbiased) variance are exactly the target's moments at each layer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from emoshift.core.errors import EmoshiftError

__all__ = ["AdaptationError", "batchnorm_layers", "has_batchnorm", "reestimate_batchnorm"]


class AdaptationError(EmoshiftError, ValueError):
    """A model cannot be adapted as asked (no batch norm, no input statistics to set, no target audio): one line."""


def batchnorm_layers(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The batch-norm layers of ``module`` that track running statistics."""
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def has_batchnorm(module: nn.Module) -> bool:
    return bool(batchnorm_layers(module))


@torch.no_grad()
def reestimate_batchnorm(
    model: nn.Module, batches: Iterable[torch.Tensor], forward: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> int:
    """Set the running mean and variance of every batch-norm layer of ``model`` to the moments of the inputs
    ``batches`` give it (their cumulative average over the batches); weights and biases are left as they are.
    ``forward``: how a batch reaches the layers (default ``model``; e.g. a wrapper sharing its modules). Returns
    the number of examples seen; the model is left in eval mode."""
    layers = batchnorm_layers(model)
    if not layers:
        raise AdaptationError(f"{type(model).__name__} has no batch-norm layer to re-estimate")
    saved = [m.momentum for m in layers]
    model.eval()
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over every batch, not an exponential one
        m.train()
    seen = 0
    try:
        for x in batches:
            (forward or model)(x)
            seen += int(x.shape[0])
    finally:
        for m, momentum in zip(layers, saved, strict=True):
            m.momentum = momentum
        model.eval()
    if seen == 0:
        raise AdaptationError("no target inputs to re-estimate the batch-norm statistics on")
    return seen
