"""The task's objective in torch: the loss a training batch gives and the validation metrics an epoch logs
(the LightningModule, :mod:`emoshift.training.module`, delegates both, with no branch on the task).

- :class:`ClassObjective` (categorical): cross-entropy (class weights, label smoothing), soft targets under
  mixup, cross-entropy to the raters' vote distribution (``training.targets: soft``, mixed with the one-hot
  label by ``training.soft_mix``, blended by mixup like the inputs), or the distillation loss with a
  teacher's logits; validation: ``val_uar``, ``val_accuracy``,
  ``val_loss`` from the epoch's confusion matrix;
- :class:`RatingObjective` (dimensional): ``training.loss`` (1 - mean CCC, or MSE) against the items' ratings
  ``(N, T)``; validation: ``val_ccc`` (mean over targets), ``val_ccc_<target>``, ``val_loss`` from running sums.

:func:`objective_for` builds the one the run's task (:mod:`emoshift.core.task`) names. Under DDP every rank
keeps its shard's sums; the module's ``gathered`` adds them up.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import torch
import torch.nn.functional as F

from emoshift.core.task import CATEGORICAL, DIMENSIONAL, Task
from emoshift.data.augment import mixup, mixup_values

if TYPE_CHECKING:
    from emoshift.config import TrainingConfig
    from emoshift.data.datasets import Item
    from emoshift.training.adversary import DomainAdversary


class Step(Protocol):
    """What an objective asks of the LightningModule (:class:`emoshift.training.module.EmotionModule`)."""

    class_weights: torch.Tensor
    gen: torch.Generator

    @property
    def device(self) -> torch.device: ...

    def __call__(self, batch: dict[str, torch.Tensor]) -> torch.Tensor: ...  # the net's raw outputs (B, K)

    def augmented(self, batch: dict[str, torch.Tensor]) -> torch.Tensor: ...

    def mixes(self) -> bool: ...

    def gathered(self, value: torch.Tensor) -> torch.Tensor: ...


def distillation_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    target: torch.Tensor,
    *,
    temperature: float,
    alpha: float,
    **ce: Any,
) -> torch.Tensor:
    """Hinton et al. (2015): alpha * CE(student, y) + (1 - alpha) * T^2 * KL(teacher_T || student_T)."""
    hard = F.cross_entropy(student, target, **ce)
    t = temperature
    soft = F.kl_div(
        F.log_softmax(student / t, dim=-1),
        F.log_softmax(teacher / t, dim=-1),
        reduction="batchmean",
        log_target=True,
    )
    return alpha * hard + (1.0 - alpha) * (t * t) * soft


def soft_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, *, weight: torch.Tensor | None = None, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Cross-entropy to a target distribution ``(B, C)`` (the raters' votes): the batch mean of
    ``-sum_c w_c q_c log softmax(z)_c``, with ``q`` smoothed to ``(1 - e) q + e / C`` (torch's own loss with class
    probabilities: https://pytorch.org/docs/stable/generated/torch.nn.CrossEntropyLoss.html)."""
    return F.cross_entropy(logits, target, weight=weight, label_smoothing=label_smoothing)


def batch_ccc(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Lin's CCC of each column of ``pred`` against ``target`` ``(B, T)`` -> ``(T,)``, population moments (as
    :func:`emoshift.evaluation.regression.ccc`); ``eps`` keeps a constant batch finite."""
    mp, mt = pred.mean(0), target.mean(0)
    vp, vt = pred.var(0, unbiased=False), target.var(0, unbiased=False)
    cov = ((pred - mp) * (target - mt)).mean(0)
    return 2 * cov / (vp + vt + (mp - mt) ** 2 + eps)


def ccc_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - CCC averaged over targets, on the batch ``(B, T)``: the standard loss for dimensional emotion."""
    return 1.0 - batch_ccc(pred, target).mean()


