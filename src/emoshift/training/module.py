"""The LightningModule: a plain ``nn.Module`` inside, the task's objective (loss and validation metrics:
:mod:`emoshift.training.objective`), the optimiser and the schedule around it.

The model family (:mod:`emoshift.models.families`) says how a batch reaches the net and is augmented, and which
optimiser groups it uses: log-mel batches ``x (B, 1, n_mels, T)``, waveform batches ``x (B, S)`` with an
``attention_mask (B, S)``, embedding batches ``x (B, L+1, E)`` (frozen SSL encoder, cached).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
from torch import nn

from emoshift.models.families import NeuralFamily
from emoshift.training.objective import Objective

if TYPE_CHECKING:
    from emoshift.config import TrainingConfig


class EmotionModule(L.LightningModule):
    """The net (``model``), trained by ``family``'s batches and augmentation and by the task's ``objective``
    (:mod:`emoshift.training.objective`: the loss and the validation metrics); one :meth:`model_step`, no
    branch on the task here."""

    class_weights: torch.Tensor  # buffer (C,): the objective's class weights (empty for ratings), checkpointed

    def __init__(
        self,
        model: nn.Module,
        *,
        training: TrainingConfig,
        family: NeuralFamily,
        objective: Objective,
    ) -> None:
        super().__init__()
        self.model = model
        self.cfg = training
        self.family = family
        self.objective = objective
        if objective.adversary is not None:  # training.dann: a submodule, so last.ckpt holds it (resume)
            self.adversary = objective.adversary
        self.register_buffer("class_weights", objective.class_weights)
        self.gen = torch.Generator().manual_seed(training.seed)
        self._train_loss: list[tuple[float, int]] = []
        self._stage: int | None = None
        self._total_steps: int | None = None

    @property
    def progress(self) -> float:
        """The share of training steps done, in [0, 1] (the DANN reversal schedule's p)."""
        if self._total_steps is None:  # Lightning sizes training once; asked every step, kept
            self._total_steps = max(1, int(self.trainer.estimated_stepping_batches))
        return min(1.0, self.global_step / self._total_steps)

    @property
    def monitor(self) -> str:
        """The validation score that selects weights (higher is better): the task's (``val_uar``, ``val_ccc``)."""
        return self.objective.monitor

    # -- forward ------------------------------------------------------------------------------------
    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.family.forward(self.model, batch)  # (B, K)

    # -- epochs: seeding, stages -------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        if dm is not None and hasattr(dm, "set_epoch"):
            dm.set_epoch(self.current_epoch)  # crops and sampling order derive from (seed, epoch)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Every random draw in a step (augmentation, dropout) derives from (seed, epoch, step), set right
        # before the step: nothing else that consumes the global RNG (DataLoader iterators, Lightning's
        # restore) can shift it, so a resumed run replays an uninterrupted one exactly.
        epoch = self.current_epoch
        seed = (self.cfg.seed * 1_000_003 + epoch * 7919 + batch_idx * 104_729) % (2**31 - 1)
        self.gen.manual_seed(seed)
        torch.manual_seed(seed)
        self._apply_stage(epoch)

    def _apply_stage(self, epoch: int) -> None:
        if not self.cfg.stages or not hasattr(self.model, "set_trainable"):
            return
        end = 0
        for i, stage in enumerate(self.cfg.stages):
            end += stage.epochs
            if epoch < end:
                if self._stage != i:
                    self.model.set_trainable(stage.train, top_k=stage.top_k)  # type: ignore[operator]
                    self._stage = i
                return

    # -- steps --------------------------------------------------------------------------------------
    def augmented(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The family's training augmentation of ``batch["x"]``, drawn from this step's generator."""
        return self.family.augment(batch["x"], batch, self.cfg.augment, self.gen)

    def mixes(self) -> bool:
        """Whether this step blends inputs (mixup on, and the family allows it)."""
        return self.cfg.augment.mixup_alpha > 0 and self.family.mixup

    def model_step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        """A training batch -> (loss, batch size): the task's objective on the family's augmented batch (and
        training.dann's corpus classifier, :mod:`emoshift.training.adversary`)."""
        return self.objective.step(self, batch)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, n = self.model_step(batch)
        self._train_loss.append((float(loss.detach()), n))
        self.log("loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=n)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.objective.update(self, batch)

    def gathered(self, value: torch.Tensor) -> torch.Tensor:
        """``value`` summed over DDP ranks (each saw a shard of the validation set); itself on one process."""
        if self.trainer.world_size > 1:
            return torch.as_tensor(self.all_gather(value)).sum(0)
        return value

    def on_validation_epoch_start(self) -> None:
        self.objective.reset()
        if not self.trainer.sanity_checking:
            self._recalibrate_batchnorm()

    @torch.no_grad()
    def _recalibrate_batchnorm(self, max_batches: int = 32) -> None:
        """Precise BatchNorm: recompute running statistics with the current weights on training batches.

        Running averages collected while the weights move fast are stale; on deep BN stacks (EfficientNet)
        eval-mode outputs then collapse to a constant after the few hundred steps an SER corpus gives. A
        pass over up to ``max_batches`` un-augmented training batches with a cumulative average fixes them.
        Deterministic: the batches and their crops are a function of (seed, epoch).
        """
        bns = [m for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        dm = getattr(self.trainer, "datamodule", None)
        if not bns or dm is None or not hasattr(dm, "calibration_dataloader"):
            return
        momenta = [m.momentum for m in bns]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
        was_training = self.model.training
        self.model.train()
        for i, batch in enumerate(dm.calibration_dataloader()):
            if i >= max_batches:
                break
            batch = {k: v.to(self.device) for k, v in batch.items()}
            self.forward(batch)
        self.model.train(was_training)
        for m, momentum in zip(bns, momenta, strict=True):
            m.momentum = momentum

    def on_validation_epoch_end(self) -> None:
        # Validation runs at the end of each training epoch, before on_train_epoch_end hooks: log the
        # epoch's mean training loss here so the epoch log sees it.
        if self._train_loss and not self.trainer.sanity_checking:
            n = sum(k for _, k in self._train_loss)
            t = torch.tensor(sum(v * k for v, k in self._train_loss) / max(1, n), device=self.device)
            if self.trainer.world_size > 1:
                t = torch.as_tensor(self.all_gather(t)).mean()
            self.log("train_loss", float(t), prog_bar=False, sync_dist=False)
            self._train_loss.clear()
            if self.objective.adversary is not None:
                self.log_dict(self.objective.adversary.epoch_metrics(self), prog_bar=False, sync_dist=False)
        self.log_dict(self.objective.compute(self), prog_bar=True, sync_dist=False)

    # -- optimiser and schedule ---------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        cfg = self.cfg
        family_groups = self.family.param_groups(self.model, cfg)
        if family_groups is not None:
            groups = family_groups
        else:
            decay_p: list[torch.nn.Parameter] = []
            no_decay_p: list[torch.nn.Parameter] = []
            for name, p in self.model.named_parameters():
                if not p.requires_grad:
                    continue
                (no_decay_p if p.ndim <= 1 or name.endswith(".bias") else decay_p).append(p)
            groups = [
                {"params": decay_p, "lr": cfg.lr, "weight_decay": cfg.weight_decay},
                {"params": no_decay_p, "lr": cfg.lr, "weight_decay": 0.0},
            ]
        if self.objective.adversary is not None:  # the corpus classifier learns at the head's rate
            adv = [p for p in self.objective.adversary.parameters() if p.requires_grad]
            groups = [*groups, {"params": adv, "lr": cfg.lr, "weight_decay": cfg.weight_decay}]
        opt = torch.optim.AdamW(groups, lr=cfg.lr)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        sched: torch.optim.lr_scheduler.LRScheduler
        if cfg.schedule == "constant":
            return opt
        if cfg.schedule == "plateau":
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=2)
            return {
                "optimizer": opt,
                "lr_scheduler": {"scheduler": sched, "monitor": self.monitor, "interval": "epoch"},
            }
        if cfg.schedule == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(
                opt, max_lr=[g["lr"] for g in groups], total_steps=total, pct_start=0.3, anneal_strategy="cos"
            )
        else:  # cosine with linear warm-up
            steps_per_epoch = total / max(1, self.trainer.max_epochs or 1)
            warm = int(cfg.warmup_epochs * steps_per_epoch)

            def factor(step: int) -> float:
                if step < warm:
                    return (step + 1) / (warm + 1)
                progress = (step - warm) / max(1, total - warm)
                return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

            sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
