"""Runs shared by the deploy tests (the tiny CNN run exported to ONNX once, ``exported``, is tests/conftest.py's:
the export-kill test reads it too), and helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.once import built_once


@pytest.fixture(scope="session")
def dim_exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, Path]:
    """A tiny dimensional CNN run (arousal and valence only: trained targets, not all three) on a rated table
    (tests/corpora/fakes_rated.py), exported to ONNX; returns (run, export report, the table)."""
    from emoshift.config import load_config
    from emoshift.deploy.export import export_runs
    from emoshift.training.train import train
    from tests.corpora.fakes_rated import make_rated, rated_overrides

    def build(tmp: Path) -> tuple[Path, dict, Path]:
        table = make_rated(tmp / "corpus", speakers=6, per_speaker=6, seconds=1.6)
        cfg = load_config(overrides=[*rated_overrides(table, tmp / "cache"), "data.targets=[arousal, valence]",
                                     "training.epochs=2"])
        run = train(cfg, tmp / "run", progress=False)
        return run, export_runs([run], max_files=4), table

    run, report, table = built_once(tmp_path_factory, "deploy-dim", build)
    return Path(run), report, Path(table)


class ToneBackend:
    """A stand-in model for segmentation tests: the label is the dominant pitch band of the window."""

    name = "tone"

    def __init__(self, window_s: float = 1.0) -> None:
        from emoshift.deploy.meta import ModelMeta

        self.meta = ModelMeta(labels=("low", "high"), input_kind="spectrogram", model="tone", window_s=window_s,
                              trim_silence=False, trim_top_db=40.0)
        self.calls = 0

    def values(self, waves: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        self.calls += 1
        spec = np.abs(np.fft.rfft(waves, axis=1))  # (B, F)
        freqs = np.fft.rfftfreq(waves.shape[1], 1 / 16_000)
        low = spec[:, (freqs > 100) & (freqs < 400)].sum(axis=1)
        high = spec[:, (freqs > 600) & (freqs < 1200)].sum(axis=1)
        p_high = high / np.maximum(low + high, 1e-9)
        return np.stack([1 - p_high, p_high], axis=1).astype(np.float32)


def tones(plan: list[tuple[str, float]], sr: int = 16_000) -> np.ndarray:
    """Concatenated tones: ("low", seconds) = 200 Hz, ("high", s) = 800 Hz, ("silence", s) = zeros."""
    parts = []
    for kind, seconds in plan:
        t = np.arange(int(seconds * sr)) / sr
        f = {"low": 200.0, "high": 800.0}.get(kind)
        parts.append(np.zeros_like(t) if f is None else 0.3 * np.sin(2 * np.pi * f * t))
    return np.concatenate(parts).astype(np.float32)