def regression_loss(kind: str, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``training.loss``: ``ccc`` (1 - mean CCC) or ``mse``."""
    return ccc_loss(pred, target) if kind == "ccc" else F.mse_loss(pred, target)


def ccc_from_sums(s: torch.Tensor) -> torch.Tensor:
    """CCC per target from ``(T, 6)`` sums (n, sum p, sum t, sum p^2, sum t^2, sum pt) -> ``(T,)``."""
    n = s[:, 0].clamp_min(1)
    mp, mt = s[:, 1] / n, s[:, 2] / n
    vp, vt = s[:, 3] / n - mp * mp, s[:, 4] / n - mt * mt
    cov = s[:, 5] / n - mp * mt
    return 2 * cov / (vp + vt + (mp - mt) ** 2).clamp_min(1e-12)


def uar_from_confusion(conf: torch.Tensor) -> float:
    """Unweighted average recall over classes present in the targets (rows = true)."""
    support = conf.sum(dim=1)
    present = support > 0
    if not bool(present.any()):
        return float("nan")
    recall = conf.diag()[present].float() / support[present].float()
    return float(recall.mean())


class Objective(ABC):
    """The loss and validation metrics of one task; the module calls these and nothing task-specific else."""

    task: ClassVar[Task]
    class_weights: torch.Tensor  # (C,) per-class loss weights (empty for ratings); the module's buffer
    # training.dann: the corpus classifier whose term joins the loss (emoshift.training.adversary); None: off
    adversary: DomainAdversary | None = None

    @property
    def monitor(self) -> str:
        return self.task.monitor

    def step(self, module: Step, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        """(loss, batch size) of a training batch: :meth:`training_loss`, plus the domain adversary's term on
        the embeddings that forward produced (and on a batch of unlabelled target audio) when there is one."""
        if self.adversary is None:
            return self.training_loss(module, batch)
        with self.adversary.watching() as seen:
            loss, n = self.training_loss(module, batch)
        return loss + self.adversary.term(module, batch, seen.last()), n

    @abstractmethod
    def training_loss(self, module: Step, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        """(loss, batch size) of a training batch, augmented by the module's family."""

    @abstractmethod
    def reset(self) -> None:
        """A validation epoch starts."""

    @abstractmethod
    def update(self, module: Step, batch: dict[str, torch.Tensor]) -> None:
        """Add one validation batch."""

    @abstractmethod
    def compute(self, module: Step) -> dict[str, float]:
        """The epoch's validation metrics (the monitor among them), over every DDP rank."""


class ClassObjective(Objective):
    task = CATEGORICAL

    def __init__(
        self,
        labels: Sequence[str],
        training: TrainingConfig,
        *,
        class_weights: torch.Tensor | None = None,
        teacher_logits: torch.Tensor | None = None,
        soft_targets: torch.Tensor | None = None,
    ) -> None:
        self.labels = list(labels)
        self.num_labels = len(self.labels)
        self.cfg = training
        self.class_weights = class_weights if class_weights is not None else torch.ones(self.num_labels)
        self.use_class_weights = class_weights is not None
        # (N_train, C) teacher logits indexed by training item; not a parameter, not in checkpoints' state
        self.teacher_logits = teacher_logits
        # (N_train, C) the raters' distributions (training.targets: soft) indexed by training item, or None
        self.soft_targets = soft_targets
        self._conf = torch.zeros(self.num_labels, self.num_labels, dtype=torch.long)
        self._loss: list[tuple[float, int]] = []

    def _weights(self, module: Step) -> torch.Tensor | None:
        return module.class_weights if self.use_class_weights else None

    def training_loss(self, module: Step, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        y = batch["y"]
        x = module.augmented(batch)
        soft = None
        if self.soft_targets is not None:  # the raters' distribution (B, C); mixup blends it like the inputs
            votes = self.soft_targets.to(x.device)[batch["index"]]
            if module.mixes():
                x, votes = mixup_values(x, votes, self.cfg.augment.mixup_alpha, module.gen)
            logits = module({**batch, "x": x})
            ls = self.cfg.label_smoothing
            loss = soft_cross_entropy(logits, votes, weight=self._weights(module), label_smoothing=ls)
            return loss, int(y.shape[0])
        if module.mixes():
            x, soft = mixup(x, y, self.num_labels, self.cfg.augment.mixup_alpha, module.gen)
        logits = module({**batch, "x": x})
        if soft is not None:
            logp = F.log_softmax(logits, dim=-1)
            w = module.class_weights if self.use_class_weights else torch.ones_like(module.class_weights)
            loss = -(soft * logp * w).sum(-1).mean()
        elif self.teacher_logits is not None and self.cfg.distill is not None:
            t = self.teacher_logits.to(logits.device)[batch["index"]]
            loss = distillation_loss(
                logits,
                t,
                y,
                temperature=self.cfg.distill.temperature,
                alpha=self.cfg.distill.alpha,
                weight=self._weights(module),
                label_smoothing=self.cfg.label_smoothing,
            )
        else:
            loss = F.cross_entropy(
                logits, y, weight=self._weights(module), label_smoothing=self.cfg.label_smoothing
            )
        return loss, int(y.shape[0])

    def reset(self) -> None:
        self._conf.zero_()
        self._loss.clear()

    def update(self, module: Step, batch: dict[str, torch.Tensor]) -> None:
        logits = module(batch)
        y = batch["y"]
        loss = F.cross_entropy(logits, y)
        self._loss.append((float(loss), int(y.shape[0])))
        pred = logits.argmax(-1)
        idx = (y * self.num_labels + pred).cpu()
        self._conf += torch.bincount(idx, minlength=self.num_labels**2).view(self.num_labels, -1)

    def compute(self, module: Step) -> dict[str, float]:
        conf = module.gathered(self._conf.to(module.device))
        loss_sum = module.gathered(
            torch.tensor(sum(v * n for v, n in self._loss), device=module.device, dtype=torch.float64)
        )
        count = module.gathered(torch.tensor(sum(n for _, n in self._loss), device=module.device, dtype=torch.float64))
        acc = float(conf.diag().sum()) / max(1, int(conf.sum()))
        return {
            "val_uar": uar_from_confusion(conf),
            "val_accuracy": acc,
            "val_loss": float(loss_sum / count.clamp_min(1)),
        }


class RatingObjective(Objective):
    task = DIMENSIONAL

    def __init__(
        self,
        targets: Sequence[str],
        training: TrainingConfig,
        *,
        train_targets: torch.Tensor,
        val_targets: torch.Tensor,
    ) -> None:
        self.targets = list(targets)
        self.cfg = training
        self.class_weights = torch.ones(0)  # no classes
        # (N_train, T) / (N_val, T) ratings indexed by item
        self.train_targets = train_targets
        self.val_targets = val_targets
        self._sums = torch.zeros(len(self.targets), 6, dtype=torch.float64)  # (T, 6), see ccc_from_sums
        self._sq = 0.0

    def training_loss(self, module: Step, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        y = self.train_targets.to(batch["x"].device)[batch["index"]]  # (B, T)
        x = module.augmented(batch)
        if module.mixes():
            x, y = mixup_values(x, y, self.cfg.augment.mixup_alpha, module.gen)
        pred = module({**batch, "x": x}).float()  # (B, T)
        return regression_loss(self.cfg.loss, pred, y), int(y.shape[0])

    def reset(self) -> None:
        self._sums.zero_()
        self._sq = 0.0

    def update(self, module: Step, batch: dict[str, torch.Tensor]) -> None:
        t = self.val_targets.to(batch["x"].device)[batch["index"]].double()  # (B, T)
        p = module(batch).double()  # (B, T)
        sums = torch.stack([torch.full_like(p[0], p.shape[0]), p.sum(0), t.sum(0), (p * p).sum(0),
                            (t * t).sum(0), (p * t).sum(0)], dim=1)  # (T, 6)
        self._sums += sums.cpu()
        self._sq += float(((p - t) ** 2).mean(1).sum())

    def compute(self, module: Step) -> dict[str, float]:
        sums = module.gathered(self._sums.to(module.device))
        sq = module.gathered(torch.tensor(self._sq, device=module.device, dtype=torch.float64))
        per = ccc_from_sums(sums)  # (T,)
        mean = float(per.mean())
        n = float(sums[0, 0].clamp_min(1))
        loss = 1.0 - mean if self.cfg.loss == "ccc" else float(sq) / n
        return {"val_ccc": mean, "val_loss": loss, **{f"val_ccc_{t}": float(c) for t, c in zip(self.targets, per, strict=True)}}


def soft_targets(items: list[Item], labels: Sequence[str], training: TrainingConfig) -> torch.Tensor | None:
    """``training.targets: soft``: the items' target distributions ``(N, C)``
    (:func:`emoshift.data.targets.soft_target`); None for hard targets."""
    if training.targets != "soft":
        return None
    from emoshift.data.targets import soft_target

    rows = [soft_target(it.utt, labels, training.soft_mix) for it in items]
    return torch.tensor(rows, dtype=torch.float32).reshape(len(items), len(labels))


def ratings(items: list[Item], n_targets: int) -> torch.Tensor:
    """The items' ratings ``(N, T)``."""
    return torch.tensor([it.target for it in items], dtype=torch.float32).reshape(len(items), n_targets)


def objective_for(
    task: Task,
    training: TrainingConfig,
    *,
    labels: Sequence[str],
    targets: Sequence[str],
    train: list[Item],
    val: list[Item],
    class_weights: torch.Tensor | None = None,
    teacher_logits: torch.Tensor | None = None,
    adversary: DomainAdversary | None = None,
) -> Objective:
    """The objective of ``task`` for a run's training and validation items (``adversary``: training.dann's)."""
    build: dict[Task, Any] = {
        CATEGORICAL: lambda: ClassObjective(labels, training, class_weights=class_weights, teacher_logits=teacher_logits,
                                            soft_targets=soft_targets(train, labels, training)),
        DIMENSIONAL: lambda: RatingObjective(targets, training, train_targets=ratings(train, len(targets)),
                                             val_targets=ratings(val, len(targets))),
    }
    objective: Objective = build[task]()
    objective.adversary = adversary
    return objective
