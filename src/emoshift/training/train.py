"""``train(cfg, run_dir)``: scan -> split by speaker -> features -> Lightning fit -> save -> evaluate.

A plain function (lightning-hydra-template style). Re-running it on an interrupted run directory resumes from
``checkpoints/last.ckpt``; on a complete one it returns at once. Every file is written atomically.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from emoshift.config import ExperimentConfig, load_config, save_config
from emoshift.core.errors import EmoshiftError
from emoshift.core.io import atomic_write_csv, atomic_write_json, read_csv
from emoshift.core.rundir import RunDir, save_weights, write_model_json
from emoshift.corpora import EMOTIONS, Scan
from emoshift.data.datasets import Item
from emoshift.deploy.modelcard import write_model_card

log = logging.getLogger("emoshift.training.train")

LOG_COLUMNS = ["epoch", "train_loss", "val_loss", "val_uar", "val_accuracy", "lr", "seconds"]


class TrainError(EmoshiftError, RuntimeError):
    """Training cannot start or continue (message is for the user)."""


@dataclass
class Prepared:
    scans: dict[str, Scan]
    splits: dict[str, Any]  # corpus -> splits.Split
    labels: list[str]
    train: list[Item]
    val: list[Item]


# ------------------------------------------------------------------------------------------------ data


def scan_corpora(cfg: ExperimentConfig, names: list[str], *, progress: bool = False) -> dict[str, Scan]:
    from emoshift.corpora import scan

    scans = {}
    for name in names:
        root = cfg.data.roots.get(name)
        if not root:
            raise TrainError(f"no root folder for corpus {name!r}: pass --corpus {name}=/path/to/{name}")
        kwargs: dict[str, Any] = {"progress": progress}
        if name == "ravdess":
            kwargs["include_song"] = cfg.data.include_song
        scans[name] = scan(name, root, labels=cfg.data.labels, **kwargs)
        if not scans[name].utterances:
            raise TrainError(f"corpus {name!r} at {root}: no usable utterances")
    return scans


def label_list(scans: dict[str, Scan]) -> list[str]:
    present = {u.emotion for s in scans.values() for u in s.utterances}
    return [e for e in EMOTIONS if e in present]


def prepare_data(cfg: ExperimentConfig, run: RunDir, *, progress: bool = False) -> Prepared:
    """Scan the training corpora and split each by speaker (splits are saved, and reused on resume)."""
    from emoshift.data.splits import check_disjoint, load_split, make_split, save_split

    scans = scan_corpora(cfg, cfg.data.corpora, progress=progress)
    labels = label_list(scans)
    if len(labels) < 2:
        raise TrainError(f"the training corpora hold fewer than two labels under policy {cfg.data.labels!r}")
    splits = {}
    for name, sc in scans.items():
        path = run.split(name)
        split = make_split(sc.utterances, cfg.data.split)  # deterministic for the config's seed
        check_disjoint(split, allow_leak=cfg.data.split.allow_leak)
        if path.is_file():  # resuming: the saved split must be the one this corpus and config give
            if load_split(path).assignment != split.assignment:
                raise TrainError(
                    f"{path} no longer matches corpus {name!r} (files were added, removed or relabelled "
                    "since this run started): use a new run directory"
                )
        else:
            save_split(split, path)
        splits[name] = split
    index = {lab: i for i, lab in enumerate(labels)}
    train, val = [], []
    for ci, name in enumerate(cfg.data.corpora):
        for u in scans[name].utterances:
            part = splits[name].assignment.get(u.id)
            if part == "train":
                train.append(Item(u, index[u.emotion], ci))
            elif part == "val":
                val.append(Item(u, index[u.emotion], ci))
    if not train or not val:
        raise TrainError(
            "the split left no training or no validation utterances; use more speakers or other ratios"
        )
    return Prepared(scans, splits, labels, train, val)


def feature_stores(cfg: ExperimentConfig, scans: dict[str, Scan], *, progress: bool) -> dict[str, Any]:
    from emoshift.features.cache import FeatureCache

    cache = FeatureCache(Path(cfg.data.cache_dir) / "features")
    return {
        name: cache.build(name, sc.utterances, cfg.features, progress=progress) for name, sc in scans.items()
    }


def drop_uncached(items: list[Item], stores: dict[str, Any]) -> list[Item]:
    return [it for it in items if it.utt.id in stores[it.utt.corpus]]


# ------------------------------------------------------------------------------------------------ training


class EpochLog(L.Callback):
    """Writes RUN/log.csv (one row per epoch, atomically) and keeps the best weights by validation UAR."""

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self.best = -float("inf")
        self.t0 = time.time()

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state.get("best", -float("inf")))

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self.t0 = time.time()

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        # Runs after the module logged this epoch's metrics and before ModelCheckpoint writes
        # last.ckpt (Lightning orders checkpoint callbacks last), so a resumed run never lacks a row.
        if trainer.sanity_checking or trainer.global_rank != 0:
            return
        m = trainer.callback_metrics
        uar = float(m.get("val_uar", float("nan")))
        if uar > self.best:  # best weights by validation UAR, kept as safetensors
            self.best = uar
            save_weights(pl_module.model, self.run.checkpoints / "best.safetensors")
        epoch = trainer.current_epoch
        rows = [r for r in (read_csv(self.run.log) if self.run.log.is_file() else []) if int(r["epoch"]) < epoch]
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else float("nan")
        rows.append(
            {
                "epoch": epoch,
                "train_loss": _fmt(m.get("train_loss")),
                "val_loss": _fmt(m.get("val_loss")),
                "val_uar": _fmt(m.get("val_uar")),
                "val_accuracy": _fmt(m.get("val_accuracy")),
                "lr": f"{lr:.6g}",
                "seconds": f"{time.time() - self.t0:.2f}",
            }
        )
        atomic_write_csv(self.run.log, LOG_COLUMNS, rows)


def _fmt(v: Any) -> str:
    return "" if v is None else f"{float(v):.6f}"


def _precision(cfg: ExperimentConfig) -> str:
    if cfg.trainer.precision != "auto":
        return cfg.trainer.precision
    if cfg.trainer.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"


def build_trainer(cfg: ExperimentConfig, run: RunDir, *, progress: bool) -> Any:
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, RichProgressBar, TQDMProgressBar

    callbacks: list[Any] = [
        ModelCheckpoint(
            dirpath=run.checkpoints,
            filename="best",
            monitor="val_uar",
            mode="max",
            save_last=True,
            save_top_k=1,
            save_on_train_epoch_end=True,  # a checkpoint is a whole finished epoch: resume starts the next
        ),
        EpochLog(run),
    ]
    if cfg.training.early_stopping_patience:
        callbacks.append(
            EarlyStopping(monitor="val_uar", mode="max", patience=cfg.training.early_stopping_patience)
        )
    show = progress and cfg.trainer.progress
    if show:
        try:
            callbacks.append(RichProgressBar(leave=True))
        except (ImportError, ModuleNotFoundError):
            callbacks.append(TQDMProgressBar())
    loggers: list[Any] = []
    try:
        import tensorboard  # noqa: F401
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(str(run.path), name="tensorboard", version=""))
    except ImportError:
        pass
    on_gpu = torch.cuda.is_available() and cfg.trainer.accelerator in ("auto", "gpu", "cuda")
    return L.Trainer(
        max_epochs=cfg.training.epochs,
        accelerator=cfg.trainer.accelerator,
        devices=cfg.trainer.devices,
        strategy=cfg.trainer.strategy,
        num_nodes=cfg.trainer.num_nodes,
        precision=_precision(cfg),  # type: ignore[arg-type]
        deterministic=cfg.trainer.deterministic if not on_gpu else "warn",
        gradient_clip_val=cfg.training.gradient_clip,
        callbacks=callbacks,
        logger=loggers or False,
        enable_progress_bar=show,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(run.path),
        log_every_n_steps=1,
    )


def class_weights(items: list[Item], n: int) -> torch.Tensor:
    counts = np.bincount([it.label for it in items], minlength=n).astype(np.float64)
    w = np.where(counts > 0, counts.sum() / (n * np.maximum(counts, 1)), 0.0)
    return torch.tensor(w, dtype=torch.float32)


def architecture_info(cfg: ExperimentConfig, model: torch.nn.Module) -> dict[str, Any]:
    info: dict[str, Any] = {"model": cfg.model.name, "dropout": cfg.model.dropout}
    if cfg.model.input_kind == "spectrogram":
        info["backbone_config"] = model.backbone.config.to_dict()  # type: ignore[union-attr,operator]
    else:
        from emoshift.models.ssl import saved_info  # type: ignore[attr-defined]

        info.update(saved_info(model, cfg.model))  # type: ignore[arg-type]
    return info


def train(
    cfg: ExperimentConfig,
    run_dir: str | os.PathLike[str],
    *,
    progress: bool = True,
    callbacks: list[Any] | None = None,
) -> Path:
    """Train ``cfg`` into ``run_dir`` (resuming it if interrupted) and evaluate on every training corpus."""

    from emoshift.models import get_model

    run = RunDir.of(run_dir)
    fingerprint = cfg.fingerprint(exclude_roots=True)
    if run.is_complete():
        if run.done_info().get("fingerprint") not in (None, fingerprint):
            raise TrainError(f"{run.path} holds a finished run of a different config; choose another -o")
        log.info("run %s is already complete", run.path)
        return run.path
    if run.config.is_file():
        old = load_config(run.config)
        if old.fingerprint(exclude_roots=True) != fingerprint:
            raise TrainError(
                f"{run.path} holds an unfinished run of a different config; choose another -o or delete it"
            )
    run.path.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run.config)
    if not progress:  # quiet: keep Lightning's banners (GPU available, tips) out of the output
        logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    started = time.time()
    L.seed_everything(cfg.training.seed, workers=True, verbose=False)

    prep = prepare_data(cfg, run, progress=progress)
    kind = cfg.model.input_kind
    torch.manual_seed(cfg.training.seed)
    model = get_model(cfg.model.name, num_labels=len(prep.labels), **cfg.model.builder_kwargs())
    teacher_by_id: dict[str, torch.Tensor] = {}
    if cfg.training.distill is not None:
        # Before the student opens its feature stores: the teacher's inference may add to the same cache.
        from emoshift.training.distill import teacher_logits

        logits = teacher_logits(cfg.training.distill.teacher, prep.train, prep.labels, cfg, progress=progress)
        teacher_by_id = {it.utt.id: row for it, row in zip(prep.train, logits, strict=True)}
    train_kind = kind
    stores: dict[str, Any] = {}
    if kind == "spectrogram":
        stores = feature_stores(cfg, prep.scans, progress=progress)
        prep.train, prep.val = drop_uncached(prep.train, stores), drop_uncached(prep.val, stores)
    elif cfg.model.mode == "frozen":
        from emoshift.features.embedding_cache import EmbeddingCache, model_cache_key

        cache = EmbeddingCache(Path(cfg.data.cache_dir) / "ssl")
        key = model_cache_key(cfg.model.model_dump(mode="json"))
        stores = {
            name: cache.build(name, sc.utterances, model, model_key=key, progress=progress)  # type: ignore[arg-type]
            for name, sc in prep.scans.items()
        }
        prep.train, prep.val = drop_uncached(prep.train, stores), drop_uncached(prep.val, stores)
        train_kind = "embedding"
    elif hasattr(model, "freeze_feature_encoder"):
        model.freeze_feature_encoder()  # type: ignore[operator]

    teacher = torch.stack([teacher_by_id[it.utt.id] for it in prep.train]) if teacher_by_id else None  # (N, C)
    from emoshift.data.datasets import EmotionDataModule
    from emoshift.training.module import EmotionModule

    dm = EmotionDataModule(
        prepare=lambda: (prep.train, prep.val, stores),
        input_kind=train_kind,
        batch_size=cfg.training.batch_size,
        sampling=cfg.training.sampling,
        seed=cfg.training.seed,
        frames=cfg.features.frames_for(cfg.features.crop_s),
        sample_rate=cfg.features.sample_rate,
        max_batch_seconds=cfg.training.max_batch_seconds,
        trim=cfg.features.trim_silence,
        num_workers=cfg.data.num_workers,
    )
    net = model.frozen_head() if train_kind == "embedding" else model  # type: ignore[operator]
    module = EmotionModule(
        net,
        labels=prep.labels,
        training=cfg.training,
        input_kind=train_kind,
        class_weights=class_weights(prep.train, len(prep.labels))
        if cfg.training.class_weighted_loss
        else None,
        teacher_logits=teacher,
    )
    trainer = build_trainer(cfg, run, progress=progress)
    for cb in callbacks or []:
        trainer.callbacks.append(cb)
    last = run.checkpoints / "last.ckpt"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*Checkpoint directory.*exists and is not empty.*")
        warnings.filterwarnings("ignore", ".*LeafSpec.*")  # lightning internals vs newer torch, not ours
        trainer.fit(module, datamodule=dm, ckpt_path=str(last) if last.is_file() else None)
    if trainer.global_rank != 0:
        return run.path  # DDP workers stop here; rank 0 saves and evaluates

    best = run.checkpoints / "best.safetensors"
    if best.is_file():
        from emoshift.core.rundir import load_weights

        load_weights(net, best)
    save_weights(model, run.weights)
    info = {
        **architecture_info(cfg, model),
        "input_kind": kind,
        "labels": prep.labels,
        "label_policy": cfg.data.labels,
        "features": cfg.features.model_dump(mode="json"),
        "train_corpora": cfg.data.corpora,
        "training_speakers": sorted(
            {it.utt.speaker for it in prep.train} | {it.utt.speaker for it in prep.val}
        ),
        "leaky_split": any(s.leaky for s in prep.splits.values()),
        "distill_teacher": str(cfg.training.distill.teacher) if cfg.training.distill else None,
        "architecture": _describe(cfg),
        "config_fingerprint": fingerprint,
    }
    write_model_json(run, info)

    from emoshift.evaluation.evaluate import evaluate_run
    from emoshift.evaluation.plots import plot_curves

    eval_roots = {name: cfg.data.roots[name] for name in cfg.data.corpora}
    for name in cfg.evaluation.corpora:
        if name in cfg.data.roots:
            eval_roots[name] = cfg.data.roots[name]
    evaluate_run(run.path, eval_roots, progress=progress, scans=prep.scans)
    if run.log.is_file():
        plot_curves(run.log, run.curves_plot)
    atomic_write_json(
        run.done,
        {
            "fingerprint": fingerprint,
            "seconds": round(time.time() - started, 2),
            "epochs_run": trainer.current_epoch,
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "samples": {"train": len(prep.train), "val": len(prep.val)},
            "label_counts": dict(Counter(prep.labels[it.label] for it in prep.train)),
        },
    )
    write_model_card(run.path)  # RUN/README.md (Hugging Face model-card layout)
    import shutil

    shutil.rmtree(
        run.checkpoints, ignore_errors=True
    )  # the run is complete: checkpoints are no longer needed
    return run.path


def _describe(cfg: ExperimentConfig) -> str:
    m = cfg.model
    if m.input_kind == "spectrogram":
        w = "" if m.width_mult == 1.0 else f" x{m.width_mult:g} width"
        pre = f", init {m.pretrained}" if m.pretrained else ", from scratch"
        return f"{m.name}{w} on {cfg.features.n_mels}-mel log-mels{pre}"
    src = f"preset {m.preset}" if m.preset else (m.pretrained or "default weights")
    return f"{m.name} ({src}), {m.mode}, {m.pooling} pooling{', layer sum' if m.layer_sum else ''}"
