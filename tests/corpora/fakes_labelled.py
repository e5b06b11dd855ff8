"""Fake trees for the corpora whose labels live in a table or a folder name: IEMOCAP, MSP-Podcast, ESD.

Same contract as :mod:`tests.corpora.fakes` (each builder returns a FakeCorpus; ``quirks=True`` adds the
shared bad files and strays). Label maps are written out again here from corpora.md: they are the oracle.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .fakes import FakeCorpus, _add_quirks, write_wav

IEMOCAP_EMOTIONS = {
    "neu": "neutral",
    "hap": "happy",
    "exc": "excited",
    "sad": "sad",
    "ang": "angry",
    "fru": "frustrated",
    "sur": "surprised",
    "fea": "fearful",
    "dis": "disgust",
}
IEMOCAP_HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"


def iemocap_block(utt: str, code: str, i: int) -> str:
    """One turn's block as EmoEvaluation files have it: the summary line, then evaluator lines."""
    v, a, d = 1.5 + (i % 4) * 0.5, 2.0 + (i % 3) * 0.5, 3.0
    return (
        f"[{6.29 + i:.4f} - {8.23 + i:.4f}]\t{utt}\t{code}\t[{v:.4f}, {a:.4f}, {d:.4f}]\n"
        f"C-E2:\tNeutral;\t()\nC-E3:\tNeutral;\t()\nA-E3:\tval 3; act 2; dom  2;\t()\n\n"
    )


def make_iemocap(
    root: Path,
    *,
    sessions: Sequence[int] = (1, 2),
    wrapped: bool = False,
    quirks: bool = False,
) -> FakeCorpus:
    """IEMOCAP: per session an improvised and a scripted dialog; the female actor has every category
    (and one xxx, one oth turn, excluded), the male actor four. ``wrapped``: under IEMOCAP_full_release/."""
    fake = FakeCorpus("iemocap", root, sr=16_000)
    base = root / "IEMOCAP_full_release" if wrapped else root
    for n in sessions:
        session = base / f"Session{n}"
        for dialog in (f"Ses{n:02d}F_impro01", f"Ses{n:02d}M_script01_1"):
            turns = [("F", c) for c in [*IEMOCAP_EMOTIONS, "xxx", "oth"]] + [
                ("M", c) for c in ("neu", "ang", "sad", "hap")
            ]
            blocks, said = [], []
            for i, (g, code) in enumerate(turns):
                utt = f"{dialog}_{g}{i:03d}"
                blocks.append(iemocap_block(utt, code, i))
                # a script's lines are the same in every session; improvised turns are said once
                text = f"Line {i} of script01_1." if "script" in dialog else f"Session {n}, improvised turn {i}."
                said.append(f"{utt} [{6.29 + i:08.4f}-{8.23 + i:08.4f}]: {text}\n")
                fake.texts[f"iemocap/{utt}"] = text
                write_wav(session / "sentences" / "wav" / dialog / f"{utt}.wav", fake.sr, seed=n + i)
                if code in IEMOCAP_EMOTIONS:
                    fake.good[f"iemocap/{utt}"] = IEMOCAP_EMOTIONS[code]
                else:
                    fake.excluded[code] += 1
            write_labels(session, dialog, blocks)
            (session / "dialog" / "transcriptions").mkdir(parents=True, exist_ok=True)
            (session / "dialog" / "transcriptions" / f"{dialog}.txt").write_text("".join(said))
        # macOS AppleDouble files among the label files, and the per-evaluator folders: never read
        emo = session / "dialog" / "EmoEvaluation"
        (emo / f"._Ses{n:02d}F_impro01.txt").write_bytes(
            b"\x00\x05\x16\x07 junk [1.0 - 2.0]\tx\tang\t[1, 1, 1]"
        )
        (emo / "Categorical").mkdir(exist_ok=True)
        (emo / "Categorical" / f"Ses{n:02d}F_impro01_e2_cat.txt").write_text(
            "Ses01F_impro01_F000 :Neutral;\n"
        )
    if quirks:
        n = sessions[0]
        dialog = f"Ses{n:02d}F_impro01"
        codes = ["ang", "ang", "sad", "ang", "sad", "hap"]
        names = [f"{dialog}_F{90 + i:03d}.wav" for i in range(6)]
        session = base / f"Session{n}"
        extra = [
            iemocap_block(name[:-4], code, i) for i, (name, code) in enumerate(zip(names, codes, strict=True))
        ]
        with open(session / "dialog" / "EmoEvaluation" / f"{dialog}.txt", "a") as f:
            f.write("".join(extra))
        _add_quirks(
            fake,
            session / "sentences" / "wav" / dialog,
            names,
            bad_name=f"{dialog}.wav",
            listed=(f"iemocap/{names[5][:-4]}", "happy"),
        )
    return fake


def write_labels(session: Path, dialog: str, blocks: Sequence[str]) -> Path:
    path = session / "dialog" / "EmoEvaluation" / f"{dialog}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(IEMOCAP_HEADER + "".join(blocks))
    return path


