"""The Lightning fit that the neural model families share (:class:`emoshift.models.families.NeuralFamily`
trains through it: training passes it in as ``fit_loop``, so models/ never imports this layer).

``fit_lightning`` builds the DataModule from the family's datasets, the EmotionModule around the family's
training net, and a Trainer whose callbacks write ``RUN/log.csv`` and keep the best weights by the task's
validation monitor (``val_uar``; ``val_ccc``, the mean CCC over targets, for a dimensional run) in
``RUN/checkpoints/best.safetensors`` (:class:`EpochLog`, the one best-weights mechanism), and save the latest
epoch in ``RUN/checkpoints/last.ckpt`` to resume from (and say so when resuming); it returns the model with the
best weights.

Epochs count from 1 everywhere: the progress line ``epoch 2/4``, ``RUN/log.csv``'s ``epoch`` column (the
epochs finished when the row was written) and the report. ``last.ckpt`` is written at the end of each epoch,
and that epoch's log row only after it, so a logged epoch is never trained again on resume (the checkpoint
also carries the rows: a resumed run rewrites log.csv from it).

Ctrl-C (SIGINT) or SIGTERM during training stops it after the batch in progress (:class:`StopOnSignal`), with
one line saying so; the run directory keeps the last finished epoch's checkpoint, and the same command resumes
from it (the interrupted epoch is trained again from its start, so a resumed run equals an uninterrupted one).
A second Ctrl-C stops at once.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint
from torch import nn

from emoshift.core.errors import TrainingInterrupted
from emoshift.core.io import atomic_write_csv, read_csv
from emoshift.core.progress import is_terminal
from emoshift.core.rundir import RunDir
from emoshift.models.weights import load_weights, save_weights

if TYPE_CHECKING:
    from emoshift.config import ExperimentConfig
    from emoshift.data.datasets import Item
    from emoshift.models.families import FitData, Fitted, NeuralFamily
    from emoshift.training.adversary import DomainAdversary

LOG_COLUMNS = ["epoch", "train_loss", "val_loss", "val_uar", "val_accuracy", "lr", "seconds"]


def fit_lightning(
    family: NeuralFamily,
    cfg: ExperimentConfig,
    data: FitData,
    run: RunDir,
    *,
    model: nn.Module,
    progress: bool,
    callbacks: Sequence[Any] = (),
    loggers: Sequence[Any] = (),
) -> Fitted:
    """Train ``family.train_net(model)`` on ``data`` with the task's objective; the best weights by its
    validation monitor end up in ``model``.

    ``loggers``: Lightning loggers (TensorBoard, MLflow: :mod:`emoshift.training.tracking` builds them)."""
    from emoshift.data.datasets import EmotionDataModule
    from emoshift.models.families import Fitted
    from emoshift.training.module import EmotionModule
    from emoshift.training.objective import objective_for

    dm = EmotionDataModule(
        prepare=lambda: family.datasets(cfg, data.train, data.val, data.stores),
        batch_size=cfg.training.batch_size,
        sampling=cfg.training.sampling,
        seed=cfg.training.seed,
        max_batch_samples=family.max_batch_samples(cfg),
        num_workers=cfg.data.num_workers,
    )
    net = family.train_net(model)
    weights = class_weights(data.train, len(data.labels)) if cfg.training.class_weighted_loss else None
    adversary = domain_adversary(family, cfg, data, net)
    objective = objective_for(
        cfg.task_kind, cfg.training, labels=data.labels, targets=cfg.data.targets, train=data.train, val=data.val,
        class_weights=weights, teacher_logits=data.teacher_logits, adversary=adversary,
    )
    module = EmotionModule(net, training=cfg.training, family=family, objective=objective)
    trainer = build_trainer(cfg, run, progress=progress, loggers=loggers)
    trainer.callbacks.extend(callbacks)
    last = run.last_checkpoint
    stop = next(cb for cb in trainer.callbacks if isinstance(cb, StopOnSignal))
    with warnings.catch_warnings(), stop.handling():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*Checkpoint directory.*exists and is not empty.*")
        warnings.filterwarnings("ignore", ".*LeafSpec.*")  # lightning internals vs newer torch, not ours
        trainer.fit(module, datamodule=dm, ckpt_path=str(last) if last.is_file() else None)
    if adversary is not None:
        adversary.release()  # the emotion net alone from here on (saved, calibrated, evaluated)
    stop.check(trainer, "after its last batch", finished=True)  # a signal as the last epoch ended: stop still
    if trainer.global_rank != 0:
        return Fitted(model, trainer.current_epoch, is_main=False)  # DDP workers stop here
    if run.best_weights.is_file():
        load_weights(net, run.best_weights)
    return Fitted(model, trainer.current_epoch)


def domain_adversary(
    family: NeuralFamily, cfg: ExperimentConfig, data: FitData, net: nn.Module
) -> DomainAdversary | None:
    """``training.dann``'s corpus classifier on ``net``'s pooled embedding, fed the unlabelled target items of
    ``data`` through the family's own training dataset (:mod:`emoshift.training.adversary`); None when off."""
    if cfg.training.dann is None:
        return None
    from emoshift.config.dann import domains
    from emoshift.data.datasets import UnlabelledBatches, collate_for
    from emoshift.training.adversary import DomainAdversary

    target = None
    if data.unlabelled:
        dataset, _ = family.datasets(cfg, data.unlabelled, [], data.stores)
        target = UnlabelledBatches(dataset, collate_for(family.max_batch_samples(cfg)), seed=cfg.training.seed)
    names = domains(cfg.data.corpora, cfg.data.unlabelled)
    return DomainAdversary(family.embedding_head(net), names, cfg.training.dann, target=target)


