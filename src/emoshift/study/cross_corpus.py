"""An N-corpus study: its experiments generated from the corpora given on the command line.

A study file with a ``cross_corpus:`` section (``configs/cross_corpus.yaml``) lists no experiments; for the
corpora of ``--corpus NAME=ROOT`` (2 to 10, any registered corpus or a manifest table) :func:`expand` writes

- ``train.<corpus>``: one model per corpus (``data.corpora: [<corpus>]``), and
- ``loco.<corpus>``: one per leave-one-corpus-out set (every corpus but ``<corpus>``; only from 3 corpora on,
  since with two a LOCO set is the other corpus alone, i.e. a ``train.`` row),

then the study runs as any other (:func:`emoshift.study.runner.run_study`): each run is tested on every corpus,
on its held-out test speakers where it trained on the corpus (in-domain) and on every utterance elsewhere.
:mod:`emoshift.study.matrix` turns the runs into the N x N (+ LOCO) matrix, ``cross_corpus.csv`` and the
report's section.

Labels: every experiment trains and is scored under one label policy, the intersection of what the corpora
hold. ``labels: auto`` scans each corpus under ``six`` and takes the widest policy whose classes every corpus
holds, ``six`` (angry, disgust, fearful, happy, neutral, sad) or else ``four`` (angry, happy, neutral, sad); a
corpus holds a class when at least ``min_class_share`` of its utterances carry it (IEMOCAP's 40 fear and 2
disgust turns do not make it a six-class corpus). A named policy is used as given; classes a corpus lacks
are then stated in the report. The policy is written into every generated experiment's ``data.labels``, and
evaluation scores only the classes a model was trained on (others are counted as ``excluded_labels``).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from emoshift.config import ConfigError, apply_overrides, explain, merge

MIN_CORPORA, MAX_CORPORA = 2, 10
POLICY_CLASSES: dict[str, tuple[str, ...]] = {
    "six": ("angry", "disgust", "fearful", "happy", "neutral", "sad"),
    "four": ("angry", "happy", "neutral", "sad"),
}


class CrossCorpusError(ConfigError):
    """The corpora of an N-corpus study cannot be used together (one line, for the user)."""


class CrossCorpusSpec(BaseModel):
    """The ``cross_corpus:`` section of a study file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    labels: Literal["auto", "six", "four", "calm-as-neutral", "native"] = Field(
        "auto", description="auto: the widest of six / four that every corpus holds"
    )
    min_class_share: float = Field(
        0.02, ge=0.0, lt=1.0, description="a corpus holds a class when this share of its utterances carry it"
    )
    loco: bool = Field(True, description="also train leave-one-corpus-out models (from 3 corpora on)")


class MatrixRow(BaseModel):
    """One training set of the matrix: one corpus, or every corpus but one (LOCO)."""

    model_config = ConfigDict(frozen=True)

    id: str
    kind: Literal["single", "loco"]
    train: tuple[str, ...]
    held_out: str | None = None  # LOCO: the corpus left out

    @property
    def label(self) -> str:
        return self.train[0] if self.kind == "single" else f"all but {self.held_out}"


class MatrixPlan(BaseModel):
    """What an N-corpus study is: its corpora (columns), training sets (rows) and the shared labels."""

    model_config = ConfigDict(frozen=True)

    corpora: tuple[str, ...]
    rows: tuple[MatrixRow, ...]
    policy: str
    classes: tuple[str, ...]
    chosen: str = Field(description="how the policy was chosen, one sentence for the report")
    counts: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="corpus -> class -> utterances"
    )
    lacking: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="corpus -> classes of the policy it does not hold"
    )


def is_cross_corpus(raw: object) -> bool:
    return isinstance(raw, dict) and "cross_corpus" in raw


def _holds(counts: Counter[str], classes: Sequence[str], share: float) -> list[str]:
    """The classes among ``classes`` that ``counts`` does not hold (under ``share`` of its utterances)."""
    total = sum(counts.values())
    return [c for c in classes if counts.get(c, 0) == 0 or counts.get(c, 0) < share * total]


def class_counts(roots: Mapping[str, str], data: Mapping[str, Any]) -> dict[str, Counter[str]]:
    """Each corpus scanned under ``six``: utterances per class (``data``: the data options, e.g. label_map)."""
    from emoshift.corpora import scan_source

    options = {k: v for k, v in data.items() if k not in ("corpora", "roots", "labels", "split", "manifest")}
    options["columns"] = (data.get("manifest") or {}).get("columns") or {}
    options["allow_leak"] = bool((data.get("split") or {}).get("allow_leak", False))
    return {
        name: Counter(u.emotion for u in scan_source(name, root, "six", **options).utterances)
        for name, root in roots.items()
    }


def _lacking(counts: Mapping[str, Counter[str]], policy: str, share: float) -> dict[str, list[str]]:
    """corpus -> the classes of ``policy`` it does not hold (only corpora that lack some)."""
    out = {c: _holds(n, POLICY_CLASSES.get(policy, ()), share) for c, n in counts.items()}
    return {c: v for c, v in out.items() if v}


