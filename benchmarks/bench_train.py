"""Training throughput: the whole spectrogram pipeline against a bare loop of the same model, in the same run.

    python benchmarks/bench_train.py                            # synthetic corpora (emoshift.synth.generate, small)
    python benchmarks/bench_train.py --width-mult 1.0           # the published ResNet-18 width
    python benchmarks/bench_train.py --root DIR                 # DIR/ravdess and DIR/crema-d (real or synthetic)
    python benchmarks/bench_train.py --work /tmp/es --threads 1 # keep corpus + feature cache; 1 torch thread

Both sides train the same architecture from the same initial weights with the same batch size, AdamW and
gradient clipping; samples/s are over ``--steps`` optimiser steps after ``--warmup`` untimed ones.

* pipeline: what ``emoshift train`` runs for a spectrogram model, driven by a Lightning ``Trainer``
  (``max_steps``, no validation, no checkpoints) through the real ``EmotionDataModule`` and
  ``EmotionModule.training_step``: ``prepare_data`` (scan, speaker split) -> ``FeatureCache`` stores
  (memory-mapped log-mels) -> ``SpectrogramDataset`` random 3 s crops -> ``EpochSampler`` with ``class_corpus``
  sampling -> ``collate_tensor_batch`` (``data.num_workers`` workers) -> channel augmentation + SpecAugment ->
  forward, cross-entropy, backward, clipping, AdamW, cosine LR schedule, Lightning's logging. Epoch
  boundaries (the sampler reseeds, workers restart) fall inside the timed steps when an epoch is shorter, as
  they do in training.
* bare: ``torch.randn`` batches ``(B, 1, n_mels, T)`` made before timing -> forward -> cross-entropy ->
  backward -> clipping -> AdamW. No data, no augmentation, no framework: the ceiling for the pipeline.

``--mode interleaved`` (the default with ``--num-workers 0``): one bare step runs right after every pipeline
step, from a Lightning callback, and each is timed on its own; another process slowing the machine then slows
both alike, which a shared 2-core machine makes necessary. ``--mode blocks`` (the default with workers, whose
prefetching would otherwise overlap the bare steps): whole bare and pipeline runs alternate ``--repeat`` times.
Each run's ratio is printed, and their median. On a machine that other processes keep busy, torch's OpenMP
threads stall at every parallel region (both sides slow down several-fold, and unevenly): ``--threads 1``
gives steady figures there.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from emoshift.models import family_of

warnings.filterwarnings("ignore")  # Lightning's hints (workers, loggers) say nothing about speed


def _loadavg() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except (OSError, AttributeError):
        return "n/a"


def _config(args: argparse.Namespace, root: Path, cache: Path) -> Any:
    from emoshift.config import load_config

    sets = [
        "data.corpora=[ravdess, crema-d]",
        f"data.roots.ravdess={root / 'ravdess'}",
        f"data.roots.crema-d={root / 'crema-d'}",
        f"data.cache_dir={cache}",
        f"data.num_workers={args.num_workers}",
        f"features.n_mels={args.n_mels}",
        f"features.crop_s={args.crop_s}",
        "model.name=resnet18",
        f"model.width_mult={args.width_mult}",
        f"training.batch_size={args.batch_size}",
        "training.sampling=class_corpus",
        "training.augment.specaugment=true",
        "training.augment.bandlimit_p=0.5",
        "training.augment.noise_p=0.5",
        "training.schedule=cosine",
        f"training.seed={args.seed}",
        "trainer.accelerator=cpu",
        "trainer.progress=false",
    ]
    return load_config(overrides=sets)


# ------------------------------------------------------------------------------------------------ timing


@dataclass
class Timing:
    """Wall time (s) and batch size of every timed step of one run."""

    times: list[float]
    sizes: list[int]

    @property
    def rate(self) -> float:
        """Samples/s over the whole timed stretch (epoch boundaries and any stalls included)."""
        return sum(self.sizes) / sum(self.times)


def _median_step_rate(runs: list[Timing]) -> float:
    """Samples/s of the median step over all runs (robust to a stall now and then)."""
    return statistics.median(s / t for r in runs for s, t in zip(r.sizes, r.times, strict=True))


class BareLoop:
    """The same model, AdamW and gradient clipping on random tensors of the training batch shape."""

    def __init__(self, cfg: Any, num_labels: int, init: dict[str, torch.Tensor]) -> None:
        from emoshift.models import get_model

        self.model = get_model(cfg.model.name, num_labels=num_labels, **family_of(cfg.model.name, cfg.model.mode).builder_kwargs(cfg.model))
        self.model.load_state_dict(init)
        self.model.train()
        tc = cfg.training
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
        self.clip = tc.gradient_clip
        self.batch = tc.batch_size
        f, t = cfg.features.n_mels, cfg.features.frames_for(cfg.features.crop_s)
        gen = torch.Generator().manual_seed(0)
        self.xs = [
            torch.randn(self.batch, 1, f, t, generator=gen) * 15 - 40 for _ in range(4)
        ]  # (B, 1, F, T)
        self.ys = [torch.randint(0, num_labels, (self.batch,), generator=gen) for _ in range(4)]
        self.k = 0

    def step(self) -> None:
        x, y = self.xs[self.k % 4], self.ys[self.k % 4]
        self.k += 1
        self.opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(self.model(x), y)
        loss.backward()
        if self.clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.opt.step()

    def run(self, *, steps: int, warmup: int) -> Timing:
        ends = []
        for _ in range(warmup + steps):
            self.step()
            ends.append(time.perf_counter())
        return Timing(
            [b - a for a, b in zip(ends[warmup - 1 : -1], ends[warmup:], strict=True)], [self.batch] * steps
        )


class _StepClock:
    """Lightning callback: the time at the end of every training step; runs one bare step after each if given."""

    def __new__(cls, bare: BareLoop | None) -> Any:
        import lightning as L

        class StepClock(L.Callback):
            def __init__(self) -> None:
                self.bare = bare
                self.ends: list[float] = []  # end of each pipeline step
                self.resumed: list[float] = []  # end of the bare step after it (= its end without one)
                self.sizes: list[int] = []
                self.epochs = 0

            def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
                self.epochs += 1

            def on_train_batch_end(
                self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, idx: int
            ) -> None:
                self.ends.append(time.perf_counter())
                self.sizes.append(int(batch["y"].shape[0]))
                if self.bare is not None:
                    self.bare.step()
                self.resumed.append(time.perf_counter())

        return StepClock()


def run_pipeline(
    cfg: Any,
    prep: Any,
    stores: dict[str, Any],
    init: dict[str, torch.Tensor],
    *,
    steps: int,
    warmup: int,
    bare: BareLoop | None = None,
) -> tuple[Timing, Timing | None, int]:
    """``warmup + steps`` steps of the real trainer -> its timing, the interleaved bare steps' timing, epochs.

    A pipeline step runs from the end of the previous step (or of the bare step after it) to its own end, so it
    holds fetching its batch as well as computing on it.
    """
    import lightning as L

    from emoshift.data.datasets import EmotionDataModule
    from emoshift.models import get_model
    from emoshift.training.module import EmotionModule
    from emoshift.training.objective import ClassObjective

    model = get_model(cfg.model.name, num_labels=len(prep.labels), **family_of(cfg.model.name, cfg.model.mode).builder_kwargs(cfg.model))
    model.load_state_dict(init)
    family = family_of(cfg.model.name, cfg.model.mode)
    dm = EmotionDataModule(  # as training.fit.fit_lightning builds it
        prepare=lambda: family.datasets(cfg, prep.train, prep.val, stores),
        batch_size=cfg.training.batch_size,
        sampling=cfg.training.sampling,
        seed=cfg.training.seed,
        max_batch_samples=family.max_batch_samples(cfg),
        num_workers=cfg.data.num_workers,
    )
    module = EmotionModule(model, training=cfg.training, family=family, objective=ClassObjective(prep.labels, cfg.training))
    clock = _StepClock(bare)
    trainer = L.Trainer(  # train.build_trainer's settings, less validation, checkpoints and logging
        max_epochs=-1,
        max_steps=warmup + steps,
        limit_val_batches=0,
        accelerator="cpu",
        devices=1,
        precision="32-true",
        deterministic=cfg.trainer.deterministic,
        gradient_clip_val=cfg.training.gradient_clip,
        callbacks=[clock],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
    )
    trainer.fit(module, datamodule=dm)
    if len(clock.ends) != warmup + steps:
        raise RuntimeError(f"the trainer ran {len(clock.ends)} steps, expected {warmup + steps}")
    k = range(warmup, warmup + steps)
    pipe = Timing([clock.ends[i] - clock.resumed[i - 1] for i in k], clock.sizes[warmup:])
    inter = Timing([clock.resumed[i] - clock.ends[i] for i in k], [bare.batch] * steps) if bare else None
    return pipe, inter, clock.epochs


# ------------------------------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, help="folder holding ravdess/ and crema-d/ (default: synthetic)")
    parser.add_argument("--scale", default="small", help="emoshift.synth.generate scale when --root is not given")
    parser.add_argument("--work", type=Path, help="folder for the synthetic corpus and feature cache (kept)")
    parser.add_argument("--width-mult", type=float, default=0.25, help="ResNet-18 width (1.0 = published)")
    parser.add_argument("--n-mels", type=int, default=128)
    parser.add_argument("--crop-s", type=float, default=3.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30, help="timed optimiser steps per run")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side (each ratio and the median)")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers (data.num_workers)")
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0 = torch's default)")
    parser.add_argument("--mode", choices=["interleaved", "blocks"], help="see above (default: by workers)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.warmup < 1 or args.steps < 1 or args.repeat < 1:
        sys.exit("--warmup, --steps and --repeat must be at least 1")
    mode = args.mode or ("interleaved" if args.num_workers == 0 else "blocks")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.threads:
        torch.set_num_threads(args.threads)

    from emoshift.core.rundir import RunDir
    from emoshift.features.cache import FeatureCache
    from emoshift.models import get_model
    from emoshift.training.pipeline import drop_uncached, prepare_data

    tmp = None
    if args.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="emoshift-bench-train-")
        work = Path(tmp.name)
    else:
        work = args.work
        work.mkdir(parents=True, exist_ok=True)
    try:
        if args.root is not None:
            root, source = args.root, str(args.root)
        else:
            from emoshift.synth.generate import generate

            root = work / f"synth-{args.scale}"
            summary = generate(root, scale=args.scale, seed=args.seed, progress=sys.stderr.isatty())
            source = f"emoshift.synth.generate scale={args.scale} seed={args.seed}"
            source += " (reused)" if summary["cached"] else ""
        cfg = _config(args, root, work / "cache")
        t0 = time.perf_counter()
        prep = prepare_data(cfg, RunDir.of(work / "run"), progress=False)
        cache = FeatureCache(Path(cfg.data.cache_dir) / "features")  # as the CNN family's prepare_stores
        stores = {n: cache.build(n, sc.utterances, cfg.features, progress=sys.stderr.isatty()) for n, sc in prep.scans.items()}
        prep.train, prep.val = drop_uncached(prep.train, stores), drop_uncached(prep.val, stores)
        setup_s = time.perf_counter() - t0

        torch.manual_seed(args.seed)
        model = get_model(cfg.model.name, num_labels=len(prep.labels), **family_of(cfg.model.name, cfg.model.mode).builder_kwargs(cfg.model))
        init = copy.deepcopy(model.state_dict())
        n_params = sum(p.numel() for p in model.parameters())
        frames = cfg.features.frames_for(cfg.features.crop_s)
        names = cfg.data.corpora
        per_corpus = ", ".join(
            f"{n} {sum(1 for it in prep.train if it.corpus == i)}" for i, n in enumerate(names)
        )
        print(
            f"data: {source}; training split {len(prep.train)} items ({per_corpus}); scan + cache {setup_s:.1f} s"
        )
        print(
            f"model: resnet18 x{args.width_mult:g} width ({n_params / 1e6:.2f} M parameters), batch "
            f"(B, 1, n_mels, T) = ({args.batch_size}, 1, {args.n_mels}, {frames}); class_corpus sampling, "
            f"SpecAugment + channel augmentation, cosine LR, gradient clip {cfg.training.gradient_clip}"
        )
        print(
            f"machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, python "
            f"{platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"DataLoader workers {args.num_workers}; load average before: {_loadavg()}"
        )
        print(
            f"timing: {mode}, {args.repeat} x {args.steps} steps after {args.warmup} warm-up steps each; pipeline "
            "= Lightning Trainer.fit calling EmotionModule.training_step"
        )

        torch.use_deterministic_algorithms(cfg.trainer.deterministic)  # what the Trainer sets, for both sides
        pipe: list[Timing] = []
        bare: list[Timing] = []
        epochs = 0
        for _ in range(args.repeat):
            loop = BareLoop(cfg, len(prep.labels), init)
            if mode == "blocks":
                bare.append(loop.run(steps=args.steps, warmup=args.warmup))
            p_run, b_run, epochs = run_pipeline(
                cfg,
                prep,
                stores,
                init,
                steps=args.steps,
                warmup=args.warmup,
                bare=loop if mode == "interleaved" else None,
            )
            pipe.append(p_run)
            if b_run is not None:
                bare.append(b_run)

        ratios = [pr.rate / br.rate for pr, br in zip(pipe, bare, strict=True)]  # each pair ran side by side
        pm, bm = _median_step_rate(pipe), _median_step_rate(bare)
        head = "".join(f"{f'run {i + 1}':>9s}" for i in range(args.repeat))
        print(f"\n{'samples/s':27s}{head}{'median':>9s}   {'median step':>11s}")
        for name, xs, m in (("bare loop (random tensors)", bare, bm), ("training pipeline", pipe, pm)):
            cells = "".join(f"{x.rate:9.1f}" for x in xs)
            print(f"{name:27s}{cells}{statistics.median(x.rate for x in xs):9.1f}   {m:11.1f}")
        cells = "".join(f"{r:9.1%}" for r in ratios)
        print(
            f"{'pipeline / bare':27s}{cells}{statistics.median(ratios):9.1%}   {pm / bm:11.1%}   (target >= 90%)"
        )
        print(
            f"({epochs} epochs per pipeline run; 'median step': the median step over all runs, as samples/s)"
        )
        print(f"load average after: {_loadavg()}")
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main()
