"""Fake corpus trees for tests: tiny real WAVs (0.3 s of tone + noise) laid out as each corpus ships.

Every builder takes the folder to build in and returns a :class:`FakeCorpus` saying what a scan must find:
which utterances are good (with their canonical emotion), which files are bad and why, which are strays.
With ``quirks=True`` a builder adds the same set of bad files to every corpus (git-LFS pointer, empty,
full-size silent, truncated, garbage, an unparseable name, a WAV with a LIST chunk before ``data``) plus
stray files that must be ignored. :data:`BUILDERS` maps every registered corpus name to its builder.

Reuse from other tests: ``from tests.corpora.fakes import make_ravdess`` (or the fixtures in conftest.py).
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from emoshift.corpora.base import harmonise

SECONDS = 0.3
LFS_POINTER = (
    "version https://git-lfs.github.com/spec/v1\n"
    "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    "size 120364\n"
)


# ---------------------------------------------------------------------------------------------- files
def tone(sr: int, *, seconds: float = SECONDS, seed: int = 0) -> np.ndarray:
    """A 220-440 Hz tone with a little noise: clearly not silent. Shape (samples,), float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    freq = 220.0 + 20.0 * (seed % 11)
    wave = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(len(t))
    return wave.astype(np.float32)


def write_wav(path: Path, sr: int, *, seconds: float = SECONDS, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(sr, seconds=seconds, seed=seed), sr, subtype="PCM_16")
    return path


