"""The study tests' session fixtures: the tiny corpus pair and the whole study made once per test run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.once import built_once
from tests.study import studies


@pytest.fixture(scope="session")
def tiny_corpus(synth_tiny: Path) -> dict[str, str]:
    """The session's tiny synthetic pair (tests/conftest.py), not a second copy of it: the study only reads it."""
    return {"ravdess": str(synth_tiny / "ravdess"), "crema-d": str(synth_tiny / "crema-d")}


@pytest.fixture(scope="session")
def full_study(tiny_corpus: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, float]:
    """Every phase of configs/study.yaml, one after the other (``--jobs 1``): (OUT, output, seconds). Built once
    per test run, also across xdist workers (test_study checks it, test_fanout compares its parallel runs with
    it); read-only to the tests, which copy it to change it."""

    def build(folder: Path) -> dict[str, object]:
        out = folder / "out"
        # L2b draws its own figures, which the report then embeds; the others draw none, and the report draws the
        # images it shows for them (both paths of report._confusions and _curves run)
        code, output, seconds = studies.run(tiny_corpus, out, "--set", "L2b:evaluation.figures=true")
        assert code == 0, output
        return {"out": str(out), "output": output, "seconds": seconds}

    built = built_once(tmp_path_factory, "full-study", build)
    return Path(built["out"]), built["output"], built["seconds"]