def monitored(cfg: ExperimentConfig) -> str:
    """The validation score that keeps the best weights and stops early: ``val_ccc`` (dimensional) or ``val_uar``."""
    return cfg.task_kind.monitor


def log_columns(cfg: ExperimentConfig) -> list[str]:
    """RUN/log.csv's columns: categorical ones, or val_ccc and each target's for a dimensional run."""
    from emoshift.training.adversary import DOMAIN_COLUMNS

    domain = DOMAIN_COLUMNS if cfg.training.dann is not None else []  # the corpus classifier's, per epoch
    if not cfg.task_kind.rated:
        return [*LOG_COLUMNS[:-2], *domain, *LOG_COLUMNS[-2:]]
    scores = ["val_ccc", *[f"val_ccc_{t}" for t in cfg.data.targets]]
    return ["epoch", "train_loss", "val_loss", *scores, *domain, "lr", "seconds"]


class EpochLog(Checkpoint):
    """Writes RUN/log.csv (one row per epoch, atomically) and keeps the best weights by validation UAR.

    A :class:`Checkpoint` only so that Lightning runs it after ModelCheckpoint (it orders checkpoint callbacks
    last, in the order given): each epoch's row is written after ``last.ckpt`` holds that epoch, so a logged
    epoch is never trained again on resume. The rows travel in the checkpoint too (:meth:`state_dict`): a
    resumed run rewrites log.csv from them, so the log always matches the checkpoint it continues.

    With ``echo`` it also prints that row as one line on stderr (a log file or CI, where Lightning's bar is
    off): ``epoch 2/4: train loss 1.515, val loss 1.471, val UAR 0.458, val acc 0.458 (2.1 s, ETA 0:04)``.
    With ``announce`` a resumed run says what it resumes.
    """

    def __init__(
        self,
        run: RunDir,
        *,
        echo: bool = False,
        monitor: str = "val_uar",
        columns: list[str] | None = None,
        announce: bool = False,
    ) -> None:
        self.run = run
        self.echo = echo
        self.announce = announce
        self.monitor = monitor
        self.columns = list(columns or LOG_COLUMNS)
        self.best = -float("inf")
        self.t0 = time.time()
        self.rows: list[dict[str, Any]] = []  # the epochs finished, as log.csv rows
        self.pending: dict[str, Any] | None = None  # this epoch's row, written once its checkpoint is

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "rows": [*self.rows, *([self.pending] if self.pending else [])]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state.get("best", -float("inf")))
        self.rows = list(state.get("rows") or [])

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if trainer.ckpt_path is None or trainer.global_rank != 0:
            return
        done = trainer.current_epoch  # restored from the checkpoint: the epochs it holds
        if not self.rows and self.run.log.is_file():  # a checkpoint written before the rows travelled in it
            self.rows = [r for r in read_csv(self.run.log) if int(r["epoch"]) <= done]
        self.rows = [r for r in self.rows if int(r["epoch"]) <= done]
        atomic_write_csv(self.run.log, self.columns, self.rows)
        if self.announce:
            total = f" of {trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
            print(f"resuming {self.run.path}: {done} epoch(s){total} done ({self.run.last_checkpoint.name}), "
                  f"training from epoch {done + 1}", file=sys.stderr, flush=True)

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self.t0 = time.time()
        self.pending = None

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        # Runs after the module logged this epoch's metrics; the row waits for the epoch's checkpoint.
        if trainer.sanity_checking or trainer.global_rank != 0:
            return
        m = trainer.callback_metrics
        score = float(m.get(self.monitor, float("nan")))
        if score > self.best:  # best weights by validation UAR (CCC for dimensional), kept as safetensors
            self.best = score
            save_weights(pl_module.model, self.run.best_weights)
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else float("nan")
        row = {c: _fmt(m.get(c)) for c in self.columns}
        row.update({"epoch": trainer.current_epoch + 1, "lr": f"{lr:.6g}", "seconds": f"{time.time() - self.t0:.2f}"})
        self.pending = row

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        # After ModelCheckpoint wrote last.ckpt for this epoch (it runs first: see the class docstring).
        if self.pending is None or trainer.global_rank != 0:
            return
        self.rows = [r for r in self.rows if int(r["epoch"]) < int(self.pending["epoch"])] + [self.pending]
        self.pending = None
        atomic_write_csv(self.run.log, self.columns, self.rows)
        if self.echo:
            print(_epoch_line(self.rows, trainer.max_epochs), file=sys.stderr, flush=True)


