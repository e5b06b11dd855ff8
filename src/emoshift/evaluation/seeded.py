"""A repeated-training run's pooled files: every seed's run scored as usual, then pooled over the seeds.

``training.seeds: [0, 1, 2]`` trains the whole run once per seed into ``RUN/seeds/<s>/`` (each a complete run
directory, :mod:`emoshift.training.seeds`). What the recipe scores is the mean over seeds, so the top level
holds, per corpus:

- ``RUN/predictions/<corpus>.csv``: every seed's predictions one after another (each seed's own rows: its
  pooled out-of-fold predictions, or its model's), told apart by the ``seed`` column;
- ``RUN/metrics/<corpus>.json``: the headline ``accuracy``, ``uar`` and ``macro_f1`` are the **mean over
  seeds**; ``seeds`` lists each seed's ``{seed, uar, accuracy, macro_f1, fold_sd}`` (``fold_sd``: the sd of
  that seed's fold UARs, null for a run without folds), ``seed_mean`` and ``seed_sd`` (sample sd of the
  seeds' UARs), ``n_seeds``; ``ci95`` covers speaker sampling **and** training randomness
  (:func:`emoshift.evaluation.intervals.metric_interval` on the per-seed, per-speaker confusions),
  ``ci95_method`` says which interval; ``confusion`` sums the seeds' confusions (what the plot draws),
  ``per_class_recall`` is the mean over seeds; ``fold_sd`` is the mean of the seeds' fold sds and ``folds``
  the number of folds each seed pooled (null without folds);
- ``RUN/plots/confusion_<corpus>.png``: the summed confusion.

A one-seed run's metrics say ``"seeds": 1`` and ``seed_sd`` null (:data:`ONE_SEED`): training variance was not
measured. Torch-free (it reads the seed runs' files).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from emoshift.core.io import atomic_write_csv, atomic_write_json, read_csv, read_json
from emoshift.core.rundir import RunDir, RunError
from emoshift.evaluation.confusion import confusion_stack
from emoshift.evaluation.intervals import metric_interval

SEED_METRICS: tuple[str, ...] = ("accuracy", "uar", "macro_f1")
NOT_MEASURED = "training variance not measured (1 seed)"
# context keys copied from the first seed's metrics (the seeds share their test utterances)
CONTEXT_KEYS: tuple[str, ...] = (
    "n", "labels", "corpus", "split", "speakers", "model", "train_corpora", "excluded_labels", "skipped",
    "distill_teacher", "training_audio", "text_overlap",
)


def one_seed(uar: float | None) -> dict[str, Any]:
    """What a one-seed run's metrics add: ``"seeds": 1``, no seed sd."""
    return {"seeds": 1, "n_seeds": 1, "seed_mean": uar, "seed_sd": None}


def seed_text(metrics: dict[str, Any]) -> str:
    """``"seed mean 0.512, sd 0.021 (3 seeds)"``, or :data:`NOT_MEASURED`; for the CLI and the model card."""
    n = metrics.get("n_seeds") or (metrics["seeds"] if isinstance(metrics.get("seeds"), int) else None)
    if not isinstance(metrics.get("seeds"), list) or metrics.get("seed_sd") is None:
        return NOT_MEASURED if n in (None, 1) else f"{n} seeds"
    return f"seed mean {metrics['seed_mean']:.3f}, sd {metrics['seed_sd']:.3f} ({len(metrics['seeds'])} seeds)"


def pooled_corpora(seeds: list[RunDir]) -> list[str]:
    """The corpora every seed run has metrics for, sorted."""
    sets = [set(s.metrics_corpora()) for s in seeds]
    return sorted(set.intersection(*sets)) if sets else []


def pool_seeds(
    run: RunDir, seeds: list[RunDir], *, ci_seed: int = 0, n_resamples: int = 1000, figures: bool = True
) -> dict[str, Any]:
    """Write RUN's pooled predictions, metrics and confusion plot for every corpus all ``seeds`` scored;
    returns ``{corpus: metrics}``."""
    if len(seeds) < 2:
        raise RunError(f"{run.path}: pooling over seeds needs at least two seed runs, found {len(seeds)}")
    return {name: _pool_corpus(run, seeds, name, ci_seed, n_resamples, figures) for name in pooled_corpora(seeds)}


def _seed_of(seed_run: RunDir) -> int:
    return int(seed_run.path.name)


