"""Corpus plans: which files, which speakers, which recording sessions, for a scale and a seed.

Scales (exact counts; ``tiny`` and ``small`` are balanced by gender and every actor has every emotion):

- ``tiny`` (tests): RAVDESS 8 actors (4 m / 4 f) x 16 = 128 files: neutral on both statements, every other
  emotion once at normal and once at strong intensity. CREMA-D 8 actors (4 m / 4 f) x 12 = 96 files: per
  emotion one IEO take (level LO/MD/HI in turn; NEU is XX) and one other sentence (XX). Sentences are cut to
  their first five syllables: clips 0.9-2.9 s, mean 1.5 s.
- ``small`` (``make demo``): RAVDESS 12 actors (6 m / 6 f) x 32 = 384 files: neutral's 4 takes, 4 of the 8 takes
  of every other emotion (both intensities x both statements, repetition drawn). CREMA-D 24 actors
  (12 m / 12 f) x 24 = 576 files: per emotion one IEO take and three other sentences. RAVDESS clips 1.5-4.4 s
  (mean 2.5 s), CREMA-D 1.3-3.7 s (mean 2.1 s).
- ``full`` (the real sizes): RAVDESS 24 actors x 60 = 1,440 files. CREMA-D 91 actors (48 m / 43 f), every IEO
  level and every other sentence at XX, less 20 takes: 7,442 files, ANG DIS FEA HAP SAD 1,271 each and NEU
  1,087 as in the real corpus. RAVDESS clips 2.1-5.4 s (mean 3.2 s), CREMA-D 1.2-4.5 s (mean 2.4 s).

CREMA-D's actors act more subtly (emotion strength 0.5-0.7 of RAVDESS's, then scaled by the LO/MD/HI level).
Speakers and sessions are seeded from (seed, corpus, actor), so a plan does not depend on the order it is made in.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emoshift.core.errors import EmoshiftError
from emoshift.corpora import cremad, ravdess
from emoshift.synth import iemocap, manifest
from emoshift.synth.channel import field_channel, studio_channel
from emoshift.synth.job import FileJob, Scale
from emoshift.synth.speaker import make_speaker, seeded_rng
from emoshift.synth.voice import Sentence


class SynthError(EmoshiftError):
    """Bad arguments or an output folder that cannot be used (message is one line, for the user)."""


SCALES: dict[str, Scale] = {
    "tiny": Scale("tiny", 8, 16, 8, 12, (0.08, 0.15), (0.05, 0.12), max_syllables=5),
    "small": Scale(
        "small", 12, 32, 24, 24, (0.25, 0.4), (0.1, 0.25), iemocap_dialogs=4, iemocap_turns=12,
        manifest_speakers=16, manifest_per_speaker=24,
    ),
    "full": Scale(
        "full", 24, 60, 91, None, (0.5, 0.8), (0.15, 0.35), iemocap_dialogs=8, iemocap_turns=24,
        manifest_speakers=40, manifest_per_speaker=48,
    ),
}


def get_scale(name: str) -> Scale:
    if name not in SCALES:
        raise SynthError(f"unknown scale {name!r}; choose one of: {', '.join(SCALES)}")
    return SCALES[name]


# RAVDESS emotion codes -> canonical names (neutral has no strong intensity).
# The emotion codes are the loaders' own label maps: the generator writes what the loaders read.
RAVDESS_EMOTIONS: dict[str, str] = ravdess.LABEL_MAP
CREMAD_EMOTIONS: dict[str, str] = cremad.LABEL_MAP
RAVDESS_INTENSITY: dict[str, float] = {"01": 1.0, "02": 1.5}  # normal, strong
CREMAD_LEVELS: dict[str, float] = {"LO": 0.7, "MD": 1.0, "HI": 1.3, "XX": 1.0}
CREMAD_RACES: tuple[str, ...] = ("African American", "Asian", "Caucasian", "Unknown")
_RACE_WEIGHTS = (0.23, 0.08, 0.66, 0.03)
CREMAD_ETHNICITIES: tuple[str, ...] = ("Hispanic", "Not Hispanic")
DEMOGRAPHICS_COLUMNS: tuple[str, ...] = ("ActorID", "Age", "Sex", "Race", "Ethnicity")

RAVDESS_STATEMENTS: dict[str, Sentence] = {
    "01": Sentence("01", "Kids are talking by the door", "S s Ss s s S"),
    "02": Sentence("02", "Dogs are sitting by the door", "S s Ss s s S"),
}
CREMAD_SENTENCES: dict[str, Sentence] = {
    s.code: s
    for s in (
        Sentence("IEO", "It's eleven o'clock", "s sSs sS"),
        Sentence("TIE", "That is exactly what happened", "S s sSs s Ss"),
        Sentence("IOM", "I'm on my way to the meeting", "s s s S s s Ss"),
        Sentence("IWW", "I wonder what this is about", "s Ss s S s sS"),
        Sentence("TAI", "The airplane is almost full", "s Ss s Ss S"),
        Sentence("MTI", "Maybe tomorrow it will be cold", "Ss sSs s s s S"),
        Sentence("IWL", "I would like a new alarm clock", "s s S s s sS S"),
        Sentence("ITH", "I think I have a doctor's appointment", "s S s s s Ss sSs"),
        Sentence("DFA", "Don't forget a jacket", "S sS s Ss"),
        Sentence("ITS", "I think I've seen this before", "s S s S s sS"),
        Sentence("TSI", "The surface is slick", "s Ss s S"),
        Sentence("WSI", "We'll stop in a couple of minutes", "s S s s Ss s Ss"),
    )
}


@dataclass(slots=True)
class _Plan:
    jobs: list[FileJob] = field(default_factory=list)
    demographics: list[dict[str, object]] = field(default_factory=list)


def _balanced_genders(n_actors: int, n_male: int, rng: np.random.Generator) -> list[str]:
    genders = ["male"] * n_male + ["female"] * (n_actors - n_male)
    return [genders[i] for i in rng.permutation(n_actors)]


def _ravdess_combos(
    scale: Scale, actor: int, e_idx: int, ee: str, pick: np.random.Generator
) -> list[tuple[str, str, str]]:
    """(intensity, statement, repetition) of one actor's takes of emotion ``ee`` at this scale."""
    if scale.ravdess_per_actor == 16:  # neutral: both statements; others: normal + strong
        if ee == "01":
            return [("01", "01", "01"), ("01", "02", "01")]
        s = 1 + (actor + e_idx) % 2
        return [("01", f"{s:02d}", "01"), ("02", f"{3 - s:02d}", "01")]
    if ee == "01":  # neutral has no strong intensity: both statements, both repetitions
        return [("01", s, r) for s in ("01", "02") for r in ("01", "02")]
    if scale.ravdess_per_actor == 32:  # every (intensity, statement), repetition drawn
        return [(i, s, "01" if pick.random() < 0.5 else "02") for i in ("01", "02") for s in ("01", "02")]
    return [(i, s, r) for i in ("01", "02") for s in ("01", "02") for r in ("01", "02")]


