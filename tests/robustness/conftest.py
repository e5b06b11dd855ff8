"""One fake CREMA-D tree holding every bad case next to good clips (written once per session), its scan, and
the tiny trained run (tests/conftest.py's ``cnn_run``) the predict, evaluate and service checks use."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from emoshift.corpora.base import Scan
from tests.robustness.badfiles import CASES, Case, _wav, speechlike

SENTENCES = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")
EMOTIONS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
GOOD_ACTORS = (1001, 1002)


@dataclass
class BadTree:
    root: Path  # the CREMA-D folder (AudioWAV/ inside)
    paths: dict[str, Path]  # case name -> its path
    good: list[Path]  # usable clips that every entry point must keep


def _name(i: int) -> str:
    return f"1003_{SENTENCES[i % 12]}_{EMOTIONS[(i // 12) % 6]}_XX.wav"


@pytest.fixture(scope="session")
def bad_tree(tmp_path_factory: pytest.TempPathFactory) -> BadTree:
    root = tmp_path_factory.mktemp("robust") / "crema-d"
    audio = root / "AudioWAV"
    audio.mkdir(parents=True)
    lines = ["ActorID,Age,Sex,Race,Ethnicity", "1001,51,Male,Caucasian,Not Hispanic",
             "1002,21,Female,Asian,Not Hispanic", "1003,30,Female,Caucasian,Not Hispanic"]
    (root / "VideoDemographics.csv").write_text("\n".join(lines) + "\n")
    good = []
    for a in GOOD_ACTORS:
        for j, emo in enumerate(EMOTIONS):
            path = audio / f"{a}_IEO_{emo}_HI.wav"
            _wav(path, speechlike(seed=a + j))
            good.append(path)
    paths: dict[str, Path] = {}
    for i, case in enumerate(CASES):
        name = os.fsdecode(case.filename) if case.filename else _name(i)
        path = audio / (name if case.filename else name[:-4] + case.ext)
        case.write(path)
        paths[case.name] = path
    return BadTree(root, paths, good)


@pytest.fixture(scope="session")
def bad_scan(bad_tree: BadTree) -> Scan:
    from emoshift.corpora import scan

    return scan("crema-d", str(bad_tree.root), labels="six", workers=2)


def case_ids(cases: tuple[Case, ...] = CASES) -> list[str]:
    return [c.name for c in cases]