def _pool_corpus(
    run: RunDir, seeds: list[RunDir], name: str, ci_seed: int, n_resamples: int, figures: bool
) -> dict[str, Any]:
    from emoshift.evaluation.plots import plot_confusion

    per = [read_json(s.metrics(name), RunError) for s in seeds]
    rows = [_with_seed(r, _seed_of(s)) for s in seeds for r in read_csv(s.predictions(name))]
    first = per[0]
    labels = list(first["labels"])
    for s, m in zip(seeds, per, strict=True):
        if list(m["labels"]) != labels:
            raise RunError(f"{s.path}: its labels {m['labels']} differ from seed {_seed_of(seeds[0])}'s {labels}")
    entries = [
        {"seed": _seed_of(s), **{k: m[k] for k in SEED_METRICS}, "fold_sd": _uar_fold_sd(m)}
        for s, m in zip(seeds, per, strict=True)
    ]
    uars = np.array([e["uar"] for e in entries], dtype=np.float64)
    confusion = np.sum([np.asarray(m["confusion"], dtype=np.int64) for m in per], axis=0)
    recall = {
        lab: _mean([m["per_class_recall"].get(lab) for m in per]) for lab in labels
    }
    ci, reason, method = seed_interval(rows, labels, ci_seed, n_resamples)
    fold_sds = [e["fold_sd"] for e in entries if e["fold_sd"] is not None]
    metrics: dict[str, Any] = {
        **{k: float(np.mean([m[k] for m in per])) for k in SEED_METRICS},
        **{k: first[k] for k in CONTEXT_KEYS if k in first},
        "per_class_recall": recall,
        "confusion": confusion.tolist(),
        "collapsed": first.get("collapsed") if all(m.get("collapsed") for m in per) else None,
        "ci95": ci,
        "ci95_reason": reason,
        "ci95_method": method,
        "leaky": any(bool(m.get("leaky")) for m in per),
        "scored_by": f"mean over {len(seeds)} seeds (each: {first.get('scored_by', 'model')})",
        "seeds": entries,
        "seed_mean": float(uars.mean()),
        "seed_sd": float(uars.std(ddof=1)),
        "n_seeds": len(seeds),
        "fold_sd": {"uar": float(np.mean(fold_sds))} if fold_sds else None,
        "folds": len(first["folds"]) if isinstance(first.get("folds"), list) else None,  # per seed
    }
    metrics.update(_pooled_calibration(per))
    atomic_write_json(run.metrics(name), metrics)
    columns = list(dict.fromkeys(c for r in rows for c in r))
    atomic_write_csv(run.predictions(name), columns, rows)
    title = f"{first.get('model')} on {name} ({metrics['split']}, {len(seeds)} seeds summed): UAR {metrics['uar']:.3f}"
    if figures:
        plot_confusion(metrics["confusion"], labels, run.confusion_plot(name), title=title)
    return metrics


CALIBRATION_KEYS: tuple[str, ...] = ("ece", "mce", "brier", "nll")


def _pooled_calibration(per: list[dict[str, Any]]) -> dict[str, Any]:
    """The seeds' calibration scores averaged (each seed's models calibrated on their own validation speakers,
    so there is no one temperature to report); nothing when a seed has none (a dimensional or older run). No
    interval: the speaker jackknife of :mod:`emoshift.evaluation.intervals` is for confusion-based metrics, and
    the seeds' own intervals are in their folders. The abstention threshold belongs to one model and is not
    pooled (each seed's metrics hold its own)."""
    if not all(isinstance(m.get("ece"), (int, float)) for m in per):
        return {}
    out: dict[str, Any] = {k: _mean([m.get(k) for m in per]) for k in CALIBRATION_KEYS}
    raw = [(m.get("calibration") or {}).get("uncalibrated") for m in per]
    before = [b for b in raw if isinstance(b, dict)]
    first = per[0].get("calibration") or {}
    out["calibration"] = {
        "bins": first.get("bins"), "brier": first.get("brier"), "temperature": None,
        "uncalibrated": {k: _mean([b.get(k) for b in before]) for k in CALIBRATION_KEYS}
        if len(before) == len(raw) else None,
        "pooled": f"mean over {len(per)} seeds",
    }
    return out


def _with_seed(row: dict[str, Any], seed: int) -> dict[str, Any]:
    """A seed run's prediction row with its ``seed``: the seed folder's, which is what trained it (a family that
    reads no training key, such as the acoustic heads, keeps no training.seed in its config)."""
    return {**row, "seed": seed}


def _mean(values: list[Any]) -> float | None:
    present = [float(v) for v in values if v is not None]
    return float(np.mean(present)) if present else None


def _uar_fold_sd(m: dict[str, Any]) -> float | None:
    sd = m.get("fold_sd")
    if isinstance(sd, dict):
        sd = sd.get("uar")
    return float(sd) if isinstance(sd, (int, float)) else None


def per_speaker_confusions(
    rows: list[dict[str, Any]], labels: list[str]
) -> tuple[np.ndarray, list[int], list[str]]:
    """The predictions of every seed as confusions ``(S_seeds, K_speakers, L, L)`` (rows true, columns
    predicted), with the seeds and speakers in that order; a speaker a seed did not score is all zeros there."""
    seeds = sorted({int(r["seed"]) for r in rows})
    speakers = sorted({str(r["speaker"]) for r in rows})
    lab = {x: i for i, x in enumerate(labels)}
    spk = {x: i for i, x in enumerate(speakers)}
    out = np.zeros((len(seeds), len(speakers), len(labels), len(labels)), dtype=np.int64)
    for j, s in enumerate(seeds):
        mine = [r for r in rows if int(r["seed"]) == s and r["true"] in lab and r["pred"] in lab]
        t = np.array([lab[r["true"]] for r in mine], dtype=np.int64)
        p = np.array([lab[r["pred"]] for r in mine], dtype=np.int64)
        g = np.array([spk[str(r["speaker"])] for r in mine], dtype=np.int64)
        out[j] = confusion_stack(t, p, g, len(labels), len(speakers))
    return out, seeds, speakers


def seed_interval(
    rows: list[dict[str, Any]], labels: list[str], ci_seed: int, n_resamples: int
) -> tuple[dict[str, list[float] | None] | None, str | None, str | None]:
    """``ci95`` per headline metric over speakers and seeds, the reason when there is none, and its method."""
    confusions, _, _ = per_speaker_confusions(rows, labels)
    out: dict[str, list[float] | None] = {}
    reason: str | None = None
    method: str | None = None
    for metric in SEED_METRICS:
        interval, why = metric_interval(confusions, metric, alpha=0.05, n_resamples=n_resamples, seed=ci_seed)
        if interval is None:
            out[metric], reason = None, reason or why
        else:
            out[metric], method = [float(interval.lo), float(interval.hi)], interval.method
    if all(v is None for v in out.values()):
        return None, reason, None
    return out, reason, method