def _plan_ravdess(scale: Scale, seed: int, root: Path) -> list[FileJob]:
    """RAVDESS: actors 01..N (odd male, even female), ``Actor_NN/03-01-EE-II-SS-RR-NN.wav``."""
    jobs: list[FileJob] = []
    for actor in range(1, scale.ravdess_actors + 1):
        aa = f"{actor:02d}"
        gender = "male" if actor % 2 == 1 else "female"
        speaker = make_speaker(
            seeded_rng(seed, "ravdess", "speaker", aa), speaker_id=f"ravdess/{aa}", gender=gender
        )
        channel = studio_channel(seeded_rng(seed, "ravdess", "channel", aa))
        pick = seeded_rng(seed, "ravdess", "plan", aa)
        for e_idx, ee in enumerate(RAVDESS_EMOTIONS):
            for ii, ss, rr in _ravdess_combos(scale, actor, e_idx, ee, pick):
                jobs.append(
                    FileJob(
                        corpus="ravdess",
                        path=str(root / f"Actor_{aa}" / f"03-01-{ee}-{ii}-{ss}-{rr}-{aa}.wav"),
                        speaker=speaker,
                        channel=channel,
                        sentence=RAVDESS_STATEMENTS[ss],
                        emotion=RAVDESS_EMOTIONS[ee],
                        strength=RAVDESS_INTENSITY[ii],
                        pad_s=scale.ravdess_pad_s,
                        max_syllables=scale.max_syllables,
                        seed=seed,
                    )
                )
    return jobs


