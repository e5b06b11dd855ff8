"""Speaker-independent train/val/test splits, and a guard against speaker leakage.

Emotion corpora are acted: every actor reads the same sentences in every emotion. Splitting *clips* at random
puts the same voice (often the same sentence) in train and test, and the model is then graded on voices it has
memorised. Every split here is therefore by speaker unless the caller asks for ``random`` explicitly, and such
a split carries ``leaky=True`` so that every number measured on it can say so.

Methods
- ``speaker``: speakers divided by ratio (default 0.7/0.15/0.15), stratified by gender: each gender's speakers
  are divided in proportion, so each part holds both genders when there are enough speakers. Speakers whose
  gender is unknown form a stratum of their own.
- ``kfold``: speakers dealt into k folds (gender-stratified); fold i is the test part of split i, and a
  ``val_fraction`` of the remaining speakers is held out for validation. ``k`` is one number for every corpus
  or one per corpus (``k: {ravdess: 6, crema-d: 5}``); see "Unequal fold counts" below.
- ``loso``: leave one speaker out; one split per speaker.
- ``corpus``: the folds the corpus defines itself (``Utterance.fold``: IEMOCAP's sessions, MSP-Podcast's
  partitions, a manifest's ``fold`` column); fold i's utterances are the test part of split i, validation
  speakers are carved from the rest. Folds that share speakers (ESD's train/evaluation/test) give leaky splits.
- ``explicit``: speaker lists for train/val/test; speakers in no list are left out.
- ``random``: utterance-level, refused unless ``allow_leak=True``; the split is marked leaky.

``disjoint: [speaker, text]`` (``SplitConfig.disjoint``) makes each split above disjoint in spoken text too,
where the corpus records it (``Utterance.sentence``): the share of texts that the test part has of the utterances
is drawn for test, and the utterances that would cross (a test speaker saying a training text, a training
speaker saying a test text) are left out; :attr:`Split.text_cost` says how many
(:func:`emoshift.data.texts.disjoint_texts`). A corpus without texts, or with one, is refused in one line.

``kfold``, ``loso`` and ``corpus`` give several splits (:func:`make_folds`); ``fold`` picks one of them
(:func:`make_split`), and leaving it unset asks the trainer to run them all (``emoshift.training.folds``).
All methods are deterministic for a seed. A split is saved as a three-column CSV ``id,speaker,split``.

Unequal fold counts (``kfold`` with a per-corpus ``k``, several training corpora)
    Fold run i trains one model on fold i's split of every training corpus, so a run makes
    ``max(k)`` fold runs. Corpus c is dealt into its own ``k_c`` speaker folds, and fold run i tests corpus
    c's fold i when ``i < k_c``. In the fold runs ``i >= k_c`` corpus c is *training-only*: none of its
    speakers is tested, all of them train (a ``val_fraction`` held out for validation), so every fold model
    still learns from every corpus. Each speaker of c is therefore in the test part of exactly one fold run
    (the one of its fold, ``< k_c``), and that run's model never saw it; the pooled out-of-fold predictions
    cover every speaker of every corpus exactly once. Fold runs ``>= k_c`` add no out-of-fold prediction and
    no per-fold score for c (its ``folds`` list has ``k_c`` entries). With ``k: {ravdess: 6, crema-d: 5}``:
    6 fold runs; runs 0-4 test a RAVDESS fold and a CREMA-D fold, run 5 tests RAVDESS fold 5 and trains on
    all of CREMA-D. The alternatives were worse: cycling a shorter corpus's folds (fold ``i mod k_c``) tests
    speakers twice, and dropping the corpus from runs ``>= k_c`` turns those fold models into models of
    fewer corpora, mixed into the ensemble that scores unseen corpora.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from emoshift.config.split import DEFAULT_RATIOS, FOLD_METHODS, SplitConfig, check_ratios, corpus_key
from emoshift.core.errors import EmoshiftError
from emoshift.core.io import atomic_open
from emoshift.data.texts import TextCost, disjoint_texts, text_key

PARTS: tuple[str, ...] = ("train", "val", "test")
UNKNOWN_GENDER = "unknown"


class SpeakerLeakError(EmoshiftError):
    """The same speaker sits in the test part and in train or val (message names the speakers)."""


class _HasSpeaker(Protocol):
    """What a split needs from an utterance (``emoshift.corpora.Utterance`` has it)."""

    @property
    def id(self) -> str: ...
    @property
    def speaker(self) -> str: ...
    @property
    def gender(self) -> str | None: ...


class _HasFold(_HasSpeaker, Protocol):
    @property
    def fold(self) -> str | None: ...
    @property
    def sentence(self) -> str | None: ...


@dataclass(frozen=True)
class Split:
    """Which part each utterance belongs to. Utterances left out of every part are absent."""

    assignment: dict[str, str]  # utterance id -> "train" | "val" | "test"
    speakers: dict[str, str]  # utterance id -> speaker
    leaky: bool = False  # True when speakers may be shared between parts (a random split)
    method: str = "speaker"
    text_cost: TextCost | None = None  # disjoint in text too: the utterances that cost (None: by speaker only)

    def ids(self, part: str) -> list[str]:
        """Utterance ids in ``part``, sorted."""
        _check_part(part)
        return sorted(i for i, p in self.assignment.items() if p == part)

    def speakers_of(self, part: str) -> list[str]:
        """Speakers with at least one utterance in ``part``, sorted."""
        _check_part(part)
        return sorted({self.speakers[i] for i, p in self.assignment.items() if p == part})

    def counts(self) -> dict[str, dict[str, int]]:
        """Utterances and speakers per part, e.g. ``{"train": {"utterances": 960, "speakers": 16}, ...}``."""
        return {p: {"utterances": len(self.ids(p)), "speakers": len(self.speakers_of(p))} for p in PARTS}


def _check_part(part: str) -> None:
    if part not in PARTS:
        raise ValueError(f"unknown split part {part!r}; expected one of {', '.join(PARTS)}")


# --------------------------------------------------------------------------------------------------------
# The leak guard
# --------------------------------------------------------------------------------------------------------


def shared_speakers(split: Split) -> list[str]:
    """Speakers found in the test part and also in train or val."""
    test = set(split.speakers_of("test"))
    return sorted(test & (set(split.speakers_of("train")) | set(split.speakers_of("val"))))


def check_disjoint(split: Split, allow_leak: bool = False) -> list[str]:
    """Raise :class:`SpeakerLeakError` if train or val shares a speaker with test, unless ``allow_leak``.

    Returns the shared speakers (empty for a clean split), so a caller that allows the leak can report it.
    """
    shared = shared_speakers(split)
    if shared and not allow_leak:
        shown = ", ".join(shared[:10]) + (f" and {len(shared) - 10} more" if len(shared) > 10 else "")
        raise SpeakerLeakError(
            f"{len(shared)} speaker(s) appear in both test and train/val: {shown}; "
            "split by speaker, or allow the leak explicitly (the run will be marked leaky)"
        )
    return shared


# --------------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------------


def _speaker_table(utterances: Iterable[_HasSpeaker]) -> tuple[dict[str, str], dict[str, str]]:
    """(utterance id -> speaker, speaker -> gender stratum). A speaker's stratum is its known gender."""
    speakers: dict[str, str] = {}
    strata: dict[str, str] = {}
    for u in utterances:
        if u.id in speakers:
            raise ValueError(f"duplicate utterance id {u.id!r}")
        speakers[u.id] = u.speaker
        if u.gender:
            strata[u.speaker] = u.gender.lower()
        else:
            strata.setdefault(u.speaker, UNKNOWN_GENDER)
    if not speakers:
        raise ValueError("no utterances to split")
    return speakers, strata


