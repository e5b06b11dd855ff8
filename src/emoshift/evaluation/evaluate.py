"""``evaluate_run(RUN, {name: root})``: metrics, predictions and a confusion plot per corpus.

For a corpus the model trained on, only its held-out test speakers are used (``RUN/splits/<corpus>.csv``);
for any other corpus, every utterance. ``leaky`` is true when any test speaker was seen in training.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from emoshift.config import load_run_config
from emoshift.core.errors import EmoshiftError
from emoshift.core.io import atomic_write_csv, atomic_write_json
from emoshift.core.rundir import RunDir
from emoshift.corpora import Scan, canonical_name, scan
from emoshift.corpora.base import Utterance
from emoshift.evaluation.inference import default_device, logits_for_utterances, softmax
from emoshift.models.weights import load_model


class EvaluationError(EmoshiftError, RuntimeError):
    """Evaluation cannot proceed (message is for the user)."""


def test_utterances(run: RunDir, name: str, sc: Scan, info: dict[str, Any]) -> tuple[list[Utterance], str, bool]:
    """(utterances, which split, leaky) for corpus ``name`` under this run."""
    from emoshift.data.splits import load_split, shared_speakers

    seen = set(info.get("training_speakers", []))
    if name in info.get("train_corpora", []):
        path = run.split(name)
        if not path.is_file():
            raise EvaluationError(f"{run.path} trained on {name} but {path} is missing")
        split = load_split(path)
        test_ids = {i for i, part in split.assignment.items() if part == "test"}
        utts = [u for u in sc.utterances if u.id in test_ids]
        leaky = bool(split.leaky or shared_speakers(split) or {u.speaker for u in utts} & seen)
        return utts, "test", leaky
    return list(sc.utterances), "all", bool({u.speaker for u in sc.utterances} & seen)


def evaluate_run(
    run_dir: str | os.PathLike[str],
    corpora: dict[str, str],
    *,
    progress: bool = True,
    batch_size: int | None = None,
    scans: dict[str, Scan] | None = None,
    cache_dir: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Evaluate a finished run on each ``name -> root``; writes metrics/, predictions/ and plots/."""
    from emoshift.evaluation.metrics import evaluate_predictions
    from emoshift.evaluation.plots import plot_confusion

    run = RunDir.of(run_dir)
    cfg = load_run_config(run.path)
    model, info = load_model(run.path, device=default_device())
    labels: list[str] = info["labels"]
    results: dict[str, dict[str, Any]] = {}
    for raw_name, root in corpora.items():
        name = canonical_name(raw_name)
        sc = (scans or {}).get(name) or scan(name, root, labels=info.get("label_policy", "six"))
        utts, part, leaky = test_utterances(run, name, sc, info)
        outside = Counter(u.emotion for u in utts if u.emotion not in labels)
        utts = [u for u in utts if u.emotion in labels]
        if not utts:
            raise EvaluationError(f"{name}: no test utterances with labels the model knows ({', '.join(labels)})")
        kept, logits, skipped = logits_for_utterances(
            model,
            info,
            utts,
            cache_dir=cache_dir or cfg.data.cache_dir,
            batch_size=batch_size or cfg.evaluation.batch_size,
            progress=progress,
            desc=f"evaluating {name}",
        )
        probs = softmax(logits)
        pred = [labels[i] for i in probs.argmax(axis=1)]
        true = [u.emotion for u in kept]
        metrics = evaluate_predictions(
            true,
            pred,
            [u.speaker for u in kept],
            labels,
            seed=cfg.evaluation.seed,
            n_resamples=cfg.evaluation.n_bootstrap,
        )
        metrics.update(
            {
                "leaky": leaky,
                "corpus": name,
                "split": part,
                "speakers": len({u.speaker for u in kept}),
                "model": info["model"],
                "train_corpora": info.get("train_corpora", []),
                "excluded_labels": dict(outside),
                "skipped": [{"path": s.path, "reason": s.reason} for s in skipped],
                "distill_teacher": info.get("distill_teacher"),
            }
        )
        atomic_write_json(run.metrics(name), metrics)
        rows = []
        for u, p, probs_u in zip(kept, pred, probs, strict=True):
            row = {"id": u.id, "path": u.path, "corpus": u.corpus, "speaker": u.speaker, "gender": u.gender or "",
                   "true": u.emotion, "pred": p}
            row.update({f"p_{lab}": f"{float(v):.6f}" for lab, v in zip(labels, probs_u, strict=True)})
            rows.append(row)
        cols = ["id", "path", "corpus", "speaker", "gender", "true", "pred", *[f"p_{lab}" for lab in labels]]
        atomic_write_csv(run.predictions(name), cols, rows)
        title = f"{info['model']} on {name} ({part}{', LEAKY' if leaky else ''}): UAR {metrics['uar']:.3f}"
        plot_confusion(metrics["confusion"], labels, run.confusion_plot(name), title=title)
        results[name] = metrics
    return results

