"""Few-shot target adaptation: a finished run adapted on K labelled speakers of a corpus it did not train on, and
scored on that corpus's other speakers only (``emoshift adapt RUN --on NAME=ROOT --labelled-speakers K``).

The steps:

1. **choose** the K speakers (:func:`speaker_order`): from the target's speakers and genders only (no label is
   read to choose), by seed, gender-balanced: the speakers of each gender shuffled by the seed, then taken one of
   each gender in turn (the gender that starts drawn by the seed too), so any K holds as many women as men, one
   apart. A corpus without genders is one group. At least :data:`MIN_HELD_BACK` speakers stay held back.
2. **adapt** on those speakers' utterances and labels only (the other speakers' labels are never read, their
   audio never reaches the fit), by the run's family:

   - a neural family (CNN, SSL) is **fine-tuned**: every layer, from the run's weights, for ``epochs`` (default
     :data:`EPOCHS`) at ``lr`` (default a tenth of the run's ``training.lr``; an SSL encoder's ``encoder_lr``
     scaled alike), hard labels, no early stopping. With K labelled speakers there is no held-out target
     speaker to select an epoch on, so the weights kept are those of the epoch with the best UAR on the K
     speakers' own clips (centre crops, no augmentation): in practice the last epochs. The run's temperature
     (fitted for the unadapted model) is dropped;
   - a closed-form family (the acoustic baselines) **refits its head** on the run's training and validation
     speakers' functionals plus the K target speakers' (one pooled fit, as a run trained on both would do; the
     K speakers' rows are not weighted up): every class stays represented even where the K speakers lack one.
     It needs the run's training corpora at the roots its config.yaml names.
3. **score** the target's other speakers: RUN2 is a normal run directory whose ``splits/<target>.csv`` holds the
   K speakers as ``train`` and the held-back ones as ``test``, with the target among its ``train_corpora``, so
   ``evaluate``, ``audit``, ``compare`` (and the scoring here) read only the held-back speakers of the target,
   exactly as for any training corpus; the run's own training corpora keep their splits (their test speakers
   show what the adaptation cost there). model.json's ``adapted`` (and the model card) name the method, the
   corpus, K, the speakers and the seed.

The learning curve over K is :mod:`emoshift.training.fewshot_curve`.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from emoshift.config import ExperimentConfig, load_config, load_run_config, save_config
from emoshift.core.errors import EmoshiftError
from emoshift.core.io import atomic_write_json, read_json
from emoshift.core.record import ModelRecord
from emoshift.core.rundir import RunDir, RunError, write_model_json
from emoshift.corpora import Scan, resolve_name
from emoshift.corpora.base import Utterance
from emoshift.data.datasets import Item
from emoshift.data.fingerprints import record_training_audio, training_audio
from emoshift.data.splits import Split, load_split, save_split
from emoshift.data.texts import record_training_texts, training_texts
from emoshift.evaluation.evaluate import evaluate_run, scan_for_run
from emoshift.evaluation.modelcard import write_model_card
from emoshift.models import family_of
from emoshift.models.families import Family, FitData, NeuralFamily
from emoshift.training.fit import fit_lightning
from emoshift.training.pipeline import eval_roots, prepare_data

log = logging.getLogger("emoshift.training.fewshot")

FEW_SHOT = "few-shot"  # model.json adapted.method
MIN_HELD_BACK = 2  # target speakers always left to score
EPOCHS = 5  # fine-tuning epochs of a neural family (default)
LR_FACTOR = 0.1  # fine-tuning learning rate: this times the run's (default)


class AdaptError(EmoshiftError, ValueError):
    """Few-shot adaptation cannot be done as asked (one line, for the user)."""


# ------------------------------------------------------------------------------------------------ speakers


def speaker_genders(scan: Scan) -> dict[str, str | None]:
    """speaker -> gender (None when unknown) of a scanned corpus; reads nothing else of its utterances."""
    out: dict[str, str | None] = {}
    for u in scan.utterances:
        if out.get(u.speaker) is None:
            out[u.speaker] = u.gender
    return out


def speaker_order(genders: Mapping[str, str | None], seed: int) -> list[str]:
    """Every speaker, in the order few-shot takes them for ``seed``: each gender's speakers shuffled, then one of
    each gender in turn (the first gender drawn too), so the first K of it are gender-balanced; speakers
    without a gender form a group of their own. Deterministic for (speakers, seed)."""
    rng = np.random.default_rng(seed)
    groups: dict[str, list[str]] = {}
    for spk in sorted(genders):
        groups.setdefault(genders[spk] or "unknown", []).append(spk)
    queues = [list(rng.permutation(groups[g])) for g in sorted(groups)]
    queues = [queues[i] for i in rng.permutation(len(queues))]
    order: list[str] = []
    while any(queues):
        for q in queues:
            if q:
                order.append(str(q.pop(0)))
    return order


def check_k(k: int, n_speakers: int, corpus: str) -> None:
    """K must leave :data:`MIN_HELD_BACK` speakers of ``corpus`` to score (AdaptError, one line)."""
    most = n_speakers - MIN_HELD_BACK
    if k < 0 or k > most:
        raise AdaptError(
            f"--labelled-speakers {k}: {corpus} has {n_speakers} speakers and at least {MIN_HELD_BACK} are held "
            f"back to score, so K must be between 1 and {max(most, 0)}"
        )


@dataclass(frozen=True)
class Target:
    """The corpus adapted to: its name, root and scan (the run's label policy)."""

    name: str
    root: str
    scan: Scan

    def of(self, speakers: Sequence[str]) -> Scan:
        """The same scan holding only ``speakers``' utterances."""
        keep = set(speakers)
        return replace(self.scan, utterances=[u for u in self.scan.utterances if u.speaker in keep], skipped=[])


def open_run(run_dir: str | os.PathLike[str]) -> tuple[RunDir, ModelRecord, ExperimentConfig]:
    """A finished single categorical run (AdaptError / RunError, one line, for anything else)."""
    run = RunDir.of(run_dir)
    info = run.info()  # RunError: not a run directory
    if not run.is_complete():
        raise RunError(f"{run.path} is not a finished run (done.json or its weights are missing)")
    if info.is_ensemble:
        raise AdaptError(f"{run.path} is an ensemble of {len(info.members or [])} models: adapt one of them "
                         f"(e.g. {run.path / str((info.members or ['folds/0'])[0])})")
    if info.task_kind.rated:
        raise AdaptError("few-shot adaptation applies to categorical runs (it is scored by UAR)")
    return run, info, load_run_config(run.path)


def open_target(run: RunDir, info: ModelRecord, cfg: ExperimentConfig, name: str, root: str, *,
                progress: bool) -> tuple[Target, ExperimentConfig]:
    """The target corpus scanned with the run's label policy, and the run's config with its root added."""
    name = resolve_name(name, root)
    if name in info.train_corpora:
        raise AdaptError(f"{run.path} trained on {name}: few-shot adaptation is to a corpus the run did not train on")
    data = cfg.to_dict()
    data["data"]["roots"] = {**data["data"]["roots"], name: str(root)}
    cfg = load_config(base=data)
    scan = scan_for_run(cfg, info, name, str(root), progress=progress)
    if scan.leaky:
        raise AdaptError(f"{name}: its speakers are unknown, and few-shot adaptation chooses speakers")
    return Target(name, str(root), scan), cfg


# ------------------------------------------------------------------------------------------------ adapt


@dataclass(frozen=True)
class FewShot:
    """What to adapt on: the K speakers, the held-back ones scored, and the fine-tuning settings."""

    speakers: list[str]  # adapted on (K)
    held_back: list[str]  # scored
    seed: int = 0
    epochs: int = EPOCHS
    lr: float | None = None  # None: LR_FACTOR x the run's training.lr

    def record(self, target: Target, run: RunDir, how: str, lr: float | None) -> dict[str, Any]:
        """model.json's ``adapted`` (the keys the unsupervised methods write, with the speakers for ``clips``)."""
        return {"method": FEW_SHOT, "corpus": target.name, "root": target.root, "k": len(self.speakers),
                "speakers": sorted(self.speakers), "seed": self.seed, "held_back": len(self.held_back),
                "from": str(run.path.resolve()), "fit": how,
                **({"epochs": self.epochs, "lr": lr} if lr is not None else {})}


def choose(target: Target, k: int, seed: int) -> tuple[list[str], list[str]]:
    """(the K speakers, the held-back ones) for ``seed`` (AdaptError when K leaves too few to score)."""
    genders = speaker_genders(target.scan)
    check_k(k, len(genders), target.name)
    order = speaker_order(genders, seed)
    return order[:k], sorted(order[k:])


def adapt_few_shot(
    run_dir: str | os.PathLike[str],
    name: str,
    root: str,
    k: int,
    out: str | os.PathLike[str],
    *,
    seed: int = 0,
    epochs: int = EPOCHS,
    lr: float | None = None,
    progress: bool = True,
    cache_dir: str | None = None,
    sources: bool = True,
) -> Path:
    """``emoshift adapt RUN --on NAME=ROOT --labelled-speakers K -o OUT``: see the module docstring (``sources``:
    score the run's own training corpora's test speakers too, else the target only)."""
    if k < 1:
        raise AdaptError(f"--labelled-speakers must be at least 1, got {k}")
    run, info, cfg = open_run(run_dir)
    target, cfg = open_target(run, info, cfg, name, root, progress=progress)
    chosen, held = choose(target, k, seed)
    plan = FewShot(chosen, held, seed, epochs, lr)
    return adapt_on(run, info, cfg, target, plan, out, progress=progress, cache_dir=cache_dir, sources=sources)


def adapt_on(
    run: RunDir, info: ModelRecord, cfg: ExperimentConfig, target: Target, plan: FewShot,
    out_dir: str | os.PathLike[str], *, progress: bool, cache_dir: str | None = None, sources: bool = True,
) -> Path:
    """Adapt ``run`` on ``plan.speakers`` of ``target`` into ``out_dir`` and score it (``sources``: the run's own
    training corpora too, else the target only). A finished ``out_dir`` of the same adaptation is kept."""
    if cache_dir:
        data = cfg.to_dict()
        data["data"]["cache_dir"] = str(cache_dir)
        cfg = load_config(base=data)
    out = RunDir.of(out_dir)
    if _kept(out, plan, target):
        return out.path
    started = time.time()
    out.splits_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out.config)
    for corpus in info.train_corpora:  # the run's own splits: their test speakers stay unseen
        shutil.copyfile(run.split(corpus), out.split(corpus))
    save_split(target_split(target, plan), out.split(target.name))
    labelled = target.of(plan.speakers)  # the only target utterances whose labels are read
    family = family_of(info.model, info.mode)
    items = labelled_items(labelled, info.labels, len(cfg.data.corpora))
    if not items:
        raise AdaptError(f"the {len(plan.speakers)} speaker(s) chosen of {target.name} have no utterance with a "
                         f"label the model knows ({', '.join(info.labels)})")
    if isinstance(family, NeuralFamily):  # the run's weights, fine-tuned on the K speakers
        model, epochs, lr, trained = fine_tune(family, run, info, cfg, out, labelled, items, plan, progress=progress)
        how = "fine-tuned every layer from the run's weights"
    else:  # a closed-form head, refitted on the run's training speakers and the K speakers
        model, trained = refit(family, cfg, out, labelled, progress=progress)
        epochs, lr, how = 0, None, "head refitted on the run's training and validation speakers plus the K speakers"
    family.save(model, out)
    write_model_json(out, adapted_record(info, family, cfg, model, target, plan, run, how, lr))
    record_heard(out, run, trained, cfg.data.cache_dir)
    roots = {**(eval_roots(cfg) if sources else {}), target.name: target.root}
    roots = {n: r for n, r in roots.items() if n != target.name or plan.held_back}
    evaluate_run(out.path, roots, progress=progress, scans={target.name: target.scan}, cache_dir=cfg.data.cache_dir)
    atomic_write_json(out.done, {
        "seconds": round(time.time() - started, 2), "epochs_run": epochs,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "samples": {"train": len(items), "val": 0}, "adaptation": FEW_SHOT,
    })
    write_model_card(out.path)
    shutil.rmtree(out.checkpoints, ignore_errors=True)
    return out.path


