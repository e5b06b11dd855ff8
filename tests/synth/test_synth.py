"""The synthetic corpora: layouts and names as distributed, formats, determinism, caching, and the loaders.

Most tests read the session-wide tiny corpus (``synth_tiny`` in conftest.py, made once with a process pool);
the caching tests use an even smaller scale registered only for the test.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import emoshift.synth as synth
from emoshift.core import audio
from emoshift.synth import Scale, SynthError

RAVDESS_NAME = re.compile(r"03-01-(0[1-8])-(0[12])-(0[12])-(0[12])-(\d{2})")
CREMAD_NAME = re.compile(
    r"(10\d\d)_(IEO|TIE|IOM|IWW|TAI|MTI|IWL|ITH|DFA|ITS|TSI|WSI)_(ANG|DIS|FEA|HAP|NEU|SAD)_(LO|MD|HI|XX)"
)


def _ravdess_files(root: Path) -> list[Path]:
    return sorted((root / "ravdess").glob("Actor_*/*.wav"))


def _cremad_files(root: Path) -> list[Path]:
    return sorted((root / "crema-d" / "AudioWAV").glob("*.wav"))


# -- layout -------------------------------------------------------------------------------------------------------


def test_ravdess_layout_and_tiny_counts(synth_tiny: Path) -> None:
    files = _ravdess_files(synth_tiny)
    assert len(files) == 128  # 8 actors x 16, as documented
    assert sorted(p.name for p in (synth_tiny / "ravdess").iterdir()) == [
        f"Actor_{a:02d}" for a in range(1, 9)
    ]
    per_actor: dict[str, set[str]] = {}
    for p in files:
        m = RAVDESS_NAME.fullmatch(p.stem)
        assert m is not None, p.name
        emotion, intensity, _statement, _rep, actor = m.groups()
        assert p.parent.name == f"Actor_{actor}"
        assert not (emotion == "01" and intensity == "02"), "neutral has no strong intensity"
        per_actor.setdefault(actor, set()).add(emotion)
    assert Counter(p.parent.name for p in files) == {f"Actor_{a:02d}": 16 for a in range(1, 9)}
    assert all(emotions == {f"{e:02d}" for e in range(1, 9)} for emotions in per_actor.values())
    intensities = Counter(RAVDESS_NAME.fullmatch(p.stem).group(2) for p in files)  # type: ignore[union-attr]
    assert intensities["02"] > 0 and intensities["01"] > 0


def test_cremad_layout_and_tiny_counts(synth_tiny: Path) -> None:
    files = _cremad_files(synth_tiny)
    assert len(files) == 96  # 8 actors x 12
    per_actor: dict[str, Counter[str]] = {}
    for p in files:
        m = CREMAD_NAME.fullmatch(p.stem)
        assert m is not None, p.name
        actor, sentence, emotion, level = m.groups()
        if level != "XX":
            assert sentence == "IEO", f"{p.name}: LO/MD/HI only with IEO"
        if emotion == "NEU":
            assert level == "XX"
        per_actor.setdefault(actor, Counter())[emotion] += 1
    assert sorted(per_actor) == [str(a) for a in range(1001, 1009)]
    assert all(c == {e: 2 for e in ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")} for c in per_actor.values())
    assert {CREMAD_NAME.fullmatch(p.stem).group(4) for p in files} == {"LO", "MD", "HI", "XX"}  # type: ignore[union-attr]


def test_documented_scale_sizes() -> None:
    """Counts from the plan alone (no audio): small and full as in the module docstring."""
    small, _ = synth.plan("/unused", scale="small", seed=0)
    assert Counter(j.corpus for j in small) == {"ravdess": 384, "crema-d": 576}
    full, demographics = synth.plan("/unused", scale="full", seed=0)
    assert Counter(j.corpus for j in full) == {"ravdess": 1440, "crema-d": 7442}
    emotions = Counter(Path(j.path).stem.split("_")[2] for j in full if j.corpus == "crema-d")
    assert emotions == {"ANG": 1271, "DIS": 1271, "FEA": 1271, "HAP": 1271, "SAD": 1271, "NEU": 1087}
    assert Counter(str(r["Sex"]) for r in demographics) == {"Male": 48, "Female": 43}
    assert len({j.path for j in full}) == len(full)


def test_demographics_csv(synth_tiny: Path) -> None:
    with open(synth_tiny / "crema-d" / "VideoDemographics.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        assert reader.fieldnames == ["ActorID", "Age", "Sex", "Race", "Ethnicity"]
    assert [r["ActorID"] for r in rows] == [str(a) for a in range(1001, 1009)]
    assert Counter(r["Sex"] for r in rows) == {"Male": 4, "Female": 4}
    assert {r["Race"] for r in rows} <= {"African American", "Asian", "Caucasian", "Unknown"}
    assert {r["Ethnicity"] for r in rows} <= {"Hispanic", "Not Hispanic"}
    assert all(20 <= int(r["Age"]) <= 74 for r in rows)


# -- audio ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("corpus", "rate"), [("ravdess", 48_000), ("crema-d", 16_000)])
def test_formats_decode_and_not_silent(synth_tiny: Path, corpus: str, rate: int) -> None:
    files = _ravdess_files(synth_tiny) if corpus == "ravdess" else _cremad_files(synth_tiny)
    for p in files[::7]:
        info = sf.info(str(p))
        assert (info.samplerate, info.channels, info.subtype, info.format) == (rate, 1, "PCM_16", "WAV")
        wave, sr = audio.read(p)
        assert sr == rate
        assert 0.6 < len(wave) / sr < 3.5
        assert not audio.is_silent(wave, sr)
        assert np.abs(wave).max() < 0.99  # no clipping
        assert np.abs(wave[: int(0.03 * sr)]).max() < np.abs(wave).max() / 10  # leading silence


def test_emotion_moves_loudness_and_rate(synth_tiny: Path) -> None:
    """Within each RAVDESS actor, strong anger is louder and faster than strong sadness."""
    for actor in range(1, 9):
        takes = {}
        for emotion in ("05", "04"):  # angry, sad (strong takes)
            (path,) = (synth_tiny / "ravdess" / f"Actor_{actor:02d}").glob(f"03-01-{emotion}-02-*.wav")
            wave, sr = audio.read(path)
            speech = audio.trim_silence(wave, sr, top_db=35)
            takes[emotion] = (audio.peak_dbfs(wave, sr), len(speech) / sr)
        assert takes["05"][0] > takes["04"][0] + 6.0
        assert takes["05"][1] < takes["04"][1]


def _median_f0(wave: np.ndarray, sr: int) -> float:
    """Autocorrelation pitch of strongly periodic 40 ms frames (enough for a clean synthetic voice)."""
    n, lo, hi = int(0.04 * sr), sr // 400, sr // 60
    f0s = []
    for start in range(0, len(wave) - n, n // 2):
        x = wave[start : start + n] - wave[start : start + n].mean()
        ac = np.correlate(x, x, mode="full")[n - 1 :]
        if ac[0] <= 0:
            continue
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] / ac[0] > 0.6:
            f0s.append(sr / lag)
    return float(np.median(f0s))


@pytest.mark.parametrize(("gender", "f0"), [("male", 110.0), ("female", 215.0)])
def test_synthesize_utterance_follows_the_speaker(gender: str, f0: float) -> None:
    rng = np.random.default_rng(3)
    speaker = synth.make_speaker(rng, speaker_id="x", gender=gender)
    speaker = dataclasses.replace(speaker, f0_hz=f0)
    sentence = synth.CREMAD_SENTENCES["TIE"]
    wave = synth.synthesize_utterance(
        speaker=speaker, sentence=sentence, sr=16_000, rng=rng, pad_s=(0.1, 0.1)
    )
    assert wave.dtype == np.float32 and np.isfinite(wave).all()
    assert np.all(wave[:1600] == 0) and np.all(wave[-1600:] == 0)  # 0.1 s of silence at both ends
    assert 0.7 * f0 < _median_f0(wave, 16_000) < 1.4 * f0


def test_emotion_prosody_scales_from_neutral() -> None:
    angry = synth.emotion_prosody("angry", 1.0)
    assert synth.emotion_prosody("angry", 0.0) == synth.Prosody()
    half = synth.emotion_prosody("angry", 0.5)
    assert half.loudness_db == pytest.approx(angry.loudness_db / 2)
    assert half.rate == pytest.approx(angry.rate**0.5)
    with pytest.raises(ValueError, match="unknown emotion"):
        synth.emotion_prosody("bored")


# -- determinism and caching -----------------------------------------------------------------------------------------


def test_same_seed_same_bytes_different_seed_different(synth_tiny: Path, tmp_path: Path) -> None:
    """Files rendered here, one by one in this process, equal the pool-made corpus; another seed differs."""
    jobs, _ = synth.plan(tmp_path / "again", scale="tiny", seed=0)
    other = {Path(j.path).name: j for j in synth.plan(tmp_path / "other", scale="tiny", seed=1)[0]}
    compared = 0
    for job in jobs[::23]:
        synth.write_file(job)
        rel = Path(job.path).relative_to(tmp_path / "again")
        original = (synth_tiny / rel).read_bytes()
        assert Path(job.path).read_bytes() == original, rel
        if rel.name in other:  # seed 1 may pick other CREMA-D sentences; RAVDESS names are the same
            synth.write_file(other[rel.name])
            assert Path(other[rel.name].path).read_bytes() != original, rel
            compared += 1
    assert compared >= 5


MICRO = Scale("micro", 2, 16, 2, 12, (0.05, 0.05), (0.05, 0.05), max_syllables=3)
NANO = Scale("nano", 1, 16, 2, 12, (0.05, 0.05), (0.05, 0.05), max_syllables=3)


@pytest.fixture
def small_scales(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(synth.SCALES, "micro", MICRO)
    monkeypatch.setitem(synth.SCALES, "nano", NANO)


@pytest.mark.usefixtures("small_scales")
def test_rerun_is_cached_and_an_interrupted_run_resumes(tmp_path: Path) -> None:
    out = tmp_path / "data"
    first = synth.generate(out, scale="micro", seed=5, workers=2)
    assert first["cached"] is False and first["written"] == 56
    assert first["files"] == {"ravdess": 32, "crema-d": 24}
    marker = json.loads((out / ".synth.json").read_text())["corpora"]
    assert set(marker) == {"ravdess", "crema-d"}
    assert all(r["complete"] and r["seed"] == 5 and r["scale"] == "micro" for r in marker.values())

    again = synth.generate(out, scale="micro", seed=5)
    assert again["cached"] is True and again["written"] == 0
    assert again["audio_s"] == first["audio_s"]

    # an interrupted run: two files never made it, a temporary was left behind
    lost = sorted(out.rglob("*.wav"))[::30]
    before = {p: p.read_bytes() for p in lost}
    for p in lost:
        p.unlink()
    (out / "ravdess" / "Actor_01" / ".03-01-01-01-01-01-01.wav.123.tmp").write_bytes(b"partial")
    resumed = synth.generate(out, scale="micro", seed=5, workers=1)
    assert resumed["cached"] is False and resumed["written"] == len(lost)
    assert all(p.read_bytes() == b for p, b in before.items())
    assert not list(out.rglob("*.tmp"))
    assert resumed["audio_s"] == pytest.approx(first["audio_s"])


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.usefixtures("small_scales")
def test_another_scale_or_seed_is_refused_and_deletes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "data"
    synth.generate(out, scale="micro", seed=0, workers=1)
    before = _tree(out)
    for kwargs in ({"scale": "nano"}, {"seed": 1}, {"scale": "nano", "corpora": ["ravdess"]}):
        with pytest.raises(SynthError, match=r"ravdess holds the micro corpus for seed 0; .* choose another folder"):
            synth.generate(out, workers=1, **{"scale": "micro", "seed": 0, **kwargs})  # type: ignore[arg-type]
        assert _tree(out) == before


@pytest.mark.usefixtures("small_scales")
def test_other_corpora_are_added_beside_and_nothing_is_deleted(tmp_path: Path) -> None:
    """The issue-24 sequence: synth, synth --corpora iemocap, synth again (free), with the user's own wavs."""
    out = tmp_path / "data"
    synth.generate(out, scale="micro", seed=0, workers=1)
    mine = [out / "ravdess" / "mine.wav", out / "crema-d" / "AudioWAV" / "1999_MINE_ANG_XX.wav"]
    for p in mine:
        sf.write(str(p), np.zeros(160, dtype=np.float32), 16_000)
    (out / "ravdess" / ".notes.txt.x1.tmp").write_bytes(b"a user's temporary-looking file")
    before = _tree(out)

    added = synth.generate(out, scale="micro", seed=0, workers=1, corpora=["iemocap"])
    assert added["cached"] is False and added["files"] == {"iemocap": added["written"]}
    after = _tree(out)
    assert {k: v for k, v in after.items() if k in before and k != ".synth.json"} == {
        k: v for k, v in before.items() if k != ".synth.json"
    }
    assert any(k.startswith("iemocap/") for k in after)

    again = synth.generate(out, scale="micro", seed=0, workers=1)  # the first command again: free
    assert again["cached"] is True and again["written"] == 0
    both = synth.generate(out, scale="micro", seed=0, workers=1, corpora=["ravdess", "iemocap"])
    assert both["cached"] is True
    assert _tree(out) == after and all(p.exists() for p in mine)


