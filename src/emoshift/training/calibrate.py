"""``evaluation.calibrate: temperature``: fit one temperature on a run's validation speakers, store it in model.json.

After the fit, the model scores its *validation* utterances (never a test speaker: the items are those the
split put in ``val``); one temperature ``T`` minimising their negative log-likelihood is fitted
(:func:`emoshift.evaluation.calibration.fit_temperature`) and written to model.json as ``temperature``, with
``temperature_fit`` (the validation NLL before and after, how many utterances, and a ``note`` where no
temperature could be fitted: then it is 1.0, see :func:`emoshift.evaluation.calibration.temperature_search`). From then on every path from
the model's logits to probabilities divides by ``T`` (:meth:`emoshift.core.record.ModelRecord.values`:
evaluation, prediction, the family backend; the exported graph, :mod:`emoshift.deploy.graph`, for torch and
ONNX and the service).

A fold ensemble calibrates each member, each on its own fold's validation speakers, and averages the calibrated
probabilities. Calibrating the ensemble as a whole would need speakers none of its members trained on, and in
speaker cross-validation every speaker is trained on by some fold, or is a test speaker: it could only be fitted
on test speakers, which it must never read. Measured against one temperature shared by the members (fitted on
their validation clips pooled) on a 2-fold demo-sized run (docs/calibration.md): each member its own gave the
lower in-domain ECE (0.080 against 0.102; none: 0.090) and the same cross-corpus ECE (0.254 against 0.253).

Vector scaling (a scale and a bias per class, 2K parameters) was measured against temperature scaling and not
added (docs/calibration.md): on a demo-sized run (synthetic RAVDESS, 48 validation clips) it took the validation
NLL from 0.805 to 0.562 (temperature: 0.787) but raised the test NLL from 1.552 to 2.112 (temperature lowered it to
1.372) and the cross-corpus NLL from 4.80 to 7.87 (temperature: 3.87), and raised both ECEs: it fits the few
validation speakers, not the model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from emoshift.config import ExperimentConfig
from emoshift.core.record import ModelRecord
from emoshift.data.datasets import Item

log = logging.getLogger("emoshift.training.train")


def calibrate(
    cfg: ExperimentConfig, model: Any, record: ModelRecord, val: Sequence[Item], *, progress: bool = False
) -> ModelRecord:
    """``record`` with ``temperature`` fitted on the validation items ``val`` (unchanged when the config does
    not ask for it, or for a dimensional run)."""
    from emoshift.evaluation.calibration import temperature_search, tempered_nll
    from emoshift.evaluation.inference import raw_outputs

    if cfg.evaluation.calibrate == "none" or record.task_kind.rated:
        return record
    kept, raw, _ = raw_outputs(model, record, [it.utt for it in val], cache_dir=cfg.data.cache_dir,
                               batch_size=cfg.evaluation.batch_size, progress=progress, desc="calibrating")
    index = {label: i for i, label in enumerate(record.labels)}
    y = np.array([index[u.emotion] for u in kept], dtype=np.int64)
    logits = np.asarray(raw, dtype=np.float64)  # (N, K)
    temperature, why = temperature_search(logits, y)
    fit: dict[str, Any] = {"val_nll_before": tempered_nll(logits, y, 1.0),
                           "val_nll_after": tempered_nll(logits, y, temperature), "val_utterances": len(y)}
    if why:
        fit["note"] = why
        log.warning("temperature scaling: %s", why)
    log.info("temperature %.3f fitted on %d validation utterances: NLL %.4f -> %.4f", temperature, len(y),
             fit["val_nll_before"], fit["val_nll_after"])
    return ModelRecord.parse({**record.to_json(), "temperature": temperature, "temperature_fit": fit})