MSP_EMOTIONS = {
    "A": "angry",
    "S": "sad",
    "H": "happy",
    "U": "surprised",
    "F": "fearful",
    "D": "disgust",
    "C": "contempt",
    "N": "neutral",
}
MSP_HEADER = "FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set"


def make_msppodcast(root: Path, *, audio_dir: str = "Audios", quirks: bool = False) -> FakeCorpus:
    """MSP-Podcast: three identified speakers, one per partition (Train, Development, Test1), each with every
    class; Unknown-speaker turns in Test2 (kept) and one without a partition (excluded); O and X turns."""
    fake = FakeCorpus("msp-podcast", root, sr=16_000)
    rows: list[str] = [MSP_HEADER]
    speakers = [("127", "Male", "Train"), ("1003", "Female", "Development"), ("55", "Female", "Test1")]
    podcast = 1
    for spk, gender, part in speakers:
        for i, code in enumerate([*MSP_EMOTIONS, "O", "X"]):
            stem = f"MSP-PODCAST_{podcast:04d}_{i + 1:04d}"
            write_wav(root / audio_dir / f"{stem}.wav", fake.sr, seed=podcast + i)
            rows.append(f"{stem}.wav,{code},{3 + i % 3}.2,{4 - i % 2}.0,3.6,{spk},{gender},{part}")
            # transcripts for the identified speakers' turns (short replies recur across speakers)
            (root / "Transcripts").mkdir(parents=True, exist_ok=True)
            (root / "Transcripts" / f"{stem}.txt").write_text(f"Short reply {i % 4}.\n")
            if code in MSP_EMOTIONS:
                fake.good[f"msp-podcast/{stem}"] = MSP_EMOTIONS[code]
                fake.texts[f"msp-podcast/{stem}"] = f"Short reply {i % 4}."
            else:
                fake.excluded[code] += 1
        podcast += 1
    for i, (code, part) in enumerate([("N", "Test2"), ("A", "Test2"), ("H", ""), ("S", "Test2")]):
        stem = f"MSP-PODCAST_{podcast:04d}_{i + 1:04d}"
        write_wav(root / audio_dir / f"{stem}.wav", fake.sr, seed=40 + i)
        rows.append(f"{stem}.wav,{code},4.0,4.0,4.0,Unknown,{'Female' if i % 2 else 'Male'},{part}")
        if part:
            fake.good[f"msp-podcast/{stem}"] = MSP_EMOTIONS[code]
        else:
            fake.excluded["no partition"] += 1
    if quirks:
        names = [f"MSP-PODCAST_0099_{i + 1:04d}.wav" for i in range(6)]
        for name, code in zip(names, ["A", "A", "S", "A", "S", "H"], strict=True):
            rows.append(f"{name},{code},4.0,4.0,4.0,127,Male,Train")
        _add_quirks(
            fake,
            root / audio_dir,
            names,
            bad_name="MSP-PODCAST_0099.wav",
            listed=(f"msp-podcast/{names[5][:-4]}", "happy"),
        )
    (root / "Labels").mkdir(parents=True, exist_ok=True)
    (root / "Labels" / "labels_consensus.csv").write_text("\n".join(rows) + "\n")
    return fake


ESD_FOLDERS = {
    "Neutral": "neutral",
    "Angry": "angry",
    "Happy": "happy",
    "Sad": "sad",
    "Surprise": "surprised",
}
ESD_SPEAKERS = {"0001": ("female", "Mandarin"), "0011": ("male", "English")}


def make_esd(root: Path, *, layout: str = "flat", quirks: bool = False) -> FakeCorpus:
    """ESD with speakers 0001 (female, Mandarin) and 0011 (male, English), two takes per emotion.

    layout: "flat" (``0001/Angry/0001_000351.wav``), "split" (takes 1 and 2 under ``train/`` and
    ``test/``) or "wrapped" (flat, under ``Emotion Speech Dataset/``).
    """
    fake = FakeCorpus("esd", root, sr=16_000)
    base = root / "Emotion Speech Dataset" if layout == "wrapped" else root
    for spk in ESD_SPEAKERS:
        lines = []
        for e, (folder, emotion) in enumerate(ESD_FOLDERS.items()):
            for k in (1, 2):
                stem = f"{spk}_{e * 350 + k:06d}"
                sub = ("train" if k == 1 else "test") if layout == "split" else ""
                write_wav(base / spk / folder / sub / f"{stem}.wav", fake.sr, seed=e + k)
                fake.good[f"esd/{stem}"] = emotion
                fake.texts[f"esd/{stem}"] = f"sentence {k} said in {folder}"
                lines.append(f"{stem}\tsentence {k} said in {folder}\t{folder}")
        (base / spk / f"{spk}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if quirks:
        names = [f"0011_{360 + i:06d}.wav" for i in range(6)]
        _add_quirks(
            fake,
            base / "0011" / "Angry" / ("train" if layout == "split" else ""),
            names,
            bad_name="0011_abc.wav",
            listed=(f"esd/{names[5][:-4]}", "angry"),
        )
    return fake
