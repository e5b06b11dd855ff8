"""Agreement-aware scores: how a categorical model's predicted distribution compares with the raters' own.

Where the test utterances carry the raters' votes (:attr:`emoshift.corpora.base.Utterance.votes`: CREMA-D's
``processedResults/``, IEMOCAP's evaluator lines, a manifest's ``votes`` or ``p_<label>`` columns), the metrics
JSON gains an ``agreement`` block (:func:`agreement_scores`):

- ``cross_entropy``: the mean over clips of ``-sum_c r_c log p_c`` (nats), ``r`` the raters' distribution over
  the model's labels (votes for other classes dropped, the rest renormalised), ``p`` the predicted probabilities
  (floored at 1e-12 so a zero is finite);
- ``js_distance``: the mean Jensen-Shannon distance between ``r`` and ``p``
  (``scipy.spatial.distance.jensenshannon``, base 2: 0 = the same distribution, 1 = disjoint);
- ``median_agreement`` and ``uar_high`` / ``uar_low``: a clip's agreement is the share of its majority vote
  (``max_c r_c``); the clips above the median agreement are the high-agreement half, the others (the median
  included) the low-agreement half, each scored by UAR against the utterance's label (None for an empty half);
- ``n`` (clips with votes), ``n_high``, ``n_low``, ``without_votes`` (scored clips that have none).

No torch: it reads arrays (the predictions CSV's ``p_<label>`` columns are the same probabilities).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.spatial.distance import jensenshannon

from emoshift.corpora.base import Utterance, vote_shares
from emoshift.evaluation.metrics import classification_metrics

KEY = "agreement"  # the metrics JSON's key
EPS = 1e-12


def rater_distributions(utts: Sequence[Utterance], labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(row indices of ``utts`` with votes on ``labels``, their raters' distributions ``(n, C)``)."""
    rows, dists = [], []
    for i, u in enumerate(utts):
        shares = vote_shares(u.votes, labels) if u.votes is not None else None
        if shares is not None:
            rows.append(i)
            dists.append(shares)
    return np.array(rows, dtype=np.int64), np.array(dists, dtype=np.float64).reshape(len(rows), len(labels))


def agreement_scores(
    utts: Sequence[Utterance], probs: np.ndarray, labels: Sequence[str]
) -> dict[str, Any] | None:
    """The ``agreement`` block for ``utts`` scored with probabilities ``probs`` ``(N, C)``; None when none has
    votes on ``labels``."""
    rows, r = rater_distributions(utts, labels)
    if not len(rows):
        return None
    p = np.clip(np.asarray(probs, dtype=np.float64)[rows], EPS, None)
    p = p / p.sum(axis=1, keepdims=True)
    cross_entropy = float(-(r * np.log(p)).sum(axis=1).mean())
    js = float(np.mean(jensenshannon(r, p, base=2, axis=1)))
    agreement = r.max(axis=1)  # share of the majority vote
    median = float(np.median(agreement))
    high = agreement > median
    true = [utts[i].emotion for i in rows]
    pred = [labels[k] for k in p.argmax(axis=1)]

    def uar(mask: np.ndarray) -> float | None:
        if not mask.any():
            return None
        picked = np.flatnonzero(mask)
        return float(classification_metrics([true[i] for i in picked], [pred[i] for i in picked], labels)["uar"])

    return {
        "n": int(len(rows)),
        "without_votes": int(len(utts) - len(rows)),
        "cross_entropy": cross_entropy,
        "js_distance": js,
        "median_agreement": median,
        "n_high": int(high.sum()),
        "n_low": int((~high).sum()),
        "uar_high": uar(high),
        "uar_low": uar(~high),
    }
