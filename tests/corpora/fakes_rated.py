"""A manifest corpus with dimensional ratings a model can learn: arousal follows each clip's pitch, valence its
loudness, dominance their mean (1-5, with a little rater noise), so CCC on held-out speakers must be well above 0
for a model that learnt anything, and about 0 for one that did not."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16_000
SCALE = (1.0, 5.0)
F0 = (120.0, 480.0)
AMP = (0.03, 0.6)


def clip(f0: float, amp: float, *, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A voiced-like tone: five harmonics at ``f0`` with a slow vibrato, peak ``amp``, a little noise."""
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))) / SR
    wave = sum(np.sin(k * phase) / k for k in range(1, 6))
    wave = wave / np.abs(wave).max() * amp
    return (wave + rng.normal(0, 0.002, t.size)).astype(np.float32)


def make_rated(
    root: Path, *, speakers: int = 10, per_speaker: int = 12, seconds: float = 1.2, seed: int = 0, unrated: int = 0
) -> Path:
    """Write ``root/rated.csv`` (path, speaker, gender, emotion, arousal, valence, dominance) and its audio;
    the first ``unrated`` rows have no valence rating."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(speakers):
        for i in range(per_speaker):
            u_pitch, u_loud = rng.uniform(), rng.uniform()
            f0 = F0[0] * (F0[1] / F0[0]) ** u_pitch
            amp = AMP[0] * (AMP[1] / AMP[0]) ** u_loud
            path = root / "wav" / f"s{s:02d}_{i:02d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, clip(f0, amp, seconds=seconds, rng=rng), SR)
            arousal = float(np.clip(1 + 4 * u_pitch + rng.normal(0, 0.1), *SCALE))
            valence = float(np.clip(1 + 4 * u_loud + rng.normal(0, 0.1), *SCALE))
            rows.append({
                "path": f"wav/{path.name}", "speaker": f"s{s:02d}", "gender": "female" if s % 2 else "male",
                "emotion": "happy" if arousal > 3 else "neutral",
                "arousal": f"{arousal:.3f}", "valence": f"{valence:.3f}", "dominance": f"{(arousal + valence) / 2:.3f}",
            })
    for row in rows[:unrated]:
        row["valence"] = ""
    table = root / "rated.csv"
    with open(table, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return table


def rated_overrides(table: Path, cache: Path, *, name: str = "rated") -> list[str]:
    """--set overrides for a tiny dimensional CNN run on the rated table (seconds on 2 CPU cores)."""
    return [
        "task=dimensional",
        f"data.corpora=[{name}]",
        f"data.roots.{name}={table}",
        f"data.manifest.scale=[{SCALE[0]:g}, {SCALE[1]:g}]",
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
