"""Robustness to channels: a run scored on the same utterances clean and through a channel effect.

``emoshift evaluate RUN --on NAME=ROOT --perturb SPEC`` (SPEC: :mod:`emoshift.data.channel`) first evaluates as
usual (``metrics/<corpus>.json``, ``predictions/<corpus>.csv``: the clean scores), then for each SPEC

1. perturbs each scored utterance's audio once (seeded per run seed, SPEC and utterance id), at its own rate and
   before anything the model does, into a temporary folder: the model's front end (log-mel, functionals, the
   encoder) sees the perturbed waveform as it would a new file. Its features are built in a cache of their own
   in that folder, removed with the audio, so no cache of clean features is read for, or written with,
   perturbed audio. Inside :func:`shared_perturbations` (a study) the copies and their features are kept for
   every run scored through the same channel, and removed when the block ends;
2. scores them by the run's one scoring path (:class:`emoshift.evaluation.scoring.Scorer`: held-out speakers,
   fold ensembles, out-of-fold) and pairs each with its clean prediction by utterance id;
3. writes ``metrics/<corpus>@<slug>.json`` (the file-name spelling of the SPEC, ``mp3_16k``, ``noise_snr_10``):
   the perturbed scores (``uar``, ``accuracy``, ``macro_f1``, ``ci95``, ...), ``uar_clean`` on the same
   utterances, ``uar_drop`` = clean - perturbed with ``uar_drop_ci95``, a speaker-paired interval
   (:func:`emoshift.evaluation.metrics.paired_bootstrap_diff`: each speaker left out of both sides at once);
4. redraws ``plots/robustness_<corpus>.png``: UAR clean and under every perturbation the run has been scored
   with, each with its CI.

A perturbed clip that can no longer be used (e.g. ``gain:-60db`` makes it silent) is left out of the pair and
listed in ``unscored`` with its reason; the clean UAR in the file is that of the paired utterances.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from emoshift.config import load_run_config
from emoshift.core.audio import AudioError, read
from emoshift.core.io import atomic_write_json, read_json
from emoshift.core.progress import progress as progress_bar
from emoshift.core.rundir import RunDir, RunError
from emoshift.core.task import CATEGORICAL
from emoshift.corpora import resolve_name
from emoshift.corpora.base import Utterance
from emoshift.data.channel import Perturbation, parse_perturbation, perturbation_seed

# torch-free at import (the study report reads robustness_rows): the scoring path is imported where it runs

__all__ = ["PerturbedAudio", "evaluate_perturbations", "plot_robustness", "robustness_rows", "shared_perturbations"]


@dataclass
class _Channel:
    """One (corpus, SPEC, seed)'s copies: utterance id -> its source (path, start, end) and its copy's path or
    why it could not be read."""

    folder: Path
    made: dict[str, tuple[tuple[str, float | None, float | None], str | None, str | None]] = field(default_factory=dict)
    written: int = 0  # copies written so far: each gets a new name, a re-perturbed clip too


class PerturbedAudio:
    """Perturbed copies of scored utterances and the feature caches built on them, in one temporary folder under
    ``parent`` (made when first needed, removed by :meth:`close`): each utterance is perturbed once per (corpus,
    SPEC, evaluation seed), and a second run scored through the same channel reuses its copy and its features
    (the copies are deterministic: :func:`emoshift.data.channel.perturbation_seed`). An utterance whose source
    (path, segment) differs from the one copied is perturbed again under a new name, so a cache keyed by path
    never serves it a stale copy. The clean feature caches are never involved."""

    def __init__(self, parent: Path) -> None:
        self.parent = parent
        self._root: Path | None = None
        self._channels: dict[tuple[str, str, int], _Channel] = {}

    def copies(
        self, name: str, utts: Sequence[Utterance], p: Perturbation, seed: int, progress: bool
    ) -> tuple[list[Utterance], list[dict[str, str]], str]:
        """``utts`` through ``p`` -> (the utterances pointing at their copies, those that could not be read,
        the feature-cache folder for the copies)."""
        if self._root is None:
            self.parent.mkdir(parents=True, exist_ok=True)
            self._root = Path(tempfile.mkdtemp(prefix="emoshift-perturb-", dir=self.parent))
        key = (name, p.spec, seed)
        if key not in self._channels:
            self._channels[key] = _Channel(self._root / f"{len(self._channels):03d}")
            (self._channels[key].folder / "audio").mkdir(parents=True)
        ch = self._channels[key]
        todo = [u for u in utts if u.id not in ch.made or ch.made[u.id][0] != (u.path, u.start, u.end)]
        with progress_bar(len(todo), f"perturbing ({p.spec})", enabled=progress and bool(todo)) as advance:
            for u in todo:
                source = (u.path, u.start, u.end)
                try:
                    wave, sr = read(u.path, start=u.start, end=u.end)
                except AudioError as e:
                    ch.made[u.id] = (source, None, str(e))
                    advance(1)
                    continue
                dest = ch.folder / "audio" / f"{ch.written:07d}.wav"
                ch.written += 1
                sf.write(dest, p.apply(wave, sr, perturbation_seed(seed, p.spec, u.id)), sr, subtype="FLOAT")
                ch.made[u.id] = (source, str(dest), None)
                advance(1)
        out: list[Utterance] = []
        unscored: list[dict[str, str]] = []
        for u in utts:
            _, path, reason = ch.made[u.id]
            if path is None:
                unscored.append({"path": u.path, "reason": str(reason)})
            else:
                out.append(replace(u, path=path, start=None, end=None))
        return out, unscored, str(ch.folder / "cache")

    def close(self) -> None:
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None
            self._channels.clear()


_SHARED: ContextVar[dict[Path, PerturbedAudio] | None] = ContextVar("emoshift_perturbed_audio", default=None)


@contextlib.contextmanager
def shared_perturbations() -> Iterator[None]:
    """Inside this block every :func:`evaluate_perturbations` call shares its copies and their feature caches
    (one :class:`PerturbedAudio` per cache folder), removed when the block ends: a study scores each of its runs
    through the same channels, and perturbing and featurising the same utterances once per run would repeat the
    work (2 of the demo's 10 minutes)."""
    token = _SHARED.set({})
    try:
        yield
    finally:
        for ws in (_SHARED.get() or {}).values():
            ws.close()
        _SHARED.reset(token)


def evaluate_perturbations(
    run_dir: str | os.PathLike[str],
    corpora: dict[str, str],
    perturbations: Sequence[Perturbation | str],
    *,
    progress: bool = True,
    batch_size: int | None = None,
    cache_dir: str | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Score each corpus (already evaluated clean: its predictions file) under each perturbation; writes
    ``metrics/<corpus>@<slug>.json`` and ``plots/robustness_<corpus>.png``. Returns ``{corpus: {spec: metrics}}``.

    A repeated-training run (``training.seeds``) scores every seed run on the same perturbed copies, writes
    each seed's file in its own folder and, at the top, the mean over seeds with intervals over speakers and
    seeds (:func:`emoshift.evaluation.intervals.metric_interval`, ``paired_difference`` for the drop)."""
    from emoshift.evaluation.inference import default_device
    from emoshift.evaluation.scoring import EvaluationError
    from emoshift.models.weights import load_model

    run = RunDir.of(run_dir)
    perts = [p if isinstance(p, Perturbation) else parse_perturbation(p) for p in perturbations]
    cfg = load_run_config(run.path)
    members = run.seed_dirs() or [run]  # each a complete run: one, or one per training seed
    loaded = [(m, *load_model(m.path, device=default_device())) for m in members]
    info = loaded[0][2]
    if info.task_kind is not CATEGORICAL:
        raise EvaluationError(f"{run.path} is a dimensional run: --perturb measures the UAR drop of a categorical one")
    work = Path(cache_dir or cfg.data.cache_dir).resolve()
    with contextlib.ExitStack() as stack:
        shared = _SHARED.get()
        if shared is None:  # on its own: this call's copies, removed when it returns
            ws = PerturbedAudio(work)
            stack.callback(ws.close)
        else:
            ws = shared.setdefault(work, PerturbedAudio(work))
        return _score_corpora(run, cfg, members, loaded, info, corpora, perts, ws, batch_size, progress)


def _score_corpora(
    run: RunDir, cfg: Any, members: list[RunDir], loaded: list[tuple[RunDir, Any, Any]], info: Any,
    corpora: dict[str, str], perts: list[Perturbation], ws: PerturbedAudio, batch_size: int | None, progress: bool,
) -> dict[str, dict[str, dict[str, Any]]]:
    from emoshift.evaluation.evaluate import scan_for_run
    from emoshift.evaluation.scoring import EvaluationError

    results: dict[str, dict[str, dict[str, Any]]] = {}
    for raw_name, root in corpora.items():
        name = resolve_name(raw_name, root)
        clean = _clean_predictions(run, name)
        sc = scan_for_run(cfg, info, name, root, progress=progress)
        utts = [u for u in sc.utterances if u.id in clean]
        if not utts:
            raise EvaluationError(f"{name}: none of the utterances in {run.predictions(name)} is in {root}")
        results[name] = {}
        for p in perts:
            per_seed: list[dict[str, Any]] = []
            copies, unscored, cache = ws.copies(name, utts, p, cfg.evaluation.seed, progress)
            own = {u.id: u.path for u in utts}
            original = {c.path: own[c.id] for c in copies}  # a copy's file -> the utterance's own
            for member, model, member_info in loaded:
                per_seed.append(_score_member(
                    member, model, member_info, name, replace(sc, utterances=copies, skipped=[]), p,
                    cache, batch_size, progress, original, unscored, multi=len(loaded) > 1,
                ))
            metrics = per_seed[0] if len(per_seed) == 1 else _pool_seeds(per_seed, [m for m, _, _ in loaded], info)
            metrics.pop("_pairs", None)
            atomic_write_json(run.perturbed_metrics(name, p.slug), metrics)
            results[name][p.spec] = metrics
        if cfg.evaluation.figures:
            plot_robustness(run.path, name)
            for member in members if len(members) > 1 else []:
                plot_robustness(member.path, name)
    return results


def _score_member(
    member: RunDir, model: Any, info: Any, name: str, sc: Any, p: Perturbation, cache: str,
    batch_size: int | None, progress: bool, original: dict[str, str], unscored: list[dict[str, str]],
    *, multi: bool,
) -> dict[str, Any]:
    """One run (or one seed run) scored on the perturbed copies, paired with its own clean predictions; a seed
    run's file is written in its own folder. The pairs ride along under ``_pairs`` for pooling (not written)."""
    from emoshift.evaluation.inference import OutputsMemo
    from emoshift.evaluation.scoring import Scorer

    cfg = load_run_config(member.path)
    clean = _clean_predictions(member, name)
    scorer = Scorer(member, cfg, model, info, cache, batch_size or cfg.evaluation.batch_size, progress,
                    OutputsMemo(enabled=False))
    scored = scorer.score(name, sc, lambda us: us, f"{name}: no utterance could be scored after {p.spec}")
    lost = unscored + [{"path": original.get(k.path, k.path), "reason": f"{k.reason} (after {p.spec})"}
                       for k in scored.skipped]
    labels = info.labels
    pred = [labels[i] for i in scored.values.argmax(axis=1)]
    metrics = _paired_metrics(clean, scored.kept, pred, labels, cfg.evaluation.seed, cfg.evaluation.n_bootstrap)
    metrics.update({"corpus": name, "perturbation": p.spec, "split": scored.part, "leaky": scored.leaky,
                    "model": info.model, "train_corpora": info.train_corpora, "scored_by": scored.scored_by,
                    "seed": cfg.evaluation.seed, "unscored": lost})
    if multi:
        atomic_write_json(member.perturbed_metrics(name, p.slug), metrics)
    pairs = [{"id": u.id, "speaker": u.speaker, "true": u.emotion, "clean": clean[u.id]["pred"], "pred": y}
             for u, y in zip(scored.kept, pred, strict=True)]
    return {**metrics, "_pairs": pairs}


def _pool_seeds(per_seed: list[dict[str, Any]], members: list[RunDir], info: Any) -> dict[str, Any]:
    """The mean over seeds of the perturbed scores, the clean UAR on the same utterances and the drop, with
    intervals over speakers and seeds; each seed's own three numbers under ``seeds``."""
    from emoshift.evaluation.intervals import metric_interval, paired_difference
    from emoshift.evaluation.seeded import per_speaker_confusions, seed_interval

    labels = list(info.labels)
    seeds = [int(m.path.name) for m in members]
    common = set.intersection(*({r["id"] for r in m["_pairs"]} for m in per_seed))  # paired across seeds too
    pert_rows, clean_rows = [], []
    for s, m in zip(seeds, per_seed, strict=True):
        for r in m["_pairs"]:
            if r["id"] in common:
                pert_rows.append({"seed": s, "speaker": r["speaker"], "true": r["true"], "pred": r["pred"]})
                clean_rows.append({"seed": s, "speaker": r["speaker"], "true": r["true"], "pred": r["clean"]})
    pert, _, speakers = per_speaker_confusions(pert_rows, labels)
    before, _, _ = per_speaker_confusions(clean_rows, labels)
    ci, reason, method = seed_interval(pert_rows, labels, 0, 1000)  # the jackknife: seed, resamples unused
    clean_ci, _ = metric_interval(before, "uar")
    drop = paired_difference(before, pert, "uar")
    first = per_seed[0]
    uars = np.array([m["uar"] for m in per_seed], dtype=np.float64)
    return {
        **{k: first[k] for k in ("corpus", "perturbation", "split", "model", "train_corpora", "labels") if k in first},
        **{k: float(np.mean([m[k] for m in per_seed])) for k in ("accuracy", "uar", "macro_f1")},
        "n": len(common), "speakers": len(speakers),
        "ci95": ci, "ci95_reason": reason,
        "ci95_method": method,
        "uar_clean": float(np.mean([m["uar_clean"] for m in per_seed])),
        "uar_clean_ci95": None if clean_ci is None else [float(clean_ci.lo), float(clean_ci.hi)],
        "uar_drop": drop.diff,
        "uar_drop_ci95": None if drop.ci is None else [float(drop.ci.lo), float(drop.ci.hi)],
        "uar_drop_ci95_reason": drop.reason,
        "leaky": any(bool(m.get("leaky")) for m in per_seed),
        "scored_by": f"mean over {len(per_seed)} seeds (each: {first.get('scored_by')})",
        "seeds": [{"seed": s, "uar": m["uar"], "uar_clean": m["uar_clean"], "uar_drop": m["uar_drop"]}
                  for s, m in zip(seeds, per_seed, strict=True)],
        "seed_mean": float(uars.mean()), "seed_sd": float(uars.std(ddof=1)), "n_seeds": len(per_seed),
        "seed": first.get("seed"),
        "unscored": first.get("unscored", []),
    }


def _clean_predictions(run: RunDir, name: str) -> dict[str, dict[str, str]]:
    """``predictions/<corpus>.csv`` by utterance id: the clean side of every pair."""
    import csv

    from emoshift.evaluation.scoring import EvaluationError

    path = run.predictions(name)
    if not path.is_file():
        raise EvaluationError(f"{path} is missing: evaluate {run.path} on {name} (without --perturb) first")
    with open(path, newline="", encoding="utf-8") as f:
        return {row["id"]: row for row in csv.DictReader(f)}


def _paired_metrics(
    clean: dict[str, dict[str, str]], kept: list[Utterance], pred: list[str], labels: list[str], seed: int,
    n_resamples: int,
) -> dict[str, Any]:
    """The perturbed scores with CIs, and clean - perturbed UAR on the same utterances with a paired CI."""
    from emoshift.evaluation.metrics import (
        bootstrap_ci,
        ci_reason,
        evaluate_predictions,
        paired_bootstrap_diff,
    )

    y = [u.emotion for u in kept]
    speakers = [u.speaker for u in kept]
    before = [clean[u.id]["pred"] for u in kept]
    out = evaluate_predictions(y, pred, speakers, labels, seed=seed, n_resamples=n_resamples)
    diff = paired_bootstrap_diff(y, before, pred, speakers, labels, metric="uar", n_resamples=n_resamples, seed=seed)
    clean_ci = None if ci_reason(len(set(speakers))) else bootstrap_ci(
        y, before, speakers, labels, metrics=("uar",), n_resamples=n_resamples, seed=seed
    )["uar"]
    out.update({"speakers": len(set(speakers)), "uar_clean": diff["a"], "uar_clean_ci95": clean_ci,
                "uar_drop": diff["diff"], "uar_drop_ci95": diff["ci"], "uar_drop_ci95_reason": diff["ci_reason"]})
    return out


def robustness_rows(run_dir: str | os.PathLike[str], corpus: str) -> list[dict[str, Any]]:
    """The perturbed metrics of ``corpus`` in this run, one row each: perturbation, n, speakers, uar_clean,
    uar (perturbed) and its CI, uar_drop and its CI. Sorted by SPEC; empty when there are none."""
    rows = []
    for path in RunDir.of(run_dir).perturbed_metrics_of(corpus):
        m = read_json(path, RunError)
        rows.append({
            "perturbation": m["perturbation"], "n": m["n"], "speakers": m.get("speakers"),
            "uar_clean": m["uar_clean"], "uar_clean_ci95": m.get("uar_clean_ci95"),
            "uar": m["uar"], "uar_ci95": (m.get("ci95") or {}).get("uar"),
            "uar_drop": m["uar_drop"], "uar_drop_ci95": m.get("uar_drop_ci95"),
        })
    return sorted(rows, key=lambda r: str(r["perturbation"]))


def plot_robustness(run_dir: str | os.PathLike[str], corpus: str) -> Path | None:
    """``plots/robustness_<corpus>.png``: UAR clean (the full clean evaluation) and under each perturbation,
    with CIs; None (and no figure) without perturbed metrics or without the plots extra (a note says so)."""
    from emoshift.core.extras import optional

    run = RunDir.of(run_dir)
    rows = robustness_rows(run.path, corpus)
    if not rows or not optional("plots", f"the robustness plot of {corpus}"):
        return None
    from emoshift.evaluation.plots import plot_scores_ci

    clean = read_json(run.metrics(corpus), RunError) if run.metrics(corpus).is_file() else {}
    scores: dict[str, dict[str, tuple[float, Any]]] = {}
    if clean.get("uar") is not None:
        scores["clean"] = {corpus: (float(clean["uar"]), (clean.get("ci95") or {}).get("uar"))}
    for r in rows:
        scores[r["perturbation"]] = {corpus: (float(r["uar"]), r["uar_ci95"])}
    title = f"{corpus}: UAR clean and through each channel (95% CI)"
    return plot_scores_ci(scores, run.robustness_plot(corpus), title=title, ylabel="UAR (95% CI)")