@pytest.mark.usefixtures("small_scales")
def test_an_old_marker_is_read_as_ours(tmp_path: Path) -> None:
    """A folder written before corpora were recorded one by one is still recognised (cached, not refused)."""
    out = tmp_path / "data"
    first = synth.generate(out, scale="micro", seed=3, workers=1)
    old = {"scale": "micro", "seed": 3, "version": synth.SYNTH_VERSION, "complete": True,
           "corpora": ["ravdess", "crema-d"], "files": first["files"], "audio_s": first["audio_s"]}
    (out / ".synth.json").write_text(json.dumps(old))
    assert synth.generate(out, scale="micro", seed=3)["cached"] is True
    with pytest.raises(SynthError, match="holds the micro corpus for seed 3"):
        synth.generate(out, scale="micro", seed=4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"scale": "huge"}, "unknown scale"), ({"seed": -1}, "seed"), ({"workers": 0}, "workers")],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(SynthError, match=message):
        synth.generate(tmp_path, **kwargs)  # type: ignore[arg-type]
    assert not any(tmp_path.iterdir())


# -- the corpus loaders accept the output ------------------------------------------------------------------------------


def test_loaders_read_everything(synth_tiny: Path) -> None:
    from emoshift.corpora import scan

    rav = scan("ravdess", str(synth_tiny / "ravdess"), labels="native")
    assert rav.skipped == []
    assert len(rav.utterances) == 128
    assert rav.label_set == ["angry", "calm", "disgust", "fearful", "happy", "neutral", "sad", "surprised"]
    assert len(rav.speakers) == 8
    assert Counter(u.gender for u in rav.utterances) == {"male": 64, "female": 64}

    pytest.importorskip("emoshift.corpora.cremad")
    cre = scan("crema-d", str(synth_tiny / "crema-d"), labels="native")
    assert cre.skipped == []
    assert cre.warnings == []  # demographics found and complete
    assert len(cre.utterances) == 96
    assert cre.label_set == ["angry", "disgust", "fearful", "happy", "neutral", "sad"]
    assert len(cre.speakers) == 8
    assert Counter(u.gender for u in cre.utterances) == {"male": 48, "female": 48}
    assert all(u.age is not None and u.race and u.ethnicity for u in cre.utterances)