def _kept(out: RunDir, plan: FewShot, target: Target) -> bool:
    """True when ``out`` already holds this adaptation finished; AdaptError when it holds anything else."""
    if not out.path.exists() or not any(out.path.iterdir()):
        return False
    done = out.is_complete() and (out.info().adapted or {})
    if done and done.get("speakers") == sorted(plan.speakers) and done.get("seed") == plan.seed \
            and done.get("corpus") == target.name:
        log.info("%s already holds this adaptation", out.path)
        return True
    split = out.split(target.name)
    if not done and split.is_file() and load_split(split).assignment == target_split(target, plan).assignment:
        return False  # this adaptation, interrupted: done again (a neural fit resumes from its last checkpoint)
    raise AdaptError(f"{out.path} is not empty: choose another -o (or delete it)")


def record_heard(out: RunDir, run: RunDir, trained: list[Utterance], cache_dir: str) -> None:
    """training_audio.json and training_texts.json of ``out``: what the run learned from and what it adapted on
    (the same audio or text among test utterances is then a leak, or text overlap, as for any run)."""
    record_training_audio(out, trained, cache_dir)
    audio = read_json(out.training_audio, RunError)
    audio["fingerprints"] = sorted(set(audio["fingerprints"]) | training_audio(run))
    atomic_write_json(out.training_audio, audio)
    record_training_texts(out, trained)
    texts = read_json(out.training_texts, RunError)
    texts["texts"] = sorted(set(texts["texts"]) | (training_texts(run) or set()))
    atomic_write_json(out.training_texts, texts)


