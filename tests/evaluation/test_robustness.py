"""``emoshift evaluate RUN --on NAME=ROOT --perturb SPEC``: the same utterances scored clean and perturbed, the
paired UAR drop with its CI in ``metrics/<corpus>@<slug>.json``, the robustness plot, and no clean cache touched."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score
from typer.testing import CliRunner

from emoshift.cli import app
from emoshift.core.rundir import RunDir


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def perturbed(cnn_run: Path, synth_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A copy of the tiny CNN run evaluated on CREMA-D clean, then through the telephone line and -20 dB."""
    run = tmp_path_factory.mktemp("robust") / "run"
    shutil.copytree(cnn_run, run)
    on = f"crema-d={synth_tiny / 'crema-d'}"
    runner = CliRunner()
    first = runner.invoke(app, ["evaluate", str(run), "--on", on, "-q"])  # clean; the feature cache built
    assert first.exit_code == 0, first.output
    from emoshift.config import load_run_config

    cache = Path(load_run_config(run).data.cache_dir)
    before = _files(cache)
    result = runner.invoke(app, ["evaluate", str(run), "--on", on, "-q", "--perturb", "telephone", "-p", "gain:-20db"])
    assert result.exit_code == 0, result.output
    return {"run": run, "output": result.output, "cache": cache, "before": before, "synth": synth_tiny / "crema-d"}


def test_each_perturbation_gets_its_file_with_the_paired_drop(perturbed: dict) -> None:
    run = RunDir.of(perturbed["run"])
    with open(run.predictions("crema-d"), newline="") as f:
        clean = list(csv.DictReader(f))
    clean_uar = balanced_accuracy_score([r["true"] for r in clean], [r["pred"] for r in clean])
    paths = {r["path"] for r in clean}
    for slug, spec in (("telephone", "telephone"), ("gain_-20db", "gain:-20db")):
        m = json.loads(run.perturbed_metrics("crema-d", slug).read_text())
        assert m["perturbation"] == spec and m["corpus"] == "crema-d" and m["split"] == "all"
        # the same utterances, each paired; a clip that -20 dB makes silent is listed (by its own path), not lost
        assert m["n"] + len(m["unscored"]) == len(clean)
        assert all(u["reason"].startswith("silent") and u["path"] in paths for u in m["unscored"])
        if not m["unscored"]:
            assert m["uar_clean"] == pytest.approx(clean_uar)
        assert m["uar_drop"] == pytest.approx(m["uar_clean"] - m["uar"])
        lo, hi = m["uar_drop_ci95"]
        assert lo <= m["uar_drop"] <= hi
        assert set(m["ci95"]) >= {"accuracy", "uar"} and sum(map(sum, m["confusion"])) == m["n"]
    telephone = json.loads(run.perturbed_metrics("crema-d", "telephone").read_text())
    clean_metrics = json.loads(run.metrics("crema-d").read_text())
    assert telephone["confusion"] != clean_metrics["confusion"]  # the model heard the perturbed audio
    assert run.metrics_corpora() == ["crema-d", "ravdess"]  # the perturbed files are not corpora
    assert run.robustness_plot("crema-d").read_bytes()[:4] == b"\x89PNG"
    assert "robustness" in perturbed["output"] and "telephone" in perturbed["output"]


def test_the_clean_feature_cache_is_neither_read_nor_written_for_perturbed_audio(perturbed: dict) -> None:
    after = _files(perturbed["cache"])
    assert after == perturbed["before"]
    assert not [p for p in perturbed["cache"].iterdir() if p.name.startswith("emoshift-perturb-")]


def test_runs_scored_in_a_shared_block_perturb_each_clip_once(
    perturbed: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A study scores every run through the same channels: inside shared_perturbations() a second run reuses the
    first's copies (and their features), with the same scores, and the block removes them when it ends."""
    import emoshift.evaluation.robustness as robustness

    run = RunDir.of(perturbed["run"])
    writes: list[str] = []
    real_write = robustness.sf.write

    def counted(path: object, *args: object, **kwargs: object) -> None:
        writes.append(str(path))
        real_write(path, *args, **kwargs)

    monkeypatch.setattr(robustness.sf, "write", counted)
    before = json.loads(run.perturbed_metrics("crema-d", "telephone").read_text())
    synth = Path(perturbed["synth"])
    with robustness.shared_perturbations():
        first = robustness.evaluate_perturbations(run.path, {"crema-d": str(synth)}, ["telephone"], progress=False)
        n = len(writes)
        second = robustness.evaluate_perturbations(run.path, {"crema-d": str(synth)}, ["telephone"], progress=False)
        assert n == before["n"] + len(before["unscored"]) and len(writes) == n  # perturbed once, reused
        assert all(Path(w).is_file() for w in writes)
    assert not any(Path(w).exists() for w in writes)  # removed with the block
    for got in (first, second):
        assert got["crema-d"]["telephone"]["uar"] == before["uar"]
        assert got["crema-d"]["telephone"]["confusion"] == before["confusion"]


def test_perturbed_audio_is_deterministic(synth_tiny: Path) -> None:
    from emoshift.core.audio import read
    from emoshift.data.channel import parse_perturbation, perturbation_seed

    wave, sr = read(next((synth_tiny / "crema-d").rglob("*.wav")))
    p = parse_perturbation("noise:snr=10")
    seed = perturbation_seed(0, p.spec, "crema-d/1001_DFA_ANG_XX")
    np.testing.assert_array_equal(p.apply(wave, sr, seed), p.apply(wave, sr, seed))
    assert seed != perturbation_seed(0, p.spec, "crema-d/1001_DFA_HAP_XX")


def test_bad_specs_and_missing_clean_scores_are_one_line(cnn_run: Path, synth_tiny: Path, tmp_path: Path) -> None:
    on = f"crema-d={synth_tiny / 'crema-d'}"
    result = CliRunner().invoke(app, ["evaluate", str(cnn_run), "--on", on, "--perturb", "mp3:9000k"])
    assert result.exit_code == 2 and "outside 8..320" in result.output and "Traceback" not in result.output
    from emoshift.evaluation.robustness import evaluate_perturbations
    from emoshift.evaluation.scoring import EvaluationError

    run = tmp_path / "run"
    shutil.copytree(cnn_run, run, ignore=shutil.ignore_patterns("predictions"))
    with pytest.raises(EvaluationError, match=r"is missing: evaluate .* \(without --perturb\) first"):
        evaluate_perturbations(run, {"crema-d": str(synth_tiny / "crema-d")}, ["telephone"], progress=False)
