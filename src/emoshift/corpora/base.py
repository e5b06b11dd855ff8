"""What every corpus loader shares: the `Utterance` record, the `Scan` result, label policies, validation.

A corpus module (``emoshift/corpora/<name>.py``) is one pure function ``scan(root, labels="six") -> Scan``
plus its label map, in the manner of lhotse's recipes. Everything a scan returns goes through
:func:`validate` before it reaches the caller.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from emoshift.core.errors import EmoshiftError

# Canonical (harmonised) emotion names. Every corpus maps its native codes onto these.
EMOTIONS: tuple[str, ...] = (
    "angry",
    "boredom",
    "calm",
    "contempt",
    "disgust",
    "excited",
    "fearful",
    "frustrated",
    "happy",
    "neutral",
    "sad",
    "surprised",
)

# A rater distribution: (emotion, count) pairs, counts > 0 (shares where a table gives p_<class> columns)
Votes = tuple[tuple[str, float], ...]

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
    # --- optional fields (issue 11). Manifests write their columns only when some utterance has them.
    fold: str | None = None  # corpus-defined fold/partition: IEMOCAP "Session1", MSP-Podcast "Test1", ...
    language: str | None = None  # e.g. "English", "Mandarin"
    start: float | None = None  # seconds: the utterance is the segment start..end of a longer file
    end: float | None = None
    arousal: float | None = None  # dimensional ratings on the corpus's own scale (IEMOCAP 1-5, MSP 1-7)
    valence: float | None = None
    dominance: float | None = None
    agreement: float | None = None  # share of raters who chose ``emotion`` (CREMA-D crowd labels)
    # the raters' votes (issue 22): (harmonised label, count or share) pairs in EMOTIONS order, see harmonise_votes
    votes: Votes | None = None
    # other columns, as sorted (key, value) string pairs so the record stays frozen and hashable
    meta: tuple[tuple[str, str], ...] = ()

    def to_row(self) -> dict[str, object]:
        """Field -> value; ``votes`` as its text (:func:`format_votes`); ``meta`` flattened into one entry per key."""
        row = {f: getattr(self, f) for f in UTTERANCE_FIELDS + OPTIONAL_FIELDS}
        row["votes"] = format_votes(self.votes) if self.votes is not None else None
        row.update(self.meta)
        return row

    def get_meta(self, key: str) -> str | None:
        return dict(self.meta).get(key)


_ALL_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Utterance))
# The stable manifest columns (always written, in this order) ...
UTTERANCE_FIELDS: tuple[str, ...] = _ALL_FIELDS[: _ALL_FIELDS.index("fold")]
# ... and the optional ones, written after them only when some utterance has a value.
OPTIONAL_FIELDS: tuple[str, ...] = tuple(f for f in _ALL_FIELDS[len(UTTERANCE_FIELDS) :] if f != "meta")


def make_meta(items: Iterable[tuple[str, object]]) -> tuple[tuple[str, str], ...]:
    """A ``meta`` value: non-empty entries as sorted string pairs; keys may not shadow Utterance fields."""
    out: dict[str, str] = {}
    for key, value in items:
        if key in _ALL_FIELDS:
            raise ValueError(f"meta key {key!r} is an Utterance field")
        if value is not None and str(value).strip():
            out[str(key)] = str(value).strip()
    return tuple(sorted(out.items()))


# Speakers a corpus does not identify (MSP-Podcast "Unknown", a manifest without a speaker column) get one
# pseudo-speaker per utterance, "<corpus>/unknown:<utterance>", so no splitter mistakes them for one person.
UNKNOWN_SPEAKER_TAG = "unknown:"


def unknown_speaker(corpus: str, utterance: str) -> str:
    return f"{corpus}/{UNKNOWN_SPEAKER_TAG}{utterance}"


def is_unknown_speaker(speaker: str) -> bool:
    return speaker.split("/", 1)[-1].startswith(UNKNOWN_SPEAKER_TAG)


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
    # utterances the corpus's own labels leave out, by reason ("xxx (no majority)": 12), never decoded
    excluded: Counter[str] = field(default_factory=Counter)
    # True when speakers are not known (a manifest without a speaker column, allowed with allow_leak):
    # every split of it may share voices between parts, and every score on it must say so
    leaky: bool = False

    @property
    def speakers(self) -> list[str]:
        return sorted({u.speaker for u in self.utterances})

    @property
    def label_set(self) -> list[str]:
        return sorted({u.emotion for u in self.utterances})

    def skipped_by_reason(self) -> Counter[str]:
        return Counter(_reason_kind(s.reason) for s in self.skipped)


def _segment_ok(start: float | None, end: float | None) -> bool:
    if start is None and end is None:
        return True
    if start is not None and start < 0:
        return False
    return start is None or end is None or end > start


def _reason_kind(reason: str) -> str:
    """Group reasons like "unreadable: <libsndfile message>" under their kind."""
    return reason.split(":", 1)[0].strip()


def harmonise(emotion: str, policy: str) -> str | None:
    """Map a canonical emotion to its label under ``policy``; None means left out by the policy."""
    if emotion not in EMOTIONS:
        raise ValueError(f"unknown canonical emotion {emotion!r}; expected one of {', '.join(EMOTIONS)}")
    if policy == "native":
        return emotion
    if emotion == "excited":  # IEMOCAP: excited is merged into happy (the standard four-class set)
        return "happy"
    if policy == "calm-as-neutral" and emotion == "calm":
        return "neutral"
    allowed = FOUR if policy == "four" else SIX
    return emotion if emotion in allowed else None


def harmonise_votes(votes: Votes | None, policy: str) -> Votes | None:
    """Raters' votes for canonical emotions -> votes under ``policy``, the same mapping as :func:`harmonise`:
    votes for merged classes add up (IEMOCAP excited into happy), votes for a class the policy leaves out are
    dropped, so the distribution is the raters' over the policy's classes. None when no vote is left."""
    if votes is None:
        return None
    out: dict[str, float] = {}
    for emotion, count in votes:
        label = harmonise(emotion, policy)
        if label is not None and count > 0:
            out[label] = out.get(label, 0.0) + float(count)
    return tuple((e, out[e]) for e in EMOTIONS if e in out) or None


def format_votes(votes: Votes) -> str:
    """The manifest's ``votes`` cell: ``angry:3;neutral:2`` (counts as the shortest exact text)."""
    return ";".join(f"{e}:{c:g}" for e, c in votes)