def target_split(target: Target, plan: FewShot) -> Split:
    """The target's split: the K speakers' utterances ``train``, the held-back speakers' ``test`` (others: absent)."""
    part = {**{s: "train" for s in plan.speakers}, **{s: "test" for s in plan.held_back}}
    utts = [u for u in target.scan.utterances if u.speaker in part]
    return Split(assignment={u.id: part[u.speaker] for u in utts}, speakers={u.id: u.speaker for u in utts},
                 method=FEW_SHOT)


def labelled_items(scan: Scan, labels: list[str], corpus_index: int) -> list[Item]:
    """Training items of the K speakers' utterances whose label the model knows (the others are logged)."""
    index = {lab: i for i, lab in enumerate(labels)}
    items = [Item(u, index[u.emotion], corpus_index) for u in scan.utterances if u.emotion in index]
    if len(items) < len(scan.utterances):
        log.warning("%s: %d utterance(s) of the chosen speakers have a label the model does not know; left out",
                    scan.corpus, len(scan.utterances) - len(items))
    return items


def fine_tune(
    family: NeuralFamily, run: RunDir, info: ModelRecord, cfg: ExperimentConfig, out: RunDir, labelled: Scan,
    items: list[Item], plan: FewShot, *, progress: bool,
) -> tuple[Any, int, float, list[Utterance]]:
    """The run's model fine-tuned on ``items`` (validated on the same clips: no other target speaker is read);
    (model, epochs run, learning rate, the utterances it trained on)."""
    lr = plan.lr if plan.lr is not None else float(f"{cfg.training.lr * LR_FACTOR:.6g}")
    data = cfg.to_dict()
    scale = lr / cfg.training.lr
    data["training"].update({
        "epochs": plan.epochs, "lr": lr, "encoder_lr": cfg.training.encoder_lr * scale, "seed": plan.seed,
        "seeds": None, "early_stopping_patience": None, "stages": [], "distill": None, "targets": "hard",
    })
    tuned = load_config(base=data)
    model = family.load(run, info)
    stores = family.prepare_stores(tuned, model, {labelled.corpus: labelled}, progress=progress, train=items)
    if stores:
        items = [it for it in items if it.utt.id in stores[it.utt.corpus]]
    fitted = fit_lightning(family, tuned, FitData(list(info.labels), items, items, stores), out, model=model,
                           progress=progress)
    return fitted.model, fitted.epochs_run, lr, [it.utt for it in items]