def _allocate(n: int, ratios: Sequence[float]) -> list[int]:
    """Split ``n`` items into parts by ``ratios`` (largest remainder), every part with a positive ratio getting
    at least one item when ``n`` allows; test is served before val when there are too few items for all."""
    exact = [n * r for r in ratios]
    counts = [int(np.floor(x)) for x in exact]
    # largest remainder first; on a tie the later part (test before val before train) wins
    order = sorted(range(len(ratios)), key=lambda i: (-round(exact[i] - counts[i], 9), -i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    priority = [0, 2, 1][: len(ratios)] if len(ratios) == 3 else list(range(len(ratios)))
    for i in priority:
        if ratios[i] > 0 and counts[i] == 0:
            donor = max(range(len(counts)), key=lambda j: counts[j])
            if counts[donor] <= 1:
                break  # too few items to give every part one
            counts[donor] -= 1
            counts[i] += 1
    return counts


def _shuffled(items: Iterable[str], rng: np.random.Generator) -> list[str]:
    items = sorted(items)
    return [items[i] for i in rng.permutation(len(items))]


def _by_stratum(speakers: Iterable[str], strata: dict[str, str], stratify: bool) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for s in sorted(speakers):
        groups.setdefault(strata[s] if stratify else "all", []).append(s)
    return groups


def _divide(
    speakers: Iterable[str],
    strata: dict[str, str],
    ratios: Sequence[float],
    parts: Sequence[str],
    rng: np.random.Generator,
    stratify: bool = True,
) -> dict[str, str]:
    """speaker -> part: each stratum's speakers shuffled and cut by ``ratios``."""
    out: dict[str, str] = {}
    for _, group in sorted(_by_stratum(speakers, strata, stratify).items()):
        order = _shuffled(group, rng)
        start = 0
        for part, count in zip(parts, _allocate(len(order), ratios), strict=True):
            out.update({s: part for s in order[start : start + count]})
            start += count
    return out


def _from_speaker_parts(speakers: dict[str, str], speaker_part: dict[str, str], method: str) -> Split:
    assignment = {i: speaker_part[s] for i, s in speakers.items() if s in speaker_part}
    return Split(
        assignment=assignment,
        speakers={i: speakers[i] for i in assignment},
        leaky=False,
        method=method,
    )


def _holdout_val(
    rest: list[str], strata: dict[str, str], val_fraction: float, rng: np.random.Generator
) -> dict[str, str]:
    """Divide the non-test speakers into train and val (gender-stratified)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if val_fraction == 0.0:
        return {s: "train" for s in rest}
    return _divide(rest, strata, (1.0 - val_fraction, val_fraction), ("train", "val"), rng)


# --------------------------------------------------------------------------------------------------------
# Split methods
# --------------------------------------------------------------------------------------------------------


def speaker_split(
    utterances: Iterable[_HasSpeaker],
    *,
    ratios: Sequence[float] = DEFAULT_RATIOS,
    seed: int = 0,
    stratify: str | None = "gender",
) -> Split:
    """Speaker-disjoint train/val/test by ``ratios`` of speakers, gender-stratified unless ``stratify=None``."""
    if stratify not in ("gender", None):
        raise ValueError(f"stratify must be 'gender' or None, got {stratify!r}")
    r = check_ratios(ratios)
    speakers, strata = _speaker_table(utterances)
    rng = np.random.default_rng(seed)
    part = _divide(set(speakers.values()), strata, r, PARTS, rng, stratify=stratify == "gender")
    return _from_speaker_parts(speakers, part, "speaker")


def _fold_of_speakers(all_speakers: list[str], strata: dict[str, str], k: int, seed: int) -> dict[str, int]:
    """speaker -> fold: shuffled within each gender, dealt round-robin into k folds across genders."""
    rng = np.random.default_rng(seed)
    fold_of: dict[str, int] = {}
    dealt = 0
    for _, group in sorted(_by_stratum(all_speakers, strata, True).items()):
        for s in _shuffled(group, rng):
            fold_of[s] = dealt % k
            dealt += 1
    return fold_of


def kfold_speaker_splits(
    utterances: Iterable[_HasSpeaker], *, k: int = 5, seed: int = 0, val_fraction: float = 0.15
) -> list[Split]:
    """k speaker-disjoint splits; every speaker is in the test part of exactly one of them.

    Speakers are shuffled within each gender and dealt round-robin into folds, continuing across genders,
    so folds differ in size by at most one speaker and each fold holds both genders when possible.
    """
    speakers, strata = _speaker_table(utterances)
    all_speakers = sorted(set(speakers.values()))
    if not 2 <= k <= len(all_speakers):
        raise ValueError(f"k must be between 2 and the number of speakers ({len(all_speakers)}), got {k}")
    fold_of = _fold_of_speakers(all_speakers, strata, k, seed)
    splits = []
    for fold in range(k):
        test = [s for s in all_speakers if fold_of[s] == fold]
        rest = [s for s in all_speakers if fold_of[s] != fold]
        part = _holdout_val(rest, strata, val_fraction, np.random.default_rng([seed, fold]))
        part.update({s: "test" for s in test})
        splits.append(_from_speaker_parts(speakers, part, "kfold"))
    return splits


def training_only_split(
    utterances: Iterable[_HasSpeaker], *, fold: int, seed: int = 0, val_fraction: float = 0.15
) -> Split:
    """Fold run ``fold`` of a corpus with fewer folds: no test part, every speaker trains (a ``val_fraction``
    held out for validation, gender-stratified). See "Unequal fold counts" in the module docstring."""
    speakers, strata = _speaker_table(utterances)
    part = _holdout_val(sorted(set(speakers.values())), strata, val_fraction, np.random.default_rng([seed, fold]))
    return _from_speaker_parts(speakers, part, "kfold")


def loso_splits(
    utterances: Iterable[_HasSpeaker], *, seed: int = 0, val_fraction: float = 0.15
) -> list[Split]:
    """Leave-one-speaker-out: one split per speaker (sorted by speaker), that speaker alone in test."""
    speakers, strata = _speaker_table(utterances)
    all_speakers = sorted(set(speakers.values()))
    if len(all_speakers) < 2:
        raise ValueError("leave-one-speaker-out needs at least two speakers")
    splits = []
    for i, held in enumerate(all_speakers):
        rest = [s for s in all_speakers if s != held]
        part = _holdout_val(rest, strata, val_fraction, np.random.default_rng([seed, i]))
        part[held] = "test"
        splits.append(_from_speaker_parts(speakers, part, "loso"))
    return splits


def corpus_fold_names(utterances: Iterable[_HasFold]) -> list[str]:
    """The folds a corpus defines (``Utterance.fold``), sorted; empty when it defines none."""
    return sorted({u.fold for u in utterances if u.fold})


def corpus_splits(
    utterances: Iterable[_HasFold], *, seed: int = 0, val_fraction: float = 0.15
) -> list[Split]:
    """One split per corpus-defined fold (sorted by name): that fold's utterances are the test part, the rest
    train, with a ``val_fraction`` of the remaining speakers held out for validation (gender-stratified).

    Utterances without a fold are never tested (they train). When a fold shares speakers with the rest (ESD's
    train/evaluation/test folders hold every speaker), the split is marked leaky instead of refused: those are
    the corpus's own folds, and every score on them says so.
    """
    utterances = list(utterances)
    names = corpus_fold_names(utterances)
    if len(names) < 2:
        raise ValueError(
            f"split method 'corpus' needs the corpus's own folds (at least two), found {len(names)}"
        )
    speakers, strata = _speaker_table(utterances)
    fold_of = {u.id: u.fold for u in utterances}
    splits = []
    for i, name in enumerate(names):
        rest = sorted({speakers[u] for u, f in fold_of.items() if f != name})
        part = _holdout_val(rest, strata, val_fraction, np.random.default_rng([seed, i]))
        assignment = {u: ("test" if f == name else part[speakers[u]]) for u, f in fold_of.items()}
        split = Split(assignment=assignment, speakers=dict(speakers), leaky=False, method="corpus")
        if shared_speakers(split):
            split = Split(assignment=assignment, speakers=dict(speakers), leaky=True, method="corpus")
        splits.append(split)
    return splits


def _resolve(names: Sequence[str], known: set[str], part: str) -> list[str]:
    """Match listed speakers to the corpus's speaker ids: exact, else a unique ``<corpus>/<name>`` suffix."""
    out = []
    for name in names:
        if name in known:
            out.append(name)
            continue
        hits = [s for s in known if s.rsplit("/", 1)[-1] == name]
        if len(hits) != 1:
            why = "matches several speakers" if hits else "is not a speaker of these utterances"
            examples = ", ".join(sorted(known)[:3])
            raise ValueError(f"{part} speaker {name!r} {why} (speakers look like: {examples})")
        out.append(hits[0])
    return out


def explicit_split(
    utterances: Iterable[_HasSpeaker],
    *,
    train: Sequence[str],
    val: Sequence[str] = (),
    test: Sequence[str],
) -> Split:
    """Speakers listed per part; speakers in no list are left out. A speaker may be listed only once."""
    speakers, _ = _speaker_table(utterances)
    known = set(speakers.values())
    part: dict[str, str] = {}
    for name, listed in (("train", train), ("val", val), ("test", test)):
        for s in _resolve(listed, known, name):
            if s in part and part[s] != name:
                raise SpeakerLeakError(f"speaker {s} is listed in both {part[s]} and {name}")
            part[s] = name
    if not any(p == "train" for p in part.values()) or not any(p == "test" for p in part.values()):
        raise ValueError("an explicit split needs at least one train speaker and one test speaker")
    return _from_speaker_parts(speakers, part, "explicit")


def random_split(
    utterances: Iterable[_HasSpeaker],
    *,
    ratios: Sequence[float] = DEFAULT_RATIOS,
    seed: int = 0,
    allow_leak: bool = False,
) -> Split:
    """Utterance-level random split. Refused unless ``allow_leak=True``; the result is always leaky."""
    if not allow_leak:
        raise SpeakerLeakError(
            "a random split puts the same speakers in train and test (scores then measure memorised voices); "
            "pass allow_leak=True to run it anyway, marked leaky"
        )
    r = check_ratios(ratios)
    speakers, _ = _speaker_table(utterances)
    order = _shuffled(speakers, np.random.default_rng(seed))
    assignment: dict[str, str] = {}
    start = 0
    for part, count in zip(PARTS, _allocate(len(order), r), strict=True):
        assignment.update({i: part for i in order[start : start + count]})
        start += count
    return Split(assignment=assignment, speakers=dict(speakers), leaky=True, method="random")


def text_disjoint(split: Split, utterances: Iterable[_HasFold], *, seed: int, fold: int) -> Split:
    """``split`` made disjoint in spoken text too (see the module docstring); TextSplitError (a ValueError)
    where the corpus does not allow it. The texts drawn for test depend on ``seed`` and ``fold``."""
    texts = {u.id: text_key(u.sentence) for u in utterances}
    tested = sum(p == "test" for p in split.assignment.values())
    share = tested / len(split.assignment) if split.assignment else 0.0
    assignment, cost = disjoint_texts(split.assignment, texts, share=share, seed=(seed, fold, 7))
    speakers = {i: split.speakers[i] for i in assignment}
    return Split(assignment, speakers, leaky=split.leaky, method=split.method, text_cost=cost)


def make_folds(utterances: Iterable[_HasFold], cfg: SplitConfig, *, corpus: str | None = None) -> list[Split]:
    """Every split of a fold method (``kfold``, ``loso``, ``corpus``) of one corpus, in fold order: the folds
    that test it (``kfold`` with a per-corpus ``k``: ``k[corpus]`` of them, see "Unequal fold counts");
    disjoint in text too when ``cfg.disjoint`` says so."""
    utterances = list(utterances)
    folds = _speaker_folds(utterances, cfg, corpus)
    if not cfg.text_disjoint:
        return folds
    return [text_disjoint(f, utterances, seed=cfg.seed, fold=i) for i, f in enumerate(folds)]


def _speaker_folds(utterances: list[_HasFold], cfg: SplitConfig, corpus: str | None) -> list[Split]:
    if cfg.method == "kfold":
        k = cfg.k_for(corpus)
        n = len({u.speaker for u in utterances})
        if k > n:
            key = "data.split.k" + (f".{corpus_key(corpus)}" if corpus and isinstance(cfg.k, dict) else "")
            raise ValueError(f"{key} is {k} but the corpus has {n} speakers (k must be at most the speakers)")
        return kfold_speaker_splits(utterances, k=k, seed=cfg.seed, val_fraction=cfg.val_fraction)
    if cfg.method == "loso":
        return loso_splits(utterances, seed=cfg.seed, val_fraction=cfg.val_fraction)
    if cfg.method == "corpus":
        return corpus_splits(utterances, seed=cfg.seed, val_fraction=cfg.val_fraction)
    raise ValueError(f"split method {cfg.method!r} has no folds (fold methods: {', '.join(FOLD_METHODS)})")


def make_split(utterances: Iterable[_HasSpeaker], cfg: SplitConfig, *, corpus: str | None = None) -> Split:
    """Build the split ``cfg`` describes (fold ``cfg.fold`` of a fold method) for ``corpus`` (needed by a
    per-corpus ``k``) and run the leak guard on it.

    A corpus-defined fold that shares speakers with the rest is not refused but comes back marked leaky. A
    ``kfold`` fold at or past the corpus's own ``k`` (below the largest) is its training-only split.
    """
    utterances = list(utterances)
    if cfg.method in FOLD_METHODS:
        if cfg.fold is None:
            raise ValueError(f"split method {cfg.method!r} needs a fold (data.split.fold) for a single split")
        folds = make_folds(utterances, cfg, corpus=corpus)  # type: ignore[arg-type]
        if cfg.method == "kfold" and len(folds) <= cfg.fold < cfg.max_k:
            split = training_only_split(utterances, fold=cfg.fold, seed=cfg.seed, val_fraction=cfg.val_fraction)
        elif cfg.fold >= len(folds):
            raise ValueError(
                f"{cfg.method} fold must be between 0 and {len(folds) - 1} "
                f"({'one per speaker' if cfg.method == 'loso' else 'one per fold'}), got {cfg.fold}"
            )
        else:
            split = folds[cfg.fold]
    elif cfg.method == "speaker":
        split = speaker_split(utterances, ratios=cfg.ratios, seed=cfg.seed, stratify=cfg.stratify)
    elif cfg.method == "explicit":
        split = explicit_split(utterances, train=cfg.train or [], val=cfg.val or [], test=cfg.test or [])
    else:
        split = random_split(utterances, ratios=cfg.ratios, seed=cfg.seed, allow_leak=cfg.allow_leak)
    if cfg.text_disjoint and cfg.method not in FOLD_METHODS:  # the folds are made text-disjoint by make_folds
        split = text_disjoint(split, utterances, seed=cfg.seed, fold=0)  # type: ignore[arg-type]
    check_disjoint(split, allow_leak=cfg.allow_leak or split.method == "corpus")
    return split


# --------------------------------------------------------------------------------------------------------
# Persistence: id,speaker,split
# --------------------------------------------------------------------------------------------------------

CSV_COLUMNS: tuple[str, ...] = ("id", "speaker", "split")


def save_split(split: Split, path: str | os.PathLike[str]) -> Path:
    """Write ``id,speaker,split`` rows sorted by id, atomically (temp file, then rename)."""
    path = Path(path)
    with atomic_open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for i in sorted(split.assignment):
            writer.writerow([i, split.speakers[i], split.assignment[i]])
    return path


def load_split(path: str | os.PathLike[str]) -> Split:
    """Read a split CSV. ``leaky`` is recovered from the data: true when test shares a speaker with train/val."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split file not found: {path}")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != CSV_COLUMNS:
            raise ValueError(f"{path}: expected columns {','.join(CSV_COLUMNS)}, found {reader.fieldnames}")
        assignment: dict[str, str] = {}
        speakers: dict[str, str] = {}
        for line, row in enumerate(reader, start=2):
            uid, speaker, part = row["id"], row["speaker"], row["split"]
            if part not in PARTS:
                raise ValueError(f"{path}:{line}: split must be one of {', '.join(PARTS)}, got {part!r}")
            if uid in assignment:
                raise ValueError(f"{path}:{line}: duplicate id {uid!r}")
            assignment[uid], speakers[uid] = part, speaker
    split = Split(assignment=assignment, speakers=speakers, leaky=False, method="file")
    if shared_speakers(split):
        split = Split(assignment=assignment, speakers=speakers, leaky=True, method="file")
    return split