def _describe(lacking: Mapping[str, Sequence[str]]) -> str:
    return "; ".join(f"{c} lacks {', '.join(v)}" for c, v in lacking.items())


def choose_labels(
    spec: CrossCorpusSpec, counts: Mapping[str, Counter[str]]
) -> tuple[str, str, dict[str, list[str]]]:
    """(policy, how it was chosen, corpus -> classes of the policy it lacks)."""
    share = spec.min_class_share
    if spec.labels != "auto":
        return (
            spec.labels,
            f"label policy '{spec.labels}' as set in the study file",
            _lacking(counts, spec.labels, share),
        )
    held = f"a class is held when at least {share:.0%} of a corpus's utterances carry it"
    if not _lacking(counts, "six", share):
        return "six", f"'six': every corpus holds all six classes ({held})", {}
    if not _lacking(counts, "four", share):
        why = _describe(_lacking(counts, "six", share))
        return "four", f"'four', the widest policy every corpus holds: not six, since {why} ({held})", {}
    raise CrossCorpusError(
        "these corpora do not share the four classes angry, happy, neutral, sad "
        f"({_describe(_lacking(counts, 'four', share))}); set cross_corpus.labels or drop a corpus"
    )


def _rows(corpora: Sequence[str], loco: bool) -> list[MatrixRow]:
    rows = [MatrixRow(id=f"train.{c}", kind="single", train=(c,)) for c in corpora]
    if loco and len(corpora) >= 3:
        rows += [
            MatrixRow(id=f"loco.{c}", kind="loco", train=tuple(o for o in corpora if o != c), held_out=c)
            for c in corpora
        ]
    return rows


def _architecture(raw: dict[str, Any], profile: str | None, overrides: Sequence[str]) -> str:
    """The model name every experiment will have (defaults, the profile's, then ``--set`` for all)."""
    data = merge(
        raw.get("defaults") or {}, ((raw.get("profiles") or {}).get(profile) or {}).get("defaults") or {}
    )
    shared = [o for o in overrides if ":" not in o.partition("=")[0]]
    with contextlib.suppress(ConfigError):  # the study loader reports a bad override with its experiment
        data = apply_overrides(data, shared)
    return str((data.get("model") or {}).get("name", "resnet18"))


def _experiments(rows: Sequence[MatrixRow], policy: str, architecture: str) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        what = f"trained on {r.train[0]}" if r.kind == "single" else f"trained on all but {r.held_out}"
        out.append(
            {
                "id": r.id,
                "title": f"Cross-corpus: {what}",
                "architecture": architecture,
                "data_strategy": " + ".join(r.train),
                "description": (
                    f"{what}; tested on the held-out speakers of {' and '.join(r.train)} and on every "
                    "utterance of the other corpora"
                ),
                "config": {"data": {"corpora": list(r.train), "labels": policy}},
            }
        )
    return out


def expand(
    raw: dict[str, Any],
    roots: Mapping[str, str],
    *,
    profile: str | None = None,
    overrides: Sequence[str] = (),
) -> tuple[dict[str, Any], MatrixPlan]:
    """The study file with its experiments generated for ``roots`` (name -> root, in command-line order)."""
    try:
        spec = CrossCorpusSpec.model_validate(raw.get("cross_corpus") or {})
    except ValidationError as e:
        raise CrossCorpusError(f"cross_corpus: {explain(e, CrossCorpusSpec)}") from None
    if raw.get("experiments"):
        raise CrossCorpusError(
            "a study file with a cross_corpus section generates its experiments: drop 'experiments'"
        )
    corpora = list(roots)
    if not MIN_CORPORA <= len(corpora) <= MAX_CORPORA:
        raise CrossCorpusError(
            f"a cross-corpus study takes {MIN_CORPORA} to {MAX_CORPORA} corpora (--corpus NAME=ROOT), got {len(corpora)}"
        )
    labels = shared_labels(roots, raw, spec)
    rows = _rows(corpora, spec.loco)
    plan = MatrixPlan(rows=tuple(rows), **labels)
    study = {k: v for k, v in raw.items() if k != "cross_corpus"}
    study["experiments"] = _experiments(rows, labels["policy"], _architecture(raw, profile, overrides))
    return study, plan


def shared_labels(roots: Mapping[str, str], raw: Mapping[str, Any], spec: CrossCorpusSpec) -> dict[str, Any]:
    """The fields of :class:`MatrixPlan` every generated study shares (corpora, the label policy, how it was
    chosen, the class counts and what each corpus lacks) for the study file ``raw``'s data defaults;
    CrossCorpusError when a corpus has no usable utterance."""
    counts = class_counts(roots, merge((raw.get("defaults") or {}).get("data") or {}, {}))
    empty = [c for c, n in counts.items() if not n]
    if empty:
        raise CrossCorpusError(f"corpus {empty[0]} has no usable utterances under the six-class policy")
    policy, chosen, lacking = choose_labels(spec, counts)
    return {
        "corpora": tuple(roots),
        "policy": policy,
        "classes": POLICY_CLASSES.get(policy, ()),
        "chosen": chosen,
        "counts": {c: dict(sorted(n.items())) for c, n in counts.items()},
        "lacking": {c: tuple(v) for c, v in lacking.items()},
    }
