"""What the utterances say, as a leak: text overlap between training and test, and text-disjoint splits.

Acted corpora read a few fixed texts (RAVDESS 2 statements, CREMA-D 12 sentences, EmoDB 10 texts, TESS 200
words after one carrier phrase, ESD the same sentences in every emotion, IEMOCAP's scripted dialogues), so a
speaker-independent split still tests texts the model heard in training: it can learn how a sentence is said
by everyone instead of the emotion. Corpora that know the text fill ``Utterance.sentence`` with the corpus's own
text key (RAVDESS's statement, CREMA-D's sentence code, EmoDB's text code, TESS's word, ESD's and IEMOCAP's
transcript, a manifest's ``sentence`` column).

- :func:`text_key`: the comparable form of a text (Unicode NFKC, case-folded, punctuation dropped, spaces
  collapsed), so "Kids are talking by the door." and "kids are talking by the door" are one text. Texts are
  compared as the corpora spell them: a code (CREMA-D's ``IEO``) matches only the same code.
- :func:`record_training_texts` writes ``RUN/training_texts.json`` (the text keys of the training and validation
  utterances); :func:`training_texts` reads it back (a fold ensemble: its members' together), and
  :func:`text_overlap` is the share of test utterances whose text is among them: ``text_overlap`` in
  ``RUN/metrics/<corpus>.json``, null when the test utterances or the training ones record no text.
- :func:`disjoint_texts`: the text half of ``data.split.disjoint: [speaker, text]``: given a speaker-disjoint
  assignment, a share of the texts the test speakers say (the share the test part has of the utterances) is
  kept for test and the rest for train/val; test utterances saying a training text and train/val utterances
  saying a test text are left out (:class:`TextCost` counts them). The cost is the price of the measurement:
  with RAVDESS's 2 statements about half the corpus, with CREMA-D's 12 sentences far less.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from emoshift.core.io import atomic_write_json, read_json
from emoshift.core.rundir import RunDir, RunError

NORMALISATION = "NFKC, case-folded, punctuation dropped, whitespace collapsed"
_PUNCT = re.compile(r"[^\w\s]")


class _HasText(Protocol):
    @property
    def sentence(self) -> str | None: ...


def text_key(sentence: str | None) -> str | None:
    """The comparable form of a spoken text; None for no text (None, empty, or only punctuation)."""
    if sentence is None:
        return None
    key = " ".join(_PUNCT.sub("", unicodedata.normalize("NFKC", sentence).casefold()).split())
    return key or None


def texts_of(utterances: Iterable[_HasText]) -> set[str]:
    """The text keys the utterances say (utterances without text add nothing)."""
    return {k for u in utterances if (k := text_key(u.sentence)) is not None}


# --------------------------------------------------------------------------------------------------------
# The record of a run's training texts, and the overlap measured at evaluation
# --------------------------------------------------------------------------------------------------------


def record_training_texts(run: RunDir, utterances: Iterable[_HasText]) -> None:
    """Write ``RUN/training_texts.json``: the texts the run learned from (its training and validation
    utterances), and how many of those utterances had no text (the overlap is then a lower bound)."""
    utts = list(utterances)
    texts = texts_of(utts)
    record = {
        "normalisation": NORMALISATION,
        "utterances": len(utts),
        "without_text": sum(text_key(u.sentence) is None for u in utts),
        "texts": sorted(texts),
    }
    atomic_write_json(run.training_texts, record)


def training_texts(run: RunDir) -> set[str] | None:
    """The texts a run (a fold ensemble: all its members) trained on; None when it recorded none (a run made
    before texts were recorded, or training corpora that record no text)."""
    path = run.training_texts
    if path.is_file():
        data = read_json(path, RunError)
        texts = data.get("texts") if isinstance(data, dict) else None
        if not isinstance(texts, list):
            raise RunError(f"{path} has no 'texts' list")
        return {str(t) for t in texts} or None
    try:
        members = run.info().members if run.model_json.is_file() else None
    except RunError:
        return None
    found: set[str] | None = None
    for rel in members or []:
        part = training_texts(RunDir.of(run.path / str(rel)))
        if part is not None:
            found = (found or set()) | part
    return found


def text_hits(test: Iterable[_HasText], seen: set[str] | None) -> tuple[int, int] | None:
    """(test utterances whose text is in ``seen``, test utterances with a text); None when ``seen`` is unknown."""
    if seen is None:
        return None
    keys = [k for u in test if (k := text_key(u.sentence)) is not None]
    return sum(k in seen for k in keys), len(keys)


def overlap_share(hits: Iterable[tuple[int, int] | None]) -> float | None:
    """The share of several parts' :func:`text_hits` together (the folds of a pooled score); None when no part
    knows its training texts or no test utterance has a text."""
    known = [h for h in hits if h is not None]
    n = sum(h[1] for h in known)
    return sum(h[0] for h in known) / n if n else None


def text_overlap(test: Iterable[_HasText], seen: set[str] | None) -> float | None:
    """The share of test utterances (those with a text) whose text is in ``seen``; None when no test
    utterance has a text or the training texts are unknown."""
    return overlap_share([text_hits(test, seen)])


def overlap_mark(share: object) -> str:
    """How a score whose test texts were heard in training is marked wherever a leaky one says LEAKY:
    ``"TEXT OVERLAP 50%"``; empty for no overlap or an unknown one (a metrics file's ``text_overlap``)."""
    if isinstance(share, bool) or not isinstance(share, int | float) or share <= 0:
        return ""
    return f"TEXT OVERLAP {share:.0%}"


# --------------------------------------------------------------------------------------------------------
# Text-disjoint parts
# --------------------------------------------------------------------------------------------------------


class TextSplitError(ValueError):
    """A text-disjoint split the corpus does not allow (no texts, one text, nothing left to test)."""


@dataclass(frozen=True)
class TextCost:
    """What keeping texts disjoint cost one split: utterances left out per part, of how many."""

    test_texts: int  # texts kept for the test part
    train_texts: int  # texts kept for train and val
    dropped: Mapping[str, int]  # part -> utterances left out ("train", "val", "test")
    before: int  # utterances assigned before

    @property
    def total(self) -> int:
        return sum(self.dropped.values())

    def as_dict(self) -> dict[str, object]:
        """What RUN/done.json keeps of it (``text_disjoint.<corpus>``)."""
        return {"test_texts": self.test_texts, "train_texts": self.train_texts, "left_out": dict(self.dropped),
                "of": self.before}

    def summary(self) -> str:
        """One line, e.g. "text-disjoint: 1 test text, 1 training text; left out 720 of 1440 utterances (50%:
        train 504, val 96, test 120)"."""
        parts = ", ".join(f"{p} {n}" for p, n in self.dropped.items() if n)
        share = self.total / self.before if self.before else 0.0
        return (
            f"text-disjoint: {self.test_texts} test text(s), {self.train_texts} training text(s); left out "
            f"{self.total} of {self.before} utterances ({share:.0%}{': ' + parts if parts else ''})"
        )


def disjoint_texts(
    assignment: Mapping[str, str], texts: Mapping[str, str | None], *, share: float, seed: Iterable[int]
) -> tuple[dict[str, str], TextCost]:
    """``assignment`` (utterance id -> part) with no test text among the train/val texts.

    ``texts``: utterance id -> text key. About ``share`` of the corpus's texts (at least one) are drawn for
    test among those the test part says, deterministically for ``seed``, never the last text the train/val
    part says; test keeps its utterances that say a test text, train and val those that say another. A test
    utterance without a text cannot be shown disjoint and is left out; a train/val one without a text stays
    (it says no known test text). TextSplitError when the corpus has fewer than two texts or a part would be
    left empty.
    """
    known = sorted({t for i in assignment if (t := texts.get(i)) is not None})
    if not known:
        raise TextSplitError(
            "its utterances record no text, so data.split.disjoint cannot include 'text' "
            "(drop 'text', or give the corpus a sentence column)"
        )
    if len(known) < 2:
        raise TextSplitError(
            f"every utterance says the same text ({known[0]!r}), so no split keeps texts disjoint; "
            "drop 'text' from data.split.disjoint"
        )
    said = {part: {t for i, p in assignment.items() if p == part and (t := texts.get(i)) is not None}
            for part in ("train", "val", "test")}
    training = said["train"] | said["val"]
    candidates = sorted(said["test"])
    wanted = max(1, round(share * len(known)))
    test_texts: set[str] = set()
    for i in np.random.default_rng(list(seed)).permutation(len(candidates)):
        t = candidates[i]
        if len(test_texts) == wanted:
            break
        if not training - test_texts - {t}:  # the training part would have nothing left to say
            continue
        test_texts.add(t)
    out: dict[str, str] = {}
    dropped = dict.fromkeys(("train", "val", "test"), 0)
    for uid, part in assignment.items():
        t = texts.get(uid)
        keep = (t in test_texts) if part == "test" else (t not in test_texts)
        if keep:
            out[uid] = part
        else:
            dropped[part] += 1
    cost = TextCost(len(test_texts), len(known) - len(test_texts), dropped, len(assignment))
    if any(p == "test" for p in assignment.values()) and not any(p == "test" for p in out.values()):
        raise TextSplitError(f"a text-disjoint split leaves no test utterance ({cost.summary()})")
    if not any(p == "train" for p in out.values()):
        raise TextSplitError(f"a text-disjoint split leaves no training utterance ({cost.summary()})")
    return out, cost


def shared_text(corpus: str) -> str | None:
    """The text every utterance of a registered corpus shares and a split cannot keep apart (TESS's carrier
    phrase "Say the word"), from the loader's ``SHARED_TEXT``; None for other corpora."""
    from emoshift.corpora import UnknownCorpusError, get_corpus

    try:
        return getattr(get_corpus(corpus), "SHARED_TEXT", None)
    except UnknownCorpusError:
        return None
