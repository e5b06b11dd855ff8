"""The public API in ``emoshift/__init__.py``: every name resolves, ``import emoshift`` stays light, and the
documented workflow (scan -> split -> config -> train -> evaluate -> predict) runs through it alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import emoshift
from tests.conftest import tiny_overrides

REQUIRED = {
    "scan", "list_corpora", "Utterance", "log_mel", "FeatureConfig", "make_split", "ExperimentConfig",
    "train", "evaluate_run", "Predictor", "list_models", "get_model", "audit_run", "compare_runs", "run_study",
}  # fmt: skip


def test_every_public_name_resolves() -> None:
    assert set(emoshift.__all__) >= REQUIRED
    for name in emoshift.__all__:
        assert getattr(emoshift, name) is not None, name


def test_import_is_light() -> None:
    code = "import sys, emoshift; bad = [m for m in ('torch', 'transformers', 'lightning') if m in sys.modules]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_unknown_name_is_an_attribute_error() -> None:
    try:
        emoshift.no_such_thing  # noqa: B018
    except AttributeError as e:
        assert "no_such_thing" in str(e)
    else:  # pragma: no cover - the property under test
        raise AssertionError("emoshift.no_such_thing resolved")


def test_documented_workflow(synth_tiny: Path, tmp_path: Path) -> None:
    sc = emoshift.scan("ravdess", str(synth_tiny / "ravdess"))
    split = emoshift.make_split(sc.utterances, emoshift.SplitConfig())
    test_speakers = {u.speaker for u in sc.utterances if split.assignment[u.id] == "test"}
    train_speakers = {u.speaker for u in sc.utterances if split.assignment[u.id] == "train"}
    assert test_speakers and not test_speakers & train_speakers

    cfg = emoshift.load_config(None, tiny_overrides(synth_tiny, tmp_path / "cache"))
    assert isinstance(cfg, emoshift.ExperimentConfig)
    run = emoshift.train(cfg, tmp_path / "run", progress=False)
    metrics = emoshift.evaluate_run(run, {"crema-d": str(synth_tiny / "crema-d")}, progress=False)
    assert metrics["crema-d"]["split"] == "all"

    wav = next((synth_tiny / "crema-d").rglob("*.wav"))
    pred = emoshift.Predictor(run).predict_file(wav)
    assert pred.error is None and pred.label in pred.probabilities
    assert abs(sum(pred.probabilities.values()) - 1.0) < 1e-5


def test_all_lists_exactly_the_lazy_names() -> None:
    assert sorted(emoshift.__all__) == sorted(emoshift._API)