def refit(
    family: Family, cfg: ExperimentConfig, out: RunDir, labelled: Scan, *, progress: bool,
) -> tuple[Any, list[Utterance]]:
    """A closed-form head refitted on the run's training + validation speakers (their splits, copied into
    ``out``, are re-checked against the corpora) and the K speakers' utterances; (model, the utterances it
    trained on)."""
    from emoshift.training.pipeline import num_outputs

    prep = prepare_data(cfg, out, progress=progress)
    model = family.build(cfg, num_labels=num_outputs(cfg, prep.labels))
    stores = family.prepare_stores(cfg, model, {**prep.scans, labelled.corpus: labelled}, progress=progress,
                                   train=prep.train)
    mine = labelled_items(labelled, prep.labels, len(cfg.data.corpora))  # indexed by the refit's labels
    train = [it for it in (*prep.train, *prep.val, *mine) if it.utt.id in stores[it.utt.corpus]]
    fitted = family.fit(cfg, FitData(prep.labels, train, [], stores), out, model=model, progress=progress)
    return fitted.model, [it.utt for it in train]


def adapted_record(
    info: ModelRecord, family: Family, cfg: ExperimentConfig, model: Any, target: Target, plan: FewShot,
    run: RunDir, how: str, lr: float | None,
) -> ModelRecord:
    """The run's model.json with the target among the training corpora, the K speakers among the training
    speakers, the refitted head's keys, no temperature (fitted for the unadapted model) and ``adapted``."""
    record = {**info.to_json(), **family.architecture_info(cfg, model)}
    for key in ("temperature", "temperature_fit"):
        record.pop(key, None)
    record["train_corpora"] = [*info.train_corpora, target.name]
    record["training_speakers"] = sorted({*info.training_speakers, *plan.speakers})
    record["adapted"] = plan.record(target, run, how, lr)
    return ModelRecord.parse(record)