def parse_votes(text: str) -> Votes | None:
    """A ``votes`` cell back (:func:`format_votes`); empty -> None; ValueError (one line) on a bad cell."""
    if not text.strip():
        return None
    out: dict[str, float] = {}
    for part in text.split(";"):
        emotion, sep, count = part.partition(":")
        emotion = emotion.strip().lower()
        try:
            value = float(count) if sep else float("nan")
        except ValueError:
            value = float("nan")
        if emotion not in EMOTIONS or not value >= 0 or emotion in out:
            raise ValueError(f"votes must look like angry:3;neutral:2 (emoshift emotions, counts >= 0), got {text!r}")
        out[emotion] = value
    return tuple((e, out[e]) for e in EMOTIONS if e in out and out[e] > 0) or None


def vote_shares(votes: Votes, labels: Sequence[str]) -> list[float] | None:
    """The raters' distribution over ``labels`` (votes for other classes dropped, the rest renormalised);
    None when no vote falls on ``labels``."""
    counts = dict(votes)
    row = [float(counts.get(lab, 0.0)) for lab in labels]
    total = sum(row)
    return [c / total for c in row] if total > 0 else None


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
    segments = [u.id for u in scan.utterances if not _segment_ok(u.start, u.end)]
    if segments:
        raise ScanValidationError(f"{scan.corpus}: {len(segments)} bad segments (start/end), e.g. {segments[0]}")
    scan.utterances.sort(key=lambda u: u.id)
    return scan
