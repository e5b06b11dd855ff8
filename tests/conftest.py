"""Shared fixtures: the synthetic corpus (generated once per session) and a tiny, fast experiment config.

`make test` runs the suite in pytest-xdist workers (one per core). A session fixture that several test files
use is built once for the whole run, not once per worker: ``tests.once.built_once`` lets the first worker that needs it build
it into a folder every worker shares, while the others wait for it. Those fixtures are read-only to the tests
(a test that changes a run copies it first).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.once import built_once

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a model hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# The folders of long end-to-end tests, collected first. `make test`'s workers (xdist, --dist loadfile) take test
# files in collection order, so these start early and the many short files fill the gaps at the end instead of
# one long file running alone last. The order inside a folder is unchanged; no test depends on the order.
LONG_FIRST = ("crash", "study", "training", "deploy", "robustness")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        parts = item.path.relative_to(Path(__file__).parent).parts
        return LONG_FIRST.index(parts[0]) if len(parts) > 1 and parts[0] in LONG_FIRST else len(LONG_FIRST)

    items.sort(key=rank)  # stable


@pytest.fixture(scope="session")
def synth_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic RAVDESS + CREMA-D pair in the real layouts (seconds to generate)."""
    from emoshift.synth.generate import generate

    def build(folder: Path) -> Path:
        generate(folder / "tiny", scale="tiny", seed=0)
        return folder / "tiny"

    return Path(built_once(tmp_path_factory, "synth-tiny", build))


@pytest.fixture(scope="session")
def synth_more(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny synthetic IEMOCAP and manifest corpora (OUT/iemocap, OUT/manifest/manifest.csv)."""
    from emoshift.synth.generate import generate

    def build(folder: Path) -> Path:
        generate(folder / "more", scale="tiny", seed=0, corpora=("iemocap", "manifest"))
        return folder / "more"

    return Path(built_once(tmp_path_factory, "synth-more", build))


def tiny_overrides(root: Path, cache: Path, *, corpora: tuple[str, ...] = ("ravdess",)) -> list[str]:
    """--set overrides that make a run take seconds on 2 CPU cores."""
    sets = [
        f"data.corpora=[{', '.join(corpora)}]",
        f"data.cache_dir={cache}",
        "features.n_mels=32",
        "features.crop_s=1.0",
        "model.name=resnet18",
        "model.width_mult=0.125",
        "training.batch_size=16",
        "training.lr=0.003",
        "training.epochs=4",
        "training.early_stopping_patience=null",
        "evaluation.n_bootstrap=100",
        "trainer.progress=false",
    ]
    for name in ("ravdess", "crema-d"):
        sets.append(f"data.roots.{name}={root / name}")
    return sets


@pytest.fixture(scope="session")
def cnn_run(synth_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny ResNet run (1-s crops, 32 mels), trained for 2 epochs, temperature-scaled on its validation
    speakers (so every deploy test, export parity included, runs a calibrated graph); not exported."""
    from emoshift.config import load_config
    from emoshift.training.train import train

    def build(tmp: Path) -> Path:
        cfg = load_config(overrides=[*tiny_overrides(synth_tiny, tmp / "cache"), "training.epochs=2",
                                     "evaluation.calibrate=temperature"])
        return train(cfg, tmp / "run", progress=False)

    return Path(built_once(tmp_path_factory, "deploy-cnn", build))
