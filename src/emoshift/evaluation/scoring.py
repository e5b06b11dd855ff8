"""Scoring a corpus with a run: the one path both tasks take, for a single model, a fold ensemble and a pooled
cross-validation run's out-of-fold predictions.

For a corpus the model trained on, only its held-out test speakers are used (``RUN/splits/<corpus>.csv``); for
any other corpus, every utterance. ``leaky`` is true when any test speaker was seen in training, when any test
utterance is audio the run trained on under whatever name or path (by the fingerprint of its decoded samples,
:mod:`emoshift.data.fingerprints`; :attr:`Scored.training_audio` counts them), or when the corpus's speakers are
unknown (a manifest scanned with ``allow_leak``). :attr:`Scored.text_overlap` is the share of the scored
utterances whose spoken text the run trained on (:mod:`emoshift.data.texts`; a pooled score: each fold's test
utterances against that fold's training texts), None where the texts are unknown.

- a single model: its values on the corpus (:meth:`emoshift.core.task.Task.values`: probabilities, or ratings);
- a fold ensemble on a corpus it did not train on: the members combined (mean probability, or mean output);
- a fold ensemble on a corpus it trained on: every fold model on its own test speakers, pooled (each speaker
  scored once, by a model that never saw it; :attr:`Scored.fold` says which).

Either way each member's values on the utterances it scored are kept (:attr:`Scored.members`) for the per-fold
scores. What is written from a :class:`Scored` is the task's writer's business
(:mod:`emoshift.evaluation.evaluate`, :mod:`emoshift.evaluation.rated`).
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from emoshift.core.errors import EmoshiftError
from emoshift.core.record import ModelRecord
from emoshift.core.rundir import RunDir
from emoshift.corpora.base import Skipped, Utterance
from emoshift.data.texts import overlap_share, text_hits, text_overlap, training_texts
from emoshift.evaluation.inference import OutputsMemo, default_device, ensemble_values
from emoshift.models.ensemble import Ensemble

if TYPE_CHECKING:
    from emoshift.config import ExperimentConfig
    from emoshift.corpora import Scan

Keep = Callable[[list[Utterance]], list[Utterance]]


class EvaluationError(EmoshiftError, RuntimeError):
    """Evaluation cannot proceed (message is for the user)."""


@dataclass
class Scored:
    """One corpus's values ``(N, K)`` for ``kept`` (probabilities, or ratings), and for a fold run the folds."""

    part: str
    leaky: bool
    kept: list[Utterance]
    values: np.ndarray
    skipped: list[Skipped]
    fold: list[int] | None = None  # out-of-fold: the fold whose model scored each row
    members: list[tuple[int, list[Utterance], np.ndarray]] = field(default_factory=list)  # (fold, utts, values)
    scored_by: str = "model"
    training_audio: int = 0  # scored utterances whose audio the run trained on (under any name or path)
    text_overlap: float | None = None  # share of scored utterances saying a text the run trained on (None: unknown)
    # a calibrated categorical run (model.json temperature): the probabilities as the network gave them, (N, K)
    uncalibrated: np.ndarray | None = None


def draws_figures(cfg: ExperimentConfig, run: RunDir) -> bool:
    """Whether evaluating ``run`` draws its figures (RUN/plots/): ``evaluation.figures``, and never for a fold of
    a k-fold run (:attr:`RunDir.draws_figures`). The one rule the scorer and training's curves read."""
    return cfg.evaluation.figures and run.draws_figures