def _cremad_takes(scale: Scale, actor_idx: int, rng: np.random.Generator) -> list[tuple[str, str, str]]:
    """(sentence, emotion, level) for one actor. LO/MD/HI only with IEO; NEU is always XX."""
    others = [s for s in CREMAD_SENTENCES if s != "IEO"]
    takes: list[tuple[str, str, str]] = []
    for e_idx, emo in enumerate(CREMAD_EMOTIONS):
        if scale.cremad_per_actor is None:  # full: IEO at every level, all other sentences at XX
            levels = ["XX"] if emo == "NEU" else ["LO", "MD", "HI"]
            takes.extend(("IEO", emo, lv) for lv in levels)
            takes.extend((s, emo, "XX") for s in others)
            continue
        n_other = scale.cremad_per_actor // len(CREMAD_EMOTIONS) - 1
        level = "XX" if emo == "NEU" else ("LO", "MD", "HI")[(actor_idx + e_idx) % 3]
        takes.append(("IEO", emo, level))
        takes.extend((others[j], emo, "XX") for j in sorted(rng.permutation(len(others))[:n_other]))
    return takes


def _cremad_population(n: int, pop: np.random.Generator) -> list[dict[str, object]]:
    """The VideoDemographics.csv rows of actors 1001..: gender balanced (48 m / 43 f at 91), ages 20-74."""
    n_male = 48 if n == 91 else n // 2
    genders = _balanced_genders(n, n_male, pop)
    ages = np.clip(np.round(20 + 54 * pop.beta(1.4, 2.6, size=n)), 20, 74).astype(int)
    if n >= 10:  # span the real corpus's range, 20-74
        ages[np.argmin(ages)], ages[np.argmax(ages)] = 20, 74
    rows: list[dict[str, object]] = []
    for idx in range(n):
        race = CREMAD_RACES[int(pop.choice(len(CREMAD_RACES), p=_RACE_WEIGHTS))]
        ethnicity = "Hispanic" if pop.random() < 0.1 else "Not Hispanic"
        rows.append(
            {
                "ActorID": str(1001 + idx),
                "Age": int(ages[idx]),
                "Sex": genders[idx].capitalize(),
                "Race": race,
                "Ethnicity": ethnicity,
            }
        )
    return rows


Takes = list[tuple[str, str, str]]  # (sentence, emotion, level) per actor


def _drop_missing(per_actor: list[Takes], pop: np.random.Generator) -> list[Takes]:
    """The real corpus lacks 20 takes: 3 of each emotion but NEU, 5 of NEU (never an IEO take)."""
    drop: set[tuple[int, str, str]] = set()
    for emo in CREMAD_EMOTIONS:
        for idx in pop.choice(len(per_actor), size=5 if emo == "NEU" else 3, replace=False):
            candidates = [s for s, e, lv in per_actor[int(idx)] if e == emo and lv == "XX" and s != "IEO"]
            drop.add((int(idx), candidates[int(pop.integers(len(candidates)))], emo))
    return [[t for t in takes if (i, t[0], t[1]) not in drop] for i, takes in enumerate(per_actor)]


