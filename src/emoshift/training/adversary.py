"""Domain-adversarial training (DANN; Ganin et al. 2015, "Unsupervised domain adaptation by backpropagation"):
``training.dann``.

A corpus classifier (:class:`DomainAdversary`) reads the model's pooled embedding ``(B, D)``, the input of its
emotion head (:meth:`emoshift.models.families.NeuralFamily.embedding_head`), through a gradient-reversal layer:
forward the identity, backward ``-lambda * grad``. The classifier learns which corpus a clip comes from; the
reversed gradient trains the embedding to hide it. ``lambda`` follows the schedule of ``training.dann``
(:meth:`emoshift.config.dann.DannConfig.reversal`: Ganin's ``2 / (1 + exp(-10 p)) - 1`` of the training progress
``p``, times ``weight``; or ``weight`` throughout). The classes are the training corpora and each
``data.unlabelled`` corpus, whose audio (:class:`emoshift.data.datasets.UnlabelledBatches`, one batch per step the
size of the labelled one) joins this loss only: no emotion loss, and its labels are never read.

The objective adds the term (:meth:`emoshift.training.objective.Objective.step`); the LightningModule holds the
adversary as a submodule, so ``checkpoints/last.ckpt`` carries it and a run resumes with it, while the saved
model (``model.safetensors``, the best weights, the ONNX graph) is the emotion net alone. ``RUN/log.csv`` gets
``domain_loss``, ``domain_accuracy`` (the corpus classifier's, over the epoch's training batches: near chance,
``1 / len(domains)`` for balanced batches, means the embedding hides the corpus) and ``domain_weight`` (lambda
at the epoch's end).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from emoshift.config.dann import DannConfig
    from emoshift.data.datasets import UnlabelledBatches

DOMAIN_COLUMNS = ["domain_loss", "domain_accuracy", "domain_weight"]  # RUN/log.csv, when training.dann is on


class GradientReversal(torch.autograd.Function):
    """Identity forward; the gradient times ``-weight`` backward (no gradient for ``weight``)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: float) -> torch.Tensor:
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.weight * grad, None


def reverse_gradient(x: torch.Tensor, weight: float) -> torch.Tensor:
    """``x`` as it is, whose gradient flows back multiplied by ``-weight``."""
    return GradientReversal.apply(x, weight)  # type: ignore[no-any-return,no-untyped-call]


class Seen:
    """The pooled embeddings the watched head received while :meth:`DomainAdversary.watching` was open."""

    def __init__(self) -> None:
        self.embeddings: list[torch.Tensor] = []  # (B, D) each

    def last(self) -> torch.Tensor:
        if not self.embeddings:
            raise RuntimeError("the watched head saw no batch: the family's forward does not reach its head")
        return self.embeddings[-1]


class DomainAdversary(nn.Module):
    """The corpus classifier behind a gradient-reversal layer, over the embedding entering ``head``.

    ``dim``: the embedding's size; ``domains``: the corpus classes, in order (an item's ``corpus`` index);
    ``target``: batches of the unlabelled corpora (None: the labelled batches' own corpora only)."""

    def __init__(
        self,
        head: nn.Module,
        domains: list[str],
        dann: DannConfig,
        *,
        target: UnlabelledBatches | None = None,
        hidden: int = 128,
    ) -> None:
        super().__init__()
        dim = embedding_size(head)
        self.domains = list(domains)
        self.dann = dann
        self.target = target
        self.classifier = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, len(self.domains)))
        self._seen: Seen | None = None
        # the hook is not a parameter: the emotion net's state dict is unchanged by it
        self._hook = head.register_forward_pre_hook(self._capture)
        self.weight_now = 0.0
        self._sums = torch.zeros(3, dtype=torch.float64)  # loss * n, correct, n over the epoch's batches

    def _capture(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        if self._seen is not None:
            self._seen.embeddings.append(args[0])  # (B, D)

    @contextlib.contextmanager
    def watching(self) -> Iterator[Seen]:
        """Collect the embeddings the head receives inside this block (a training step's forward)."""
        seen = self._seen = Seen()
        try:
            yield seen
        finally:
            self._seen = None

    def release(self) -> None:
        """Take the hook off the emotion net (after training: the net then runs as if never watched)."""
        self._hook.remove()

    def term(self, module: Any, batch: dict[str, torch.Tensor], embedded: torch.Tensor) -> torch.Tensor:
        """The corpus classifier's cross-entropy on this step's labelled embeddings ``(B, D)`` (their corpora)
        and on a batch of unlabelled target audio, forwarded here through the reversal at this step's weight.

        ``module``: the LightningModule (its net's forward, augmentation, step and progress)."""
        z, d = [embedded], [batch["corpus"]]
        if self.target is not None:
            unl = self.target.draw(module.global_step, module.current_epoch, int(batch["corpus"].shape[0]))
            unl = {k: v.to(embedded.device) for k, v in unl.items()}
            with self.watching() as seen:
                module({**unl, "x": module.augmented(unl)})  # emotion logits unused: no labels
            z.append(seen.last())
            d.append(unl["corpus"])
        self.weight_now = self.dann.reversal(module.progress)
        logits = self.classifier(reverse_gradient(torch.cat(z), self.weight_now))  # (B + B', K)
        target = torch.cat(d).to(logits.device)
        loss = F.cross_entropy(logits, target)
        n = int(target.shape[0])
        correct = float((logits.argmax(-1) == target).sum())
        self._sums += torch.tensor([float(loss.detach()) * n, correct, n], dtype=torch.float64)
        return loss

    def epoch_metrics(self, module: Any) -> dict[str, float]:
        """The epoch's ``domain_loss``, ``domain_accuracy`` (over every DDP rank) and ``domain_weight``; resets."""
        s = module.gathered(self._sums.clone().to(module.device))
        self._sums.zero_()
        n = max(1.0, float(s[2]))
        return {"domain_loss": float(s[0]) / n, "domain_accuracy": float(s[1]) / n, "domain_weight": self.weight_now}


def embedding_size(head: nn.Module) -> int:
    """The size D of the embedding ``(B, D)`` that ``head`` takes: its first linear layer's input."""
    for m in head.modules():
        if isinstance(m, nn.Linear):
            return int(m.in_features)
    raise TypeError(f"{type(head).__name__} has no linear layer: DANN cannot tell the size of its embedding")