@dataclass
class Scorer:
    """A loaded run and how to run it: what both tasks' evaluation shares."""

    run: RunDir
    cfg: ExperimentConfig
    model: Any
    info: ModelRecord
    cache_dir: str
    batch_size: int
    progress: bool
    memo: OutputsMemo = field(default_factory=lambda: OutputsMemo(enabled=False))  # fold outputs, see training.folds

    @property
    def figures(self) -> bool:
        """Whether this evaluation draws the run's figures (:func:`draws_figures`)."""
        return draws_figures(self.cfg, self.run)

    @property
    def is_ensemble(self) -> bool:
        return isinstance(self.model, Ensemble)

    def values(
        self, model: Any, info: ModelRecord, utts: list[Utterance], desc: str, run_dir: Any
    ) -> tuple[Any, Any, Any, Any]:
        """(kept, values (N, K), skipped, uncalibrated values or None) of the model saved in ``run_dir``."""
        kept, raw, skipped = self.memo.outputs(
            run_dir, model, info, utts, cache_dir=self.cache_dir, batch_size=self.batch_size, progress=self.progress,
            desc=desc,
        )
        uncalibrated = info.values(raw, calibrated=False) if info.temperature is not None else None
        return kept, info.values(raw), skipped, uncalibrated

    def adapted(self, model: Any, info: ModelRecord, utts: list[Utterance]) -> Any:
        """``model`` as it scores ``utts`` (one corpus's): itself, or with ``evaluation.adapt: adabn`` a copy whose
        batch-norm statistics are re-estimated on their audio (:meth:`Family.adapt_batchnorm`; never a label),
        a fold ensemble's members each."""
        if self.cfg.evaluation.adapt != "adabn" or not utts:
            return model
        if isinstance(model, Ensemble):
            return Ensemble([(self.adapted(m, i, utts), i) for m, i in model.members], model.paths)
        from emoshift.models import family_of

        copied = copy.deepcopy(model)
        family_of(info.model, info.mode).adapt_batchnorm(
            copied, info, utts, cache_dir=self.cache_dir, batch_size=self.batch_size, device=default_device(),
            progress=False,
        )
        return copied

    def score(self, name: str, sc: Scan, keep: Keep, empty: str) -> Scored:
        """Corpus ``name`` (scanned as ``sc``) scored as the module docstring says; ``keep`` filters the test
        utterances (the labels the model knows); ``empty``: the error when nothing is left."""
        if self.is_ensemble and name in self.info.train_corpora:
            return self._out_of_fold(name, sc, keep, empty)
        utts, part, leaky, copies = test_utterances(self.run, name, sc, self.info, cache_dir=self.cache_dir)
        utts = keep(utts)
        if not utts:
            raise EvaluationError(empty)
        seen = set(copies)
        model = self.adapted(self.model, self.info, utts)
        if not self.is_ensemble:
            kept, values, skipped, uncal = self.values(model, self.info, utts, f"evaluating {name}", self.run.path)
            return Scored(part, leaky, kept, values, skipped, training_audio=sum(u.id in seen for u in kept),
                          text_overlap=text_overlap(kept, training_texts(self.run)), uncalibrated=uncal)
        calibrated = any(info.temperature is not None for _, info in self.model.members)
        memo = self.memo if self.memo.enabled or not calibrated else OutputsMemo()  # both passes run each once
        kept, combined, members, skipped = ensemble_values(
            model, utts, cache_dir=self.cache_dir, batch_size=self.batch_size, progress=self.progress,
            desc=f"evaluating {name}", memo=memo,
        )
        uncal = ensemble_values(model, kept, cache_dir=self.cache_dir, batch_size=self.batch_size,
                                memo=memo, calibrated=False)[1] if calibrated else None
        per = [(i, kept, m) for i, m in enumerate(members)]
        by = f"fold ensemble ({self.info.task_kind.ensemble})"
        return Scored(part, leaky, kept, combined, skipped, None, per, by, sum(u.id in seen for u in kept),
                      text_overlap=text_overlap(kept, training_texts(self.run)), uncalibrated=uncal)

    def _out_of_fold(self, name: str, sc: Scan, keep: Keep, empty: str) -> Scored:
        """Each fold model on its own test speakers, pooled: every test utterance scored once, by its fold."""
        kept: list[Utterance] = []
        values: list[np.ndarray] = []
        folds: list[int] = []
        skipped: list[Skipped] = []
        per: list[tuple[int, list[Utterance], np.ndarray]] = []
        uncalibrated: list[np.ndarray] = []
        leaky, n_seen, hits = False, 0, []
        for i, ((model, info), path) in enumerate(zip(self.model.members, self.model.paths, strict=True)):
            utts, _, fold_leaky, copies = test_utterances(RunDir.of(path), name, sc, info, cache_dir=self.cache_dir)
            utts = keep(utts)
            k, v, bad, uncal = self.values(self.adapted(model, info, utts), info, utts, f"evaluating {name} (fold {i})",
                                           path)
            n_seen += len(set(copies) & {u.id for u in k})
            hits.append(text_hits(k, training_texts(RunDir.of(path))))  # each fold against its own training texts
            kept += k
            values.append(v)
            uncalibrated.append(v if uncal is None else uncal)
            folds += [i] * len(k)
            skipped += bad
            leaky |= fold_leaky
            if k:
                per.append((i, k, v))
        twice = [u for u, c in Counter(u.id for u in kept).items() if c > 1]
        if twice:
            raise EvaluationError(
                f"{name}: {len(twice)} utterance(s) are in the test part of several folds, e.g. {twice[0]}"
            )
        if not kept:
            raise EvaluationError(empty)
        by = "pooled out-of-fold predictions"
        calibrated = any(info.temperature is not None for _, info in self.model.members)
        return Scored("test", leaky, kept, np.concatenate(values), skipped, folds, per, by, n_seen,
                      text_overlap=overlap_share(hits),
                      uncalibrated=np.concatenate(uncalibrated) if calibrated else None)


class ScoredPart(NamedTuple):
    """The utterances of a corpus a run is scored on, which part they are, and whether the score is leaky."""

    utterances: list[Utterance]
    part: str  # "test" (its held-out speakers: a training corpus) or "all"
    leaky: bool
    training_audio: list[str]  # ids of those whose audio the run trained on (by content), any name or path


def test_utterances(
    run: RunDir, name: str, sc: Scan, info: ModelRecord, *, cache_dir: str | None = None
) -> ScoredPart:
    """The utterances of corpus ``name`` this run is scored on, and whether that score is leaky."""
    from emoshift.data.fingerprints import training_audio_among
    from emoshift.data.splits import load_split, shared_speakers

    seen = set(info.training_speakers)
    if name in info.train_corpora:
        path = run.split(name)
        if not path.is_file():
            raise EvaluationError(f"{run.path} trained on {name} but {path} is missing")
        split = load_split(path)
        test_ids = {i for i, part in split.assignment.items() if part == "test"}
        utts, part = [u for u in sc.utterances if u.id in test_ids], "test"
        leaky = bool(split.leaky or shared_speakers(split))
    else:
        utts, part, leaky = list(sc.utterances), "all", False
    copies = training_audio_among(run, utts, cache_dir)
    leaky = bool(leaky or sc.leaky or {u.speaker for u in utts} & seen or copies)
    return ScoredPart(utts, part, leaky, copies)


def fold_summary(scores: list[dict[str, Any]], keys: list[str]) -> dict[str, Any]:
    """``folds``, ``fold_mean`` and ``fold_sd`` (ddof 1; null below two folds) of per-fold scores over ``keys``;
    a fold whose score is undefined (None) is left out of that key's mean and sd."""
    values = {k: np.array([s[k] for s in scores if s.get(k) is not None], dtype=np.float64) for k in keys}
    return {
        "folds": scores,
        "fold_mean": {k: float(v.mean()) if v.size else None for k, v in values.items()},
        "fold_sd": {k: float(v.std(ddof=1)) if v.size >= 2 else None for k, v in values.items()}
        if len(scores) >= 2 else None,
    }