class StopOnSignal(L.Callback):
    """Ctrl-C (SIGINT) or SIGTERM during training: say so at once and stop after the batch in progress.

    Installed around ``trainer.fit`` (:meth:`handling`, main thread only) in place of Lightning's own SIGTERM
    handling, which could stop between an epoch's log row and its checkpoint. The first signal is noted and
    printed; the next training or validation batch end raises :class:`TrainingInterrupted`, before the
    epoch's row and checkpoint, so the run directory holds whole epochs only. A second Ctrl-C stops at once.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self.signum: int | None = None

    @contextlib.contextmanager
    def handling(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
            yield
            return
        saved = {s: signal.getsignal(s) for s in self.SIGNALS}
        for s in self.SIGNALS:
            signal.signal(s, self._received)
        try:
            yield
        finally:
            for s, handler in saved.items():
                signal.signal(s, handler)

    def _received(self, signum: int, frame: Any) -> None:
        if self.signum is not None:  # the second one: at once
            raise KeyboardInterrupt
        self.signum = signum
        print(f"\n{signal.Signals(signum).name}: stopping after the current batch (Ctrl-C again: at once)",
              file=sys.stderr, flush=True)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        # Lightning installs its own SIGTERM handler after on_fit_start (it would stop at its own points, one
        # of them between an epoch's validation and its checkpoint): ours again, for the whole of training
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._received)

    def check(self, trainer: Any, where: str, *, finished: bool = False) -> None:
        """Raise :class:`TrainingInterrupted` if a signal came (``finished``: after the last epoch's end)."""
        if self.signum is None:
            return
        epoch = trainer.current_epoch + (0 if finished else 1)
        total = f" of {trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        done = epoch if finished else epoch - 1
        if done >= 1:
            held = "epoch 1" if done == 1 else f"epochs 1-{done}"
            then = "evaluate" if finished else f"resume from epoch {epoch}"
            kept = f"{self.run.last_checkpoint} holds {held}: run the same command again to {then}"
        else:
            kept = "no epoch had finished, so there is no checkpoint yet: the same command starts again"
        name = signal.Signals(self.signum).name
        raise TrainingInterrupted(f"training stopped on {name} in epoch {epoch}{total} ({where}); {kept}",
                                  self.signum)

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self.check(trainer, f"before training batch {batch_idx + 1}")

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.check(trainer, f"after training batch {batch_idx + 1}")

    def on_validation_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self.check(trainer, f"validating, before batch {batch_idx + 1}")

    def on_validation_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self.check(trainer, f"validating, after batch {batch_idx + 1}")


def _epoch_line(rows: list[dict[str, Any]], max_epochs: int | None) -> str:
    """The last log.csv row as one line, with an ETA from the mean epoch time so far."""
    from emoshift.core.progress import clock

    row, total = rows[-1], max_epochs if max_epochs and max_epochs > 0 else None
    figures = [f"{name} {float(row[key]):.3f}" for name, key in (
        ("train loss", "train_loss"), ("val loss", "val_loss"), ("val UAR", "val_uar"), ("val acc", "val_accuracy"),
        ("val CCC", "val_ccc"), ("domain acc", "domain_accuracy"),
    ) if row.get(key, "") != ""]
    seconds = [float(r["seconds"]) for r in rows if r.get("seconds")]
    took = f"{seconds[-1]:.1f} s" if seconds else ""
    if total is not None and seconds:
        took += f", ETA {clock(sum(seconds) / len(seconds) * max(0, total - int(row['epoch'])))}"
    head = f"epoch {int(row['epoch'])}" + (f"/{total}" if total else "")
    return f"{head}: {', '.join(figures)}" + (f" ({took})" if took else "")


def _fmt(v: Any) -> str:
    return "" if v is None else f"{float(v):.6f}"


def _precision(cfg: ExperimentConfig) -> Any:  # a Lightning precision literal
    if cfg.trainer.precision != "auto":
        return cfg.trainer.precision
    if cfg.trainer.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"


def build_trainer(cfg: ExperimentConfig, run: RunDir, *, progress: bool, loggers: Sequence[Any] = ()) -> Any:
    from lightning.pytorch.callbacks import EarlyStopping, RichProgressBar, TQDMProgressBar

    callbacks: list[Any] = [
        # RUN/checkpoints/last.ckpt, to resume: the latest whole epoch, nothing ranked (the best weights are
        # EpochLog's best.safetensors, the one best-weights mechanism)
        ModelCheckpoint(
            dirpath=run.checkpoints,
            filename=run.last_checkpoint.stem,
            monitor=None,
            save_top_k=1,
            enable_version_counter=False,  # overwrite last.ckpt, never last-v1.ckpt
            save_on_train_epoch_end=True,  # a checkpoint is a whole finished epoch: resume starts the next
        ),
        EpochLog(  # after ModelCheckpoint: each epoch's row follows its checkpoint
            run,
            echo=progress and cfg.trainer.progress and not is_terminal(),
            monitor=monitored(cfg),
            columns=log_columns(cfg),
            announce=progress,
        ),
        StopOnSignal(run),
    ]
    if cfg.training.early_stopping_patience:
        callbacks.append(
            EarlyStopping(monitor=monitored(cfg), mode="max", patience=cfg.training.early_stopping_patience)
        )
    show = progress and cfg.trainer.progress and is_terminal()  # elsewhere: EpochLog's one line per epoch
    _quiet_lightning()
    if show:
        try:
            callbacks.append(RichProgressBar(leave=True))
        except (ImportError, ModuleNotFoundError):
            callbacks.append(TQDMProgressBar())
    on_gpu = torch.cuda.is_available() and cfg.trainer.accelerator in ("auto", "gpu", "cuda")
    return L.Trainer(
        max_epochs=cfg.training.epochs,
        accelerator=cfg.trainer.accelerator,
        devices=cfg.trainer.devices,
        strategy=cfg.trainer.strategy,
        num_nodes=cfg.trainer.num_nodes,
        precision=_precision(cfg),
        deterministic=cfg.trainer.deterministic if not on_gpu else "warn",
        gradient_clip_val=cfg.training.gradient_clip,
        callbacks=callbacks,
        logger=list(loggers) or False,  # RUN/log.csv is EpochLog's, whatever the loggers
        enable_progress_bar=show,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(run.path),
        log_every_n_steps=1,
    )


def _quiet_lightning() -> None:
    """Keep Lightning's info lines (GPU/TPU available, tips for its cloud products, "fit stopped") out of the
    output; its warnings still show."""
    import logging

    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


def class_weights(items: list[Item], n: int) -> torch.Tensor:
    counts = np.bincount([it.label for it in items], minlength=n).astype(np.float64)
    w = np.where(counts > 0, counts.sum() / (n * np.maximum(counts, 1)), 0.0)
    return torch.tensor(w, dtype=torch.float32)
