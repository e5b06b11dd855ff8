"""``emoshift adapt RUN --on NAME=ROOT [--method corpus-norm|adabn] -o RUN2``: a trained run adapted to a target
corpus's unlabelled audio, written as a new run directory (docs/adaptation.md).

The target is read as audio only; its labels are never read (:func:`target_utterances` gives label-free clips,
and the family looks at their audio). What changes is the model itself, so ``predict``, ``serve``, ``export`` and
``evaluate`` on RUN2 use the adapted model with nothing else to say:

- ``corpus-norm``: the model's fixed input standardisation becomes the target's statistics
  (:meth:`emoshift.models.families.Family.adapt_corpus_norm`): the CNN's per-bin standardisation (a model
  trained with ``model.domain_norm: corpus`` or ``speaker_norm``; in the weights, so in the ONNX graph), the
  acoustic baseline's scaler, a frozen SSL head's embedding standardisation (``domain_norm: corpus``; in the
  weights too). The statistics are also kept in ``RUN2/domain_stats.safetensors``
  (:class:`emoshift.features.domain_norm.CorpusStats`).
- ``adabn``: every batch-norm layer's running statistics re-estimated on the target's inputs, weights unchanged
  (:mod:`emoshift.models.adaptation`; the CNNs).

RUN2 holds RUN's config, splits, training audio and texts and done.json, the adapted weights, and a model.json
whose ``adapted`` says what it was adapted on (method, corpus, root, clips, the run it came from); its model card
says the same. RUN's metrics are not copied (they scored the unadapted model): RUN2 is scored on its training
corpora's test speakers when their roots are at hand (what adapting cost in-domain; the files ``export`` checks
parity on), and on the target with ``emoshift evaluate RUN2 --on NAME=ROOT`` where the target has labels.
The directory is written beside RUN2 and renamed into place when complete, so nothing is left half written.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emoshift.config import load_run_config
from emoshift.core.record import ModelRecord
from emoshift.core.rundir import RunDir, RunError
from emoshift.corpora import source_of
from emoshift.corpora.base import Utterance
from emoshift.models.adaptation import AdaptationError

__all__ = ["METHODS", "AdaptRequest", "Adapted", "adapt_run", "target_utterances"]

METHODS: tuple[str, ...] = ("corpus-norm", "adabn")
KEPT = ("config.yaml", "splits", "training_audio.json", "training_texts.json", "log.csv", "done.json")


@dataclass(frozen=True)
class AdaptRequest:
    """What ``emoshift adapt`` was asked: the run, the target (``name``, ``root``), the method, the new run."""

    run: Path
    name: str
    root: str
    output: Path
    method: str = "corpus-norm"
    options: dict[str, Any] = field(default_factory=dict)  # a method's own options (none yet)


@dataclass(frozen=True)
class Adapted:
    """The new run and what it was adapted on (model.json ``adapted``)."""

    run: Path
    record: dict[str, Any]


def target_utterances(name: str, root: str, data: Any, *, progress: bool) -> list[Utterance]:
    """The target's clips, label-free (:func:`emoshift.corpora.unlabelled.scan_unlabelled`: a registered corpus's
    folder or a corpus source read under the ``native`` policy, so no label decides what is kept, or a plain
    folder of audio under a name of your own). ``data``: the run's data config (its scan options)."""
    from emoshift.corpora.unlabelled import scan_unlabelled

    return scan_unlabelled(name, root, what="--on", **data.scan_options(), progress=progress).utterances


def adapt_run(request: AdaptRequest, *, progress: bool = True) -> Adapted:
    """Adapt ``request.run`` to the target's unlabelled audio into ``request.output`` (see the module docstring)."""
    from emoshift.evaluation.inference import default_device
    from emoshift.evaluation.modelcard import write_model_card
    from emoshift.models import family_of
    from emoshift.models.weights import load_model

    src, dest = RunDir.of(request.run), RunDir.of(request.output)
    if request.method not in METHODS:
        raise AdaptationError(f"--method must be one of {', '.join(METHODS)}, got {request.method!r}")
    if not src.is_complete():
        raise RunError(f"{src.path} is not a finished run directory (no done.json, model.json or weights)")
    if src.info().is_ensemble:
        raise AdaptationError(f"{src.path} is an ensemble of fold or seed runs: adapt one of its member runs")
    if dest.path.exists() and (not dest.path.is_dir() or any(dest.path.iterdir())):
        raise AdaptationError(f"{dest.path} already exists: give -o a new run directory")
    family = family_of(src.info().model, src.info().mode)
    family.check_adaptation(src.info(), request.method)  # before any audio is read
    cfg = load_run_config(src.path)
    utts = target_utterances(request.name, request.root, cfg.data, progress=progress)
    model, info = load_model(src.path, device=default_device())
    stats = None
    if request.method == "corpus-norm":
        moments, clips = family.adapt_corpus_norm(model, info, utts, cache_dir=cfg.data.cache_dir, progress=progress)
        stats = (moments, clips)
    else:
        clips = family.adapt_batchnorm(model, info, utts, cache_dir=cfg.data.cache_dir,
                                       batch_size=cfg.evaluation.batch_size, device=default_device(),
                                       progress=progress)
    source = source_of(request.root)
    where = str(source.path.resolve()) if source.kind in ("folder", "table") else source.spec
    record: dict[str, Any] = {"method": request.method, "corpus": utts[0].corpus, "root": where, "clips": int(clips),
              "from": str(src.path.resolve())}
    partial = dest.path.with_name(f".{dest.path.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    out = RunDir.of(partial)
    for name in KEPT:
        item = src.path / name
        if item.is_dir():
            shutil.copytree(item, partial / name)
        elif item.is_file():
            shutil.copy2(item, partial / name)
    family.save(model, out)
    ModelRecord.parse({**info.to_json(), "adapted": record}).write(out.model_json)
    if stats is not None:
        _save_stats(out, record["corpus"], family.corpus_norm_over, *stats)
    write_model_card(partial)
    if dest.path.is_dir():
        dest.path.rmdir()  # empty (checked above)
    os.replace(partial, dest.path)
    _score_in_domain(dest, cfg, info, progress=progress)
    return Adapted(dest.path, record)


def _score_in_domain(run: RunDir, cfg: Any, info: ModelRecord, *, progress: bool) -> None:
    """The adapted model scored on its training corpora's test speakers (their labels, never the target's), when
    their roots are still where training found them: RUN2's metrics and card then say what adapting cost
    in-domain, and ``emoshift export`` finds its self-check files (RUN2/predictions)."""
    from emoshift.evaluation.evaluate import evaluate_run

    roots = {c: r for c in info.train_corpora if (r := cfg.data.roots.get(c)) and source_of(r).missing() is None}
    if roots:
        evaluate_run(run.path, roots, progress=progress)


def _save_stats(run: RunDir, corpus: str, over: str, moments: Any, clips: int) -> None:
    from emoshift.features.domain_norm import CorpusStats

    stats = CorpusStats(over)
    stats.add(corpus, moments, clips)
    stats.save(run.domain_stats)
