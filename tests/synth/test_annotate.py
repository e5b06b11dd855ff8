"""The synthetic V/A/D annotations: rated from the prosody each take was rendered with, deterministic, written
in both optional layouts and read back by the corpus loaders."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from emoshift.corpora import scan_source
from emoshift.synth import annotate as ann
from emoshift.synth import plan, voice
from emoshift.synth.generate import render
from emoshift.synth.job import FileJob
from emoshift.synth.manifest import write_table
from emoshift.synth.speaker import Prosody

MORE = ("iemocap", "manifest")


def _jobs(root: Path, seed: int = 0) -> list[FileJob]:
    return plan(root, scale="tiny", seed=seed, corpora=MORE)[0]


class _Stop(Exception):
    pass


def test_applied_prosody_is_what_the_renderer_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The prosody rated equals the one synthesize_utterance hands to the articulation, take by take."""
    seen: list[Prosody] = []

    def spy(units: object, speaker: object, p: Prosody, rng: object) -> None:
        seen.append(p)
        raise _Stop

    monkeypatch.setattr(voice, "_articulate", spy)
    jobs = _jobs(tmp_path)[::17]
    for job in jobs:
        with pytest.raises(_Stop):
            render(job)
    assert seen == [ann.applied_prosody(j) for j in jobs]
    assert len({p.loudness_db for p in seen}) == len(jobs)  # every take varied: not the category's profile


def test_annotations_follow_the_applied_prosody(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path)
    prosody = [ann.applied_prosody(j) for j in jobs]
    rated = [ann.annotate(j) for j in jobs]
    a, v, d = (np.array([getattr(r, t) for r in rated]) for t in ("arousal", "valence", "dominance"))
    loud = np.array([p.loudness_db for p in prosody])
    rate = np.log([p.rate for p in prosody])
    smile_unpressed = np.array([p.formant_shift / 0.05 - 1.5 * max(p.tension, 0.0) / 0.8 for p in prosody])
    pitch = np.array([p.pitch_st for p in prosody])
    assert np.corrcoef(a, loud)[0, 1] > 0.6 and np.corrcoef(a, rate)[0, 1] > 0.5
    assert np.corrcoef(v, smile_unpressed)[0, 1] > 0.5
    assert np.corrcoef(d, loud)[0, 1] > 0.5
    assert np.corrcoef(d, loud)[0, 1] > np.corrcoef(d, pitch)[0, 1]  # high pitch is not dominant
    truth = np.array([r.truth for r in rated])  # (N, 3): before the raters
    for k, x in enumerate((a, v, d)):
        r = np.corrcoef(x, truth[:, k])[0, 1]
        assert 0.75 < r < 0.999  # raters add noise, not much
    assert np.allclose(np.array([a, v, d]) * 3, np.round(np.array([a, v, d]) * 3), atol=1e-3)  # mean of 3 raters
    assert a.min() >= 1.0 and a.max() <= 5.0 and np.ptp(a) > 1.5
    by_emotion: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    for j, r in zip(jobs, rated, strict=True):
        if j.corpus == "manifest":
            by_emotion[j.emotion].append((r.arousal, r.valence, r.dominance))
    mean = {e: np.mean(x, axis=0) for e, x in by_emotion.items()}
    assert mean["angry"][0] > mean["neutral"][0] > mean["sad"][0]  # arousal
    assert mean["happy"][1] > mean["neutral"][1] > max(mean["angry"][1], mean["sad"][1])  # valence
    assert mean["angry"][2] > mean["neutral"][2] > mean["sad"][2]  # dominance


def test_annotations_are_deterministic(tmp_path: Path) -> None:
    first = [ann.annotate(j) for j in _jobs(tmp_path / "a")]
    again = [ann.annotate(j) for j in _jobs(tmp_path / "b")]
    other = [ann.annotate(j) for j in _jobs(tmp_path / "c", seed=1)]
    assert first == again and first != other
    jobs = [j for j in _jobs(tmp_path / "t") if j.corpus == "manifest"]
    one = write_table(tmp_path / "t" / "manifest", jobs).read_bytes()
    assert write_table(tmp_path / "t" / "manifest", jobs).read_bytes() == one


def test_both_layouts_carry_them_and_the_loaders_read_them(synth_more: Path) -> None:
    expected = {Path(j.path).name: ann.annotate(j) for j in _jobs(synth_more)}
    table = synth_more / "manifest" / "manifest.csv"
    with open(table, newline="") as f:
        header = next(csv.reader(f))
    assert header[-3:] == ["arousal", "valence", "dominance"]
    iemocap = scan_source("iemocap", synth_more / "iemocap", "native")
    mine = scan_source("mine", table, "six")
    assert len(iemocap.utterances) == 100 and len(mine.utterances) == 96  # xxx/oth turns excluded by the loader
    for u in [*iemocap.utterances, *mine.utterances]:
        want = expected[Path(u.path).name]
        assert (u.arousal, u.valence, u.dominance) == pytest.approx(
            (want.arousal, want.valence, want.dominance), abs=1e-4
        ), u.id
