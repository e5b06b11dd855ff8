"""How to split a corpus by speaker (``data.split:`` of the experiment config): the method, its ratios or fold
counts, and their checks. :mod:`emoshift.data.splits` makes the splits these settings describe."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from emoshift.corpora import canonical_name

DEFAULT_RATIOS: tuple[float, float, float] = (0.7, 0.15, 0.15)
FOLD_METHODS: tuple[str, ...] = ("kfold", "loso", "corpus")
Disjoint = Literal["speaker", "text"]  # what a split keeps apart between test and train/val


def check_ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
    """``(train, val, test)`` fractions as floats; ValueError unless three, non-negative, summing to 1, train and
    test positive."""
    if len(ratios) != 3:
        raise ValueError(f"ratios must be three numbers (train, val, test), got {list(ratios)}")
    r = tuple(float(x) for x in ratios)
    if any(x < 0 for x in r) or abs(sum(r) - 1.0) > 1e-6:
        raise ValueError(f"ratios must be non-negative and sum to 1, got {list(r)}")
    if r[0] <= 0 or r[2] <= 0:
        raise ValueError(f"train and test ratios must be positive, got {list(r)}")
    return r  # type: ignore[return-value]



class SplitConfig(BaseModel):
    """How to split, as written in a run or study config (``split:`` block)."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["speaker", "kfold", "loso", "corpus", "explicit", "random"] = "speaker"
    ratios: tuple[float, float, float] = DEFAULT_RATIOS
    seed: int = 0
    fold: int | None = Field(
        default=None, ge=0, description="kfold/loso/corpus: run this fold only (unset: every fold, pooled)"
    )
    k: int | dict[str, int] = Field(
        default=5,
        description="kfold: the number of folds, one for every corpus or one per corpus ({ravdess: 6, crema-d: 5})",
    )
    val_fraction: float = Field(default=0.15, ge=0.0, lt=1.0)
    stratify: Literal["gender"] | None = "gender"
    train: list[str] | None = None
    val: list[str] | None = None
    test: list[str] | None = None
    allow_leak: bool = False
    disjoint: list[Disjoint] = Field(
        default_factory=lambda: list[Disjoint](["speaker"]),
        description="what test may not share with train/val: [speaker] (default) or [speaker, text] (also no "
        "spoken text of the test part in training, where the corpus records its texts; costs data)",
    )

    @field_validator("disjoint")
    @classmethod
    def _disjoint(cls, v: list[Disjoint]) -> list[Disjoint]:
        """``speaker`` always (a split is by speaker; ``method: random`` with ``allow_leak`` is how to share
        them), ``text`` on request; each once, in that order."""
        if "speaker" not in v:
            raise ValueError(
                "data.split.disjoint must include 'speaker' (splits are always by speaker), e.g. [speaker, text]"
            )
        return [k for k in ("speaker", "text") if k in v]  # type: ignore[misc]

    @property
    def text_disjoint(self) -> bool:
        return "text" in self.disjoint

    @field_validator("k", mode="before")
    @classmethod
    def _fold_counts(cls, v: Any) -> int | dict[str, int]:
        """One count >= 2, or corpus -> count >= 2 (names canonical: ``CREMA-D`` and ``crema`` are ``crema-d``)."""
        if isinstance(v, dict):
            if not v:
                raise ValueError("a per-corpus k needs one fold count per corpus, e.g. {ravdess: 6, crema-d: 5}")
            out: dict[str, int] = {}
            for name, n in v.items():
                key = corpus_key(str(name))
                if key in out:
                    raise ValueError(f"corpus {key!r} is given twice")
                out[key] = _fold_count(n, key)
            return out
        return _fold_count(v, None)

    def k_for(self, corpus: str | None) -> int:
        """The fold count of ``corpus`` (a per-corpus ``k`` must name it)."""
        if isinstance(self.k, int):
            return self.k
        key = corpus_key(corpus) if corpus else None
        if key not in self.k:
            raise ValueError(
                f"data.split.k gives no fold count for corpus {corpus!r} (it names {', '.join(self.k)})"
            )
        return self.k[key]

    @property
    def max_k(self) -> int:
        """The number of fold runs of a ``kfold`` run: the largest fold count."""
        return self.k if isinstance(self.k, int) else max(self.k.values())

    @model_validator(mode="after")
    def _consistent(self) -> SplitConfig:
        check_ratios(self.ratios)
        lists = [n for n in ("train", "val", "test") if getattr(self, n) is not None]
        if self.method == "explicit":
            if not self.train or not self.test:
                raise ValueError("method 'explicit' needs non-empty 'train' and 'test' speaker lists")
        elif lists:
            raise ValueError(
                f"speaker lists ({', '.join(lists)}) are only used by method 'explicit', not {self.method!r}"
            )
        if self.method == "kfold" and self.fold is not None and self.fold >= self.max_k:
            most = "k-1" if isinstance(self.k, int) else "the largest k - 1"
            raise ValueError(f"fold must be between 0 and {most} ({self.max_k - 1}), got {self.fold}")
        if self.method == "random" and not self.allow_leak:
            raise ValueError(
                "method 'random' splits clips, not speakers, so test speakers are also in train; "
                "set allow_leak: true to run it anyway (the run is marked leaky)"
            )
        return self


def corpus_key(name: str) -> str:
    """A corpus's registry name, or the name lower-cased (a manifest corpus of the user's own)."""
    try:
        return canonical_name(name)
    except KeyError:
        return name.strip().lower()


def _fold_count(n: Any, corpus: str | None) -> int:
    where = f"{corpus}: " if corpus else ""
    if isinstance(n, bool) or not isinstance(n, int):
        raise ValueError(f"{where}a fold count must be a whole number, got {n!r}")
    if n < 2:
        raise ValueError(f"{where}k must be at least 2 (folds), got {n}")
    return n
