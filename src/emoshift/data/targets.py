"""Training targets beyond the class label: a dimensional run's ratings, and a categorical run's soft labels.

Dimensional targets: a corpus's arousal / valence / dominance ratings, rescaled to the run's common range.

Every corpus rates on its own scale: IEMOCAP 1-5, MSP-Podcast 1-7 (``RATING_SCALE`` in the corpus module), a
manifest table whatever ``data.manifest.scale`` declares. A run trains and scores on one range,
``data.target_range`` (default [0, 1]): ``v' = lo + (v - a) / (b - a) * (hi - lo)`` for native scale [a, b].
The range is recorded in model.json (``target_range``), so predictions are read on it.

An utterance without a rating for a requested target, or with one outside its corpus's scale, is left out
with its reason counted ("no arousal rating": 12, in done.json and the metrics), never silently dropped.

Soft labels (``training.targets: soft``, docs/soft-labels.md): the raters' votes of each training utterance as a
distribution over the run's labels, optionally mixed with the one-hot label (``training.soft_mix``); a training
corpus without any votes is refused in one line.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from emoshift.core.errors import EmoshiftError
from emoshift.corpora import get_corpus, source_of
from emoshift.corpora.base import Utterance, vote_shares


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


# ------------------------------------------------------------------------------------------------ soft labels
# Categorical soft targets (``training.targets: soft``): each training utterance's raters' votes
# (:attr:`Utterance.votes`) as a distribution over the run's labels.


def vote_coverage(utterances: Sequence[Utterance], labels: Sequence[str]) -> int:
    """How many of ``utterances`` have votes on at least one of ``labels``."""
    return sum(u.votes is not None and vote_shares(u.votes, labels) is not None for u in utterances)


def soft_target(u: Utterance, labels: Sequence[str], mix: float) -> list[float]:
    """``(1 - mix) x`` the raters' distribution over ``labels`` ``+ mix x`` the one-hot label; the one-hot label
    alone for an utterance without votes on ``labels``. Votes for classes outside ``labels`` are dropped and the
    rest renormalised (:func:`emoshift.corpora.base.vote_shares`)."""
    hard = [1.0 if lab == u.emotion else 0.0 for lab in labels]
    shares = vote_shares(u.votes, labels) if u.votes is not None else None
    if shares is None:
        return hard
    return [(1.0 - mix) * s + mix * h for s, h in zip(shares, hard, strict=True)]


def require_votes(scans: Mapping[str, Sequence[Utterance]], labels: Sequence[str]) -> dict[str, int]:
    """Each training corpus's utterances without votes (they train on their one-hot label); TargetsError (one
    line) for a corpus with no votes at all: ``training.targets: soft`` needs the raters'."""
    missing = {}
    for name, utts in scans.items():
        have = vote_coverage(utts, labels)
        if have == 0:
            raise TargetsError(
                f"corpus {name!r} has no raters' votes: training.targets=soft needs them (CREMA-D processedResults/, "
                "IEMOCAP's evaluator lines, a manifest's votes or p_<label> columns); use training.targets=hard"
            )
        missing[name] = len(utts) - have
    return missing
