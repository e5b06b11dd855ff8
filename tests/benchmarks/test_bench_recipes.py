"""The learning-curve helpers of benchmarks/bench_recipes.py (the benchmark itself is never run as a test)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_recipes.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_recipes", BENCH)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["bench_recipes"] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_subset_root_keeps_the_first_actors_and_links_crema(bench, tmp_path: Path) -> None:
    root = tmp_path / "synth"
    for a in range(1, 5):
        d = root / "ravdess" / f"Actor_{a:02d}"
        d.mkdir(parents=True)
        (d / f"03-01-01-01-01-01-{a:02d}.wav").write_bytes(b"RIFF" + bytes([a]))
    (root / "ravdess" / "notes.txt").write_text("not an actor")
    (root / "crema-d" / "AudioWAV").mkdir(parents=True)
    out = bench.subset_root(root, 2, tmp_path / "sub")
    assert sorted(p.name for p in (out / "ravdess").iterdir()) == ["Actor_01", "Actor_02"]
    copied = out / "ravdess" / "Actor_02" / "03-01-01-01-01-01-02.wav"
    assert copied.read_bytes() == b"RIFF\x02"
    assert (out / "crema-d" / "AudioWAV").is_dir()
    assert bench.subset_root(root, 2, tmp_path / "sub") == out  # idempotent
    with pytest.raises(SystemExit, match="only 4 actor folders"):
        bench.subset_root(root, 5, tmp_path / "more")


def test_plot_curve_draws_every_model(bench, tmp_path: Path) -> None:
    def row(model: str, uar: float, ci: list[float] | None) -> dict:
        m = {"uar": uar, "ci95": {"uar": ci} if ci else None}
        return {"model": model, "in": m, "cross": m}

    curve = {12: [row("egemaps", 0.9, [0.85, 0.93]), row("resnet18", 0.6, None)],
             24: [row("egemaps", 0.93, [0.9, 0.95]), row("resnet18", 0.8, [0.75, 0.85])]}
    path = tmp_path / "plots" / "curve.png"
    bench.plot_curve(curve, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


SIX = ["angry", "disgust", "fearful", "happy", "neutral", "sad"]


def _fake_baseline(run: Path, jobs: list, corpus: str, folds: int | None) -> None:
    """A baseline's predictions CSV for ``corpus``'s six-label takes (its own columns; ``fold`` by speaker)."""
    takes = [j for j in jobs if j.corpus == corpus and j.emotion in SIX]
    speakers = sorted({j.speaker.id for j in takes})
    lines = ["id,path,speaker,true,pred," + ",".join(f"p_{lab}" for lab in SIX) + (",fold" if folds else "")]
    for j in takes:
        fold = f",{speakers.index(j.speaker.id) % folds}" if folds else ""
        lines.append(f"{corpus}/{Path(j.path).stem},{j.path},{corpus}/{j.speaker.id},{j.emotion},neutral,"
                     + ",".join("0" for _ in SIX) + fold)
    (run / "predictions").mkdir(parents=True, exist_ok=True)
    (run / "predictions" / f"{corpus}.csv").write_text("\n".join(lines) + "\n")


def test_oracle_row_scores_the_generators_own_prosody_on_the_baselines_folds(bench, tmp_path: Path) -> None:
    from emoshift.synth.plan import plan

    root = tmp_path / "synth"
    root.mkdir()
    jobs, _ = plan(root, scale="tiny", seed=0)
    run = tmp_path / "runs" / "egemaps"
    _fake_baseline(run, jobs, "ravdess", folds=2)
    _fake_baseline(run, jobs, "crema-d", folds=None)
    assert bench.oracle_row(root, run, 2) is None  # not marked as an emoshift synthetic corpus
    (root / ".synth.json").write_text('{"scale": "tiny", "seed": 0}')
    row = bench.oracle_row(root, run, 2)
    assert row["model"] == "oracle-prosody" and row["epochs"] is None
    # the emotions are rendered as distinct prosody: the parameters alone separate them in-domain
    assert row["in"]["uar"] > 0.9 and row["in"]["speakers"] == len({j.speaker.id for j in jobs if j.corpus == "ravdess"})
    assert 1 / 6 < row["cross"]["uar"] <= 1.0 and row["cross"]["n"] > 0
    assert set(row["in"]["fold_mean"]) == {"uar"}