# -- command line ----------------------------------------------------------------------------------------------------


def test_cli_reports_and_rejects_bad_scale(synth_tiny: Path) -> None:
    from typer.testing import CliRunner

    from emoshift.cli import app

    runner = CliRunner()
    ok = runner.invoke(app, ["synth", str(synth_tiny), "--scale", "tiny", "--seed", "0"])
    assert ok.exit_code == 0, ok.output
    assert "nothing to do" in ok.output  # the session corpus is complete: cached
    assert re.search(r"ravdess\s+128 files\s+8 speakers", ok.output)
    assert re.search(r"crema-d\s+96 files\s+8 speakers", ok.output)

    bad = runner.invoke(app, ["synth", str(synth_tiny / "x"), "--scale", "huge"])
    assert bad.exit_code == 2
    assert "--scale must be one of tiny, small, full" in bad.output
    assert "Traceback" not in bad.output
    assert not (synth_tiny / "x").exists()


@pytest.mark.usefixtures("small_scales")
def test_cli_summarises_once_and_refuses_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import emoshift.cli.synth as cli_synth
    from emoshift.cli import app

    monkeypatch.setattr(cli_synth, "_SCALES", ("micro", "nano"))
    runner = CliRunner()
    out = tmp_path / "data"
    made = runner.invoke(app, ["synth", str(out), "--scale", "micro", "--workers", "1"])
    assert made.exit_code == 0, made.output
    assert made.output.count(" files in ") == 1 and "wrote 56 files" in made.output, made.output  # once
    refused = runner.invoke(app, ["synth", str(out), "--scale", "nano", "--corpora", "ravdess"])
    assert refused.exit_code == 2
    assert len(refused.output.strip().splitlines()) == 1 and "choose another folder" in refused.output
    again = runner.invoke(app, ["synth", str(out), "--scale", "micro"])
    assert again.exit_code == 0 and "nothing to do" in again.output
