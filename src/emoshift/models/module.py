"""The LightningModule: a plain ``nn.Module`` inside, and the loss, metrics, optimiser and schedule around it.

The model family (:mod:`emoshift.models.families`) says how a batch reaches the net and is augmented, and which
optimiser groups it uses: log-mel batches ``x (B, 1, n_mels, T)``, waveform batches ``x (B, S)`` with an
``attention_mask (B, S)``, embedding batches ``x (B, L+1, E)`` (frozen SSL encoder, cached).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from emoshift.core.task import CATEGORICAL, DIMENSIONAL
from emoshift.data.augment import mixup, mixup_values
from emoshift.models.families import NeuralFamily

if TYPE_CHECKING:
    from emoshift.config import TrainingConfig


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


class EmotionModule(L.LightningModule):
    class_weights: torch.Tensor  # buffer (C,)
    def __init__(
        self,
        model: nn.Module,
        *,
        labels: list[str],
        training: TrainingConfig,
        family: NeuralFamily,
        class_weights: torch.Tensor | None = None,
        teacher_logits: torch.Tensor | None = None,
        targets: list[str] | None = None,
        train_targets: torch.Tensor | None = None,
        val_targets: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.labels = list(labels)
        self.cfg = training
        self.family = family
        self.num_labels = len(labels)
        self.register_buffer(
            "class_weights", class_weights if class_weights is not None else torch.ones(len(labels))
        )
        self.use_class_weights = class_weights is not None
        # (N_train, C) teacher logits indexed by training item; not a parameter, not in checkpoints' state
        self.teacher_logits = teacher_logits
        self.gen = torch.Generator().manual_seed(training.seed)
        self._val_conf = torch.zeros(self.num_labels, self.num_labels, dtype=torch.long)
        self._val_loss: list[tuple[float, int]] = []
        self._train_loss: list[tuple[float, int]] = []
        self._stage: int | None = None
        # task dimensional: ``targets`` names the outputs; (N_train, T) / (N_val, T) ratings indexed by item
        self.targets = list(targets or [])
        self.task = DIMENSIONAL if self.targets else CATEGORICAL  # (the one home of what follows from it)
        self.rated = self.task.rated
        self.train_targets = train_targets
        self.val_targets = val_targets
        self._val_sums = torch.zeros(len(self.targets), 6, dtype=torch.float64)  # (T, 6), see ccc_from_sums
        self._val_sq = 0.0

    @property
    def monitor(self) -> str:
        """The validation score that selects weights (higher is better): ``val_ccc`` or ``val_uar``."""
        return self.task.monitor

    # -- forward ------------------------------------------------------------------------------------
    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.family.forward(self.model, batch)  # (B, C)

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
    def _ce(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(
            logits,
            y,
            weight=self.class_weights if self.use_class_weights else None,
            label_smoothing=self.cfg.label_smoothing,
        )

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        if self.rated:
            return self._regression_step(batch)
        x, y = batch["x"], batch["y"]
        aug = self.cfg.augment
        x = self.family.augment(x, batch, aug, self.gen)
        soft = None
        if aug.mixup_alpha > 0 and self.family.mixup:
            x, soft = mixup(x, y, self.num_labels, aug.mixup_alpha, self.gen)
        logits = self.forward({**batch, "x": x})
        if soft is not None:
            logp = F.log_softmax(logits, dim=-1)
            w = self.class_weights if self.use_class_weights else torch.ones_like(self.class_weights)
            loss = -(soft * logp * w).sum(-1).mean()
        elif self.teacher_logits is not None and self.cfg.distill is not None:
            t = self.teacher_logits.to(logits.device)[batch["index"]]
            loss = distillation_loss(
                logits,
                t,
                y,
                temperature=self.cfg.distill.temperature,
                alpha=self.cfg.distill.alpha,
                weight=self.class_weights if self.use_class_weights else None,
                label_smoothing=self.cfg.label_smoothing,
            )
        else:
            loss = self._ce(logits, y)
        self._train_loss.append((float(loss.detach()), int(y.shape[0])))
        self.log("loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=int(y.shape[0]))
        return loss

    def _regression_step(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        assert self.train_targets is not None  # set with targets by fit_lightning
        y = self.train_targets.to(batch["x"].device)[batch["index"]]  # (B, T)
        aug = self.cfg.augment
        x = self.family.augment(batch["x"], batch, aug, self.gen)
        if aug.mixup_alpha > 0 and self.family.mixup:
            x, y = mixup_values(x, y, aug.mixup_alpha, self.gen)
        pred = self.forward({**batch, "x": x}).float()  # (B, T)
        loss = regression_loss(self.cfg.loss, pred, y)
        self._train_loss.append((float(loss.detach()), int(y.shape[0])))
        self.log("loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=int(y.shape[0]))
        return loss

    def _regression_validation(self, batch: dict[str, torch.Tensor]) -> None:
        assert self.val_targets is not None
        t = self.val_targets.to(batch["x"].device)[batch["index"]].double()  # (B, T)
        p = self.forward(batch).double()  # (B, T)
        sums = torch.stack([torch.full_like(p[0], p.shape[0]), p.sum(0), t.sum(0), (p * p).sum(0),
                            (t * t).sum(0), (p * t).sum(0)], dim=1)  # (T, 6)
        self._val_sums += sums.cpu()
        self._val_sq += float(((p - t) ** 2).mean(1).sum())

    def _log_regression_validation(self) -> None:
        sums = self._val_sums.to(self.device)
        sq = torch.tensor(self._val_sq, device=self.device, dtype=torch.float64)
        if self.trainer.world_size > 1:  # DDP: sums of every rank's shard
            sums = torch.as_tensor(self.all_gather(sums)).sum(0)
            sq = torch.as_tensor(self.all_gather(sq)).sum()
        per = ccc_from_sums(sums)  # (T,)
        mean = float(per.mean())
        n = float(sums[0, 0].clamp_min(1))
        loss = 1.0 - mean if self.cfg.loss == "ccc" else float(sq) / n
        self.log_dict(
            {"val_ccc": mean, "val_loss": loss, **{f"val_ccc_{t}": float(c) for t, c in zip(self.targets, per, strict=True)}},
            prog_bar=True,
            sync_dist=False,
        )

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        if self.rated:
            self._regression_validation(batch)
            return
        logits = self.forward(batch)
        y = batch["y"]
        loss = F.cross_entropy(logits, y)
        self._val_loss.append((float(loss), int(y.shape[0])))
        pred = logits.argmax(-1)
        idx = (y * self.num_labels + pred).cpu()
        self._val_conf += torch.bincount(idx, minlength=self.num_labels**2).view(self.num_labels, -1)

    def on_validation_epoch_start(self) -> None:
        self._val_conf.zero_()
        self._val_loss.clear()
        self._val_sums.zero_()
        self._val_sq = 0.0
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
        if self.rated:
            self._log_regression_validation()
            return
        conf = self._val_conf.to(self.device)
        loss_sum = torch.tensor(
            sum(v * n for v, n in self._val_loss), device=self.device, dtype=torch.float64
        )
        count = torch.tensor(sum(n for _, n in self._val_loss), device=self.device, dtype=torch.float64)
        if self.trainer.world_size > 1:  # DDP: every rank saw a shard of the validation set
            conf = torch.as_tensor(self.all_gather(conf)).sum(0)
            loss_sum = torch.as_tensor(self.all_gather(loss_sum)).sum()
            count = torch.as_tensor(self.all_gather(count)).sum()
        acc = float(conf.diag().sum()) / max(1, int(conf.sum()))
        self.log_dict(
            {
                "val_uar": uar_from_confusion(conf),
                "val_accuracy": acc,
                "val_loss": float(loss_sum / count.clamp_min(1)),
            },
            prog_bar=True,
            sync_dist=False,
        )

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