def write_silent(path: Path, sr: int, *, seconds: float = SECONDS) -> Path:
    """Full size, same length as a good take, but its energy is far below -60 dBFS (like 1076_MTI_SAD_XX)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    hiss = 1e-5 * np.random.default_rng(1).standard_normal(int(sr * seconds))
    sf.write(path, hiss.astype(np.float32), sr, subtype="PCM_16")
    return path


def write_empty(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def write_lfs_pointer(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(LFS_POINTER)
    return path


def write_truncated(path: Path, sr: int) -> Path:
    """A WAV whose header declares more audio than the file holds (a cut-off download)."""
    write_wav(path, sr)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def write_garbage(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not audio at all, just text saved with a .wav name\n" * 20)
    return path


def write_with_list_chunk(path: Path, sr: int, *, seconds: float = SECONDS) -> Path:
    """A valid WAV with a RIFF LIST/INFO chunk between ``fmt `` and ``data`` (as some RAVDESS files have)."""
    write_wav(path, sr, seconds=seconds)
    data = path.read_bytes()
    at = data.index(b"data")
    info = b"INFO" + b"ISFT" + struct.pack("<I", 14) + b"Lavf58.29.100\x00"
    chunk = b"LIST" + struct.pack("<I", len(info)) + info
    out = data[:at] + chunk + data[at:]
    out = out[:4] + struct.pack("<I", len(out) - 8) + out[8:]
    path.write_bytes(out)
    return path


def write_strays(folder: Path, like: str) -> list[Path]:
    """Files a real download carries that are not audio (or are macOS metadata): all must be ignored."""
    folder.mkdir(parents=True, exist_ok=True)
    strays = [
        folder / ".DS_Store",
        folder / "readme.txt",
        folder / "README",
        folder / "notes.csv",
        folder / f"._{like}",  # macOS resource fork next to a real file
        folder / "__MACOSX" / f"._{like}",
    ]
    for p in strays:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"\x00\x05\x16\x07 not audio")
    return strays


# ---------------------------------------------------------------------------------------------- trees
@dataclass
class FakeCorpus:
    """A fake tree and what a scan of it must report."""

    name: str
    root: Path
    sr: int
    good: dict[str, str] = field(default_factory=dict)  # utterance id -> canonical emotion
    bad: dict[str, str] = field(default_factory=dict)  # file name -> reason kind (Scan.skipped_by_reason key)
    ignored: list[Path] = field(default_factory=list)
    excluded: Counter[str] = field(default_factory=Counter)  # by the corpus's own labels (native code -> n)
    texts: dict[str, str] = field(default_factory=dict)  # utterance id -> the sentence a scan must report (some)

    def kept(self, policy: str) -> dict[str, str]:
        """utterance id -> label expected under ``policy``."""
        labels = {uid: harmonise(e, policy) for uid, e in self.good.items()}
        return {uid: label for uid, label in labels.items() if label is not None}

    def left_out(self, policy: str) -> Counter[str]:
        return Counter(e for e in self.good.values() if harmonise(e, policy) is None)

    def skipped_by_reason(self) -> Counter[str]:
        return Counter(self.bad.values())


def _add_quirks(
    fake: FakeCorpus, folder: Path, names: Sequence[str], *, bad_name: str, listed: tuple[str, str]
) -> None:
    """Seven broken or odd files in ``folder`` plus strays.

    ``names`` are 6 valid, unused file names whose emotions every label policy keeps (angry, happy, neutral,
    sad), so the bad ones are decoded, not left out. The sixth becomes a valid WAV with a LIST chunk;
    ``listed`` is its (utterance id, canonical emotion). ``bad_name`` is a file name the loader cannot parse.
    """
    lfs, empty, silent, truncated, garbage, with_list = (folder / n for n in names)
    write_lfs_pointer(lfs)
    write_empty(empty)
    write_silent(silent, fake.sr)
    write_truncated(truncated, fake.sr)
    write_garbage(garbage)
    write_with_list_chunk(with_list, fake.sr)
    write_wav(folder / bad_name, fake.sr)
    fake.bad.update(
        {
            lfs.name: "git-LFS pointer",
            empty.name: "empty",
            silent.name: "silent",
            truncated.name: "truncated",
            garbage.name: "unreadable",
            bad_name: "unrecognised file name",
        }
    )
    fake.good[listed[0]] = listed[1]
    fake.ignored += write_strays(folder, like=names[0])


# The label maps here are written out again on purpose, from corpora.md: they are the oracle the loaders'
# own LABEL_MAPs are checked against, so they must not be imported from the code under test.
RAVDESS_EMOTIONS = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fearful",
    "07": "disgust",
    "08": "surprised",
}


def make_ravdess(
    root: Path,
    *,
    actors: Sequence[int] = (1, 2),
    layout: str = "root",
    song: bool = False,
    quirks: bool = False,
) -> FakeCorpus:
    """RAVDESS with 15 speech takes per actor (8 emotions x intensity; statement 01, repetition 01).

    layout: "root" (Actor_XX/ at ROOT), "wrapped" (under Audio_Speech_Actors_01-24/), "kaggle" (both,
    the second copy under a lower-case audio_speech_actors_01-24/). song: 6 song takes per actor under
    Audio_Song_Actors_01-24/ (kept only with include_song=True, so not in ``good``).
    """
    fake = FakeCorpus("ravdess", root, sr=48_000)
    parents = {
        "root": [root],
        "wrapped": [root / "Audio_Speech_Actors_01-24"],
        "kaggle": [root, root / "audio_speech_actors_01-24"],
    }[layout]
    for a in actors:
        for code, emotion in RAVDESS_EMOTIONS.items():
            for intensity in ("01", "02") if code != "01" else ("01",):
                stem = f"03-01-{code}-{intensity}-01-01-{a:02d}"
                for parent in parents:
                    write_wav(parent / f"Actor_{a:02d}" / f"{stem}.wav", fake.sr, seed=a + int(code))
                fake.good[f"ravdess/{stem}"] = emotion
                fake.texts[f"ravdess/{stem}"] = "Kids are talking by the door"  # statement 01
        if song:
            for code in ("01", "02", "03", "04", "05", "06"):
                stem = f"03-02-{code}-01-01-01-{a:02d}"
                write_wav(root / "Audio_Song_Actors_01-24" / f"Actor_{a:02d}" / f"{stem}.wav", fake.sr)
    if quirks:
        a = actors[0]
        names = [
            f"03-01-{e}-{i}-02-{r}-{a:02d}.wav"
            for e in ("05", "04")
            for i in ("01", "02")
            for r in ("01", "02")
        ]
        _add_quirks(
            fake,
            parents[0] / f"Actor_{a:02d}",
            names[:6],
            bad_name="03-01-05-01-02-01.wav",
            listed=(f"ravdess/{names[5][:-4]}", "sad"),
        )
    return fake


CREMAD_EMOTIONS = {
    "ANG": "angry",
    "DIS": "disgust",
    "FEA": "fearful",
    "HAP": "happy",
    "NEU": "neutral",
    "SAD": "sad",
}
CREMAD_DEMOGRAPHICS = {
    1001: ("51", "Male", "Caucasian", "Not Hispanic"),
    1002: ("21", "Female", "Caucasian", "Not Hispanic"),
    1003: ("21", "Female", "Asian", "Not Hispanic"),
    1004: ("42", "Female", "African American", "Hispanic"),
}


def make_cremad(
    root: Path,
    *,
    actors: Sequence[int] = (1001, 1002),
    layout: str = "corpus",
    demographics: str | None = "root",
    quirks: bool = False,
) -> FakeCorpus:
    """CREMA-D with 14 clips per actor: every emotion as IEO_HI and DFA_XX, plus NEU as IEO_LO and IEO_MD.

    layout: "corpus" (ROOT/AudioWAV/) or "audiowav" (ROOT is the AudioWAV folder; the corpus folder is its
    parent). demographics: where VideoDemographics.csv goes, "root" (the corpus folder), "parent" (the
    folder above it) or None (missing).
    """
    corpus_dir = root if layout == "corpus" else root.parent
    audio_dir = root / "AudioWAV" if layout == "corpus" else root
    fake = FakeCorpus("crema-d", root, sr=16_000)
    for a in actors:
        takes = [(s, e, lv) for e in CREMAD_EMOTIONS for s, lv in (("IEO", "HI"), ("DFA", "XX"))]
        takes += [("IEO", "NEU", "LO"), ("IEO", "NEU", "MD")]
        for i, (sentence, emotion, level) in enumerate(takes):
            stem = f"{a}_{sentence}_{emotion}_{level}"
            write_wav(audio_dir / f"{stem}.wav", fake.sr, seed=a + i)
            fake.good[f"crema-d/{stem}"] = CREMAD_EMOTIONS[emotion]
            fake.texts[f"crema-d/{stem}"] = sentence  # the sentence code
    if demographics is not None:
        where = corpus_dir if demographics == "root" else corpus_dir.parent
        write_demographics(where / "VideoDemographics.csv", actors)
    if quirks:
        a = actors[0]
        names = [
            f"{a}_{s}.wav"
            for s in ("ITS_ANG_XX", "TSI_ANG_XX", "MTI_SAD_XX", "IWW_ANG_XX", "TAI_SAD_XX", "IOM_HAP_XX")
        ]
        _add_quirks(
            fake,
            audio_dir,
            names,
            bad_name=f"{a}_XYZ_ANG_XX.wav",
            listed=(f"crema-d/{a}_IOM_HAP_XX", "happy"),
        )
    return fake


def write_demographics(path: Path, actors: Sequence[int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["ActorID,Age,Sex,Race,Ethnicity"]
    lines += [f"{a},{','.join(CREMAD_DEMOGRAPHICS[a])}" for a in actors]
    path.write_text("\n".join(lines) + "\n")
    return path


EMODB_EMOTIONS = {
    "W": "angry",
    "L": "boredom",
    "E": "disgust",
    "A": "fearful",
    "F": "happy",
    "T": "sad",
    "N": "neutral",
}


def make_emodb(root: Path, *, layout: str = "corpus", quirks: bool = False) -> FakeCorpus:
    """EmoDB with speakers 03 (male) and 08 (female), texts a01 and a02, every emotion, version a.

    layout: "corpus" (ROOT/wav/) or "wav" (ROOT is the wav folder).
    """
    wav_dir = root / "wav" if layout == "corpus" else root
    fake = FakeCorpus("emodb", root, sr=16_000)
    for speaker in ("03", "08"):
        for text in ("a01", "a02"):
            for i, (code, emotion) in enumerate(EMODB_EMOTIONS.items()):
                stem = f"{speaker}{text}{code}a"
                write_wav(wav_dir / f"{stem}.wav", fake.sr, seed=int(speaker) + i)
                fake.good[f"emodb/{stem}"] = emotion
                fake.texts[f"emodb/{stem}"] = text  # the text code
    if quirks:
        names = ["03b01Wa.wav", "03b02Wa.wav", "03b03Ta.wav", "03b09Wa.wav", "03b10Ta.wav", "08b01Fa.wav"]
        _add_quirks(fake, wav_dir, names, bad_name="03x01Wa.wav", listed=("emodb/08b01Fa", "happy"))
    return fake


TESS_EMOTIONS = {
    "angry": "angry",
    "disgust": "disgust",
    "fear": "fearful",
    "happy": "happy",
    "neutral": "neutral",
    "ps": "surprised",
    "sad": "sad",
}
# Folder names as the distribution spells them: inconsistent in case and wording.
TESS_FOLDERS = {
    "angry": "angry",
    "disgust": "disgust",
    "fear": "Fear",
    "happy": "happy",
    "neutral": "neutral",
    "ps": "Pleasant_surprise",
    "sad": "Sad",
}


def make_tess(root: Path, *, quirks: bool = False) -> FakeCorpus:
    """TESS with both speakers (OAF, YAF), the words back and bar, every emotion; plus the misnamed
    ``OA_bite_neutral.wav`` (speaker OAF) that the real distribution contains."""
    fake = FakeCorpus("tess", root, sr=24_414)
    data = root / "TESS Toronto emotional speech set data"
    for speaker in ("OAF", "YAF"):
        for i, (code, emotion) in enumerate(TESS_EMOTIONS.items()):
            folder = data / f"{speaker}_{TESS_FOLDERS[code]}"
            for word in ("back", "bar"):
                stem = f"{speaker}_{word}_{code}"
                write_wav(folder / f"{stem}.wav", fake.sr, seed=i)
                fake.good[f"tess/{stem}"] = emotion
                fake.texts[f"tess/{stem}"] = word  # the target word after the carrier phrase
    write_wav(data / "OAF_neutral" / "OA_bite_neutral.wav", fake.sr)
    fake.good["tess/OA_bite_neutral"] = "neutral"
    if quirks:
        names = [
            "OAF_dog_angry.wav",
            "OAF_cat_angry.wav",
            "OAF_dog_sad.wav",
            "OAF_hat_angry.wav",
            "OAF_cat_sad.wav",
        ]
        names.append("OAF_dog_happy.wav")
        _add_quirks(
            fake, data / "OAF_angry", names, bad_name="OAF_back.wav", listed=("tess/OAF_dog_happy", "happy")
        )
    return fake


SAVEE_EMOTIONS = {
    "a": "angry",
    "d": "disgust",
    "f": "fearful",
    "h": "happy",
    "n": "neutral",
    "sa": "sad",
    "su": "surprised",
}


def make_savee(root: Path, *, layout: str = "audiodata", quirks: bool = False) -> FakeCorpus:
    """SAVEE with speakers DC and JE, takes 01 and 02 of every emotion.

    layout: "audiodata" (ROOT/AudioData/DC/a01.wav) or "flat" (ROOT/ALL/DC_a01.wav, the Kaggle mirror).
    """
    fake = FakeCorpus("savee", root, sr=44_100)

    def where(speaker: str, name: str) -> Path:
        return (
            root / "AudioData" / speaker / name
            if layout == "audiodata"
            else root / "ALL" / f"{speaker}_{name}"
        )

    for speaker in ("DC", "JE"):
        for i, (code, emotion) in enumerate(SAVEE_EMOTIONS.items()):
            for n in ("01", "02"):
                write_wav(where(speaker, f"{code}{n}.wav"), fake.sr, seed=i)
                fake.good[f"savee/{speaker}_{code}{n}"] = emotion
                fake.texts[f"savee/{speaker}_{code}{n}"] = f"SAVEE {code}{n}"  # one sentence list for every speaker
    if quirks:
        names = ["a10.wav", "a11.wav", "sa10.wav", "a12.wav", "sa11.wav", "h10.wav"]
        folder = where("DC", "x").parent
        if layout == "flat":
            names = [f"DC_{n}" for n in names]
        bad_name = "DC_x01.wav" if layout == "flat" else "x01.wav"
        _add_quirks(fake, folder, names, bad_name=bad_name, listed=("savee/DC_h10", "happy"))
    return fake


from .fakes_labelled import make_esd, make_iemocap, make_msppodcast  # noqa: E402  (they build on the helpers above)

BUILDERS: dict[str, Callable[..., FakeCorpus]] = {
    "ravdess": make_ravdess,
    "crema-d": make_cremad,
    "emodb": make_emodb,
    "tess": make_tess,
    "savee": make_savee,
    "iemocap": make_iemocap,
    "msp-podcast": make_msppodcast,
    "esd": make_esd,
}
