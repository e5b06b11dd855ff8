"""Dimensional targets: a corpus's arousal / valence / dominance ratings, rescaled to the run's common range.

Every corpus rates on its own scale: IEMOCAP 1-5, MSP-Podcast 1-7 (``RATING_SCALE`` in the corpus module), a
manifest table whatever ``data.manifest.scale`` declares. A run trains and scores on one range,
``data.target_range`` (default [0, 1]): ``v' = lo + (v - a) / (b - a) * (hi - lo)`` for native scale [a, b].
The range is recorded in model.json (``target_range``), so predictions are read on it.

An utterance without a rating for a requested target, or with one outside its corpus's scale, is left out
with its reason counted ("no arousal rating": 12, in done.json and the metrics), never silently dropped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from emoshift.core.errors import EmoshiftError
from emoshift.corpora import get_corpus, source_of
from emoshift.corpora.base import Utterance


class TargetsError(EmoshiftError, ValueError):
    """A corpus cannot give the dimensional targets asked for (message is one line, for the user)."""


def native_scale(name: str, root: str, manifest_scale: tuple[float, float] | None) -> tuple[float, float] | None:
    """The scale corpus ``name`` at ``root`` rates on: the declared one (``data.manifest.scale``) for a corpus of
    your own (a table or another corpus source), else the corpus module's ``RATING_SCALE`` (None: no ratings)."""
    if source_of(root).own:
        return manifest_scale
    scale = getattr(get_corpus(name), "RATING_SCALE", None)
    return (float(scale[0]), float(scale[1])) if scale is not None else None


def rescale(value: float, scale: tuple[float, float], target_range: tuple[float, float]) -> float:
    """``value`` on native ``scale`` -> the same point of ``target_range``."""
    (a, b), (lo, hi) = scale, target_range
    return lo + (value - a) / (b - a) * (hi - lo)


def utterance_targets(
    u: Utterance, targets: Sequence[str], scale: tuple[float, float], target_range: tuple[float, float]
) -> tuple[tuple[float, ...] | None, str | None]:
    """(the rescaled ratings of ``u`` in ``targets`` order, None) or (None, why it has none)."""
    out = []
    for t in targets:
        v = getattr(u, t)
        if v is None:
            return None, f"no {t} rating"
        if not scale[0] <= v <= scale[1]:
            return None, f"{t} rating outside the scale {scale[0]:g}-{scale[1]:g}"
        out.append(rescale(float(v), scale, target_range))
    return tuple(out), None


def require_scale(name: str, root: str, manifest_scale: tuple[float, float] | None) -> tuple[float, float]:
    """The corpus's scale, or TargetsError naming what to do (a corpus without ratings cannot train)."""
    scale = native_scale(name, root, manifest_scale)
    if scale is None:
        if source_of(root).own:
            raise TargetsError(
                f"corpus {name!r} is a corpus of your own: declare the scale of its ratings with "
                "data.manifest.scale=[low,high] (e.g. [1,5]) to train a dimensional model"
            )
        raise TargetsError(
            f"corpus {name!r} has no arousal/valence/dominance ratings: a dimensional model cannot train on it "
            "(use iemocap, msp-podcast or a manifest with rating columns)"
        )
    return scale


def rated(
    utterances: Sequence[Utterance],
    targets: Sequence[str],
    scale: tuple[float, float],
    target_range: tuple[float, float],
) -> tuple[dict[str, tuple[float, ...]], Counter[str]]:
    """(utterance id -> rescaled targets for every rated utterance, the others counted by reason)."""
    out: dict[str, tuple[float, ...]] = {}
    why: Counter[str] = Counter()
    for u in utterances:
        values, reason = utterance_targets(u, targets, scale, target_range)
        if values is None:
            why[str(reason)] += 1
        else:
            out[u.id] = values
    return out, why
