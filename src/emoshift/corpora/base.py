"""What every corpus loader shares: the `Utterance` record, the `Scan` result, label policies, validation.

A corpus module (``emoshift/corpora/<name>.py``) is one pure function ``scan(root, labels="six") -> Scan``
plus its label map, in the manner of lhotse's recipes. Everything a scan returns goes through
:func:`validate` before it reaches the caller.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from emoshift.core.errors import EmoshiftError

# Canonical (harmonised) emotion names. Every corpus maps its native codes onto these.
EMOTIONS: tuple[str, ...] = (
    "angry",
    "boredom",
    "calm",
    "disgust",
    "fearful",
    "happy",
    "neutral",
    "sad",
    "surprised",
)

LabelPolicy = Literal["six", "calm-as-neutral", "four", "native"]
LABEL_POLICIES: tuple[str, ...] = ("six", "calm-as-neutral", "four", "native")

SIX: tuple[str, ...] = ("angry", "disgust", "fearful", "happy", "neutral", "sad")
FOUR: tuple[str, ...] = ("angry", "happy", "neutral", "sad")


class CorpusError(EmoshiftError):
    """ROOT does not look like the corpus asked for (message is one line, for the user)."""


class UnknownCorpusError(CorpusError, KeyError):
    """A corpus name that is not registered. A KeyError too (a name lookup), but its ``str`` is the message
    itself, without the quotes KeyError adds."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ScanValidationError(Exception):
    """A scan broke an invariant (duplicate ids, unknown labels, a speaker with two genders)."""


@dataclass(frozen=True, slots=True)
class Utterance:
    """One labelled clip. Fields that a corpus does not record are None."""

    id: str  # unique across corpora: "<corpus>/<file stem>"
    path: str  # absolute path to the audio file
    corpus: str  # registry name, e.g. "ravdess", "crema-d"
    speaker: str  # unique across corpora: "<corpus>/<speaker id>"
    gender: str | None  # "male" | "female" | None
    emotion: str  # harmonised label under the scan's label policy
    native_label: str  # the corpus's own code, e.g. "05" (RAVDESS) or "ANG" (CREMA-D)
    intensity: str | None = None  # "normal" | "strong" (RAVDESS); "low" | "medium" | "high" | "unspecified" (CREMA-D)
    sentence: str | None = None
    age: int | None = None
    race: str | None = None
    ethnicity: str | None = None
    duration_s: float | None = None

    def to_row(self) -> dict[str, object]:
        return dataclasses.asdict(self)


UTTERANCE_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Utterance))


@dataclass(frozen=True, slots=True)
class Skipped:
    """A file that was not kept, and why (shown to the user; never silently dropped)."""

    path: str
    reason: str


@dataclass(slots=True)
class Scan:
    """The result of scanning one corpus root."""

    corpus: str
    root: str
    labels: str
    utterances: list[Utterance] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    # native emotions left out by the label policy, with counts (e.g. {"calm": 192, "surprised": 192})
    left_out: Counter[str] = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)

    @property
    def speakers(self) -> list[str]:
        return sorted({u.speaker for u in self.utterances})

    @property
    def label_set(self) -> list[str]:
        return sorted({u.emotion for u in self.utterances})

    def skipped_by_reason(self) -> Counter[str]:
        return Counter(_reason_kind(s.reason) for s in self.skipped)


def _reason_kind(reason: str) -> str:
    """Group reasons like "unreadable: <libsndfile message>" under their kind."""
    return reason.split(":", 1)[0].strip()


def harmonise(emotion: str, policy: str) -> str | None:
    """Map a canonical emotion to its label under ``policy``; None means left out by the policy."""
    if emotion not in EMOTIONS:
        raise ValueError(f"unknown canonical emotion {emotion!r}; expected one of {', '.join(EMOTIONS)}")
    if policy == "native":
        return emotion
    if policy == "calm-as-neutral" and emotion == "calm":
        return "neutral"
    allowed = FOUR if policy == "four" else SIX
    return emotion if emotion in allowed else None


def check_policy(policy: str) -> None:
    if policy not in LABEL_POLICIES:
        raise ValueError(f"unknown label policy {policy!r}; choose one of: {', '.join(LABEL_POLICIES)}")


def validate(scan: Scan) -> Scan:
    """Shared checks after every scan: unique ids, known labels, one gender per speaker."""
    seen: set[str] = set()
    dupes: list[str] = []
    for u in scan.utterances:
        if u.id in seen:
            dupes.append(u.id)
        seen.add(u.id)
    if dupes:
        raise ScanValidationError(f"{scan.corpus}: {len(dupes)} duplicate utterance ids, e.g. {dupes[0]}")
    allowed = set(EMOTIONS) if scan.labels == "native" else set(SIX)
    bad = sorted({u.emotion for u in scan.utterances} - allowed)
    if bad:
        raise ScanValidationError(f"{scan.corpus}: labels {bad} are not valid under policy {scan.labels!r}")
    genders: dict[str, set[str]] = {}
    for u in scan.utterances:
        if u.gender is not None:
            genders.setdefault(u.speaker, set()).add(u.gender)
    two = sorted(s for s, g in genders.items() if len(g) > 1)
    if two:
        raise ScanValidationError(f"{scan.corpus}: speakers with two genders: {', '.join(two[:5])}")
    bad_gender = sorted({u.gender for u in scan.utterances if u.gender not in (None, "male", "female")})
    if bad_gender:
        raise ScanValidationError(f"{scan.corpus}: unknown gender values {bad_gender}")
    scan.utterances.sort(key=lambda u: u.id)
    return scan