def _cremad_jobs(scale: Scale, seed: int, root: Path, row: dict[str, object], takes: Takes) -> list[FileJob]:
    actor = str(row["ActorID"])
    speaker = make_speaker(
        seeded_rng(seed, "crema-d", "speaker", actor),
        speaker_id=f"crema-d/{actor}",
        gender=str(row["Sex"]).lower(),
        age=int(str(row["Age"])),
        expressiveness=(0.5, 0.7),  # crowd-sourced actors, subtler than RAVDESS's
    )
    channel = field_channel(seeded_rng(seed, "crema-d", "channel", actor))
    return [
        FileJob(
            corpus="crema-d",
            path=str(root / "AudioWAV" / f"{actor}_{sent}_{emo}_{level}.wav"),
            speaker=speaker,
            channel=channel,
            sentence=CREMAD_SENTENCES[sent],
            emotion=CREMAD_EMOTIONS[emo],
            strength=CREMAD_LEVELS[level],
            pad_s=scale.cremad_pad_s,
            max_syllables=scale.max_syllables,
            seed=seed,
        )
        for sent, emo, level in takes
    ]


def _plan_cremad(scale: Scale, seed: int, root: Path) -> _Plan:
    """CREMA-D: actors 1001.., ``AudioWAV/AAAA_SSS_EEE_LL.wav`` and ``VideoDemographics.csv``."""
    pop = seeded_rng(seed, "crema-d", "population")
    demographics = _cremad_population(scale.cremad_actors, pop)
    per_actor = [
        _cremad_takes(scale, idx, seeded_rng(seed, "crema-d", "plan", str(row["ActorID"])))
        for idx, row in enumerate(demographics)
    ]
    if scale.cremad_per_actor is None:
        per_actor = _drop_missing(per_actor, pop)
    jobs = [
        j
        for row, takes in zip(demographics, per_actor, strict=True)
        for j in _cremad_jobs(scale, seed, root, row, takes)
    ]
    return _Plan(jobs=jobs, demographics=demographics)


CORPORA: tuple[str, ...] = ("ravdess", "crema-d", "iemocap", "manifest")
DEFAULT_CORPORA: tuple[str, ...] = ("ravdess", "crema-d")


def check_corpora(corpora: Sequence[str]) -> tuple[str, ...]:
    """The corpora to write, in :data:`CORPORA` order; unknown or no names are a :class:`SynthError`."""
    wanted = [c.strip().lower() for c in corpora if c.strip()]
    unknown = sorted(set(wanted) - set(CORPORA))
    if unknown or not wanted:
        what = f"unknown synthetic corpus {unknown[0]!r}" if unknown else "no synthetic corpus asked for"
        raise SynthError(f"{what}; choose from: {', '.join(CORPORA)}")
    return tuple(c for c in CORPORA if c in wanted)


def plan(
    out: str | os.PathLike[str],
    *,
    scale: str = "tiny",
    seed: int = 0,
    corpora: Sequence[str] = DEFAULT_CORPORA,
) -> tuple[list[FileJob], list[dict[str, object]]]:
    """The files ``generate`` would write under ``out`` (jobs, in order) and the CREMA-D demographics rows.

    ``corpora``: any of :data:`CORPORA`; RAVDESS and CREMA-D by default. Each corpus is planned from its own
    seeded streams, so adding IEMOCAP or the manifest corpus changes no byte of the other two.
    """
    spec = get_scale(scale)
    wanted = check_corpora(corpora)
    root = Path(out)
    jobs: list[FileJob] = []
    demographics: list[dict[str, object]] = []
    cremad = _plan_cremad(spec, seed, root / "crema-d") if "crema-d" in wanted else _Plan()
    if "ravdess" in wanted:
        jobs += _plan_ravdess(spec, seed, root / "ravdess")
    jobs += cremad.jobs
    demographics = cremad.demographics
    if "iemocap" in wanted:
        jobs += iemocap.plan_iemocap(spec, seed, root / "iemocap")
    if "manifest" in wanted:
        jobs += manifest.plan_manifest(spec, seed, root / "manifest")
    return jobs, demographics
