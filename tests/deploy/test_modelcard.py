"""RUN/README.md: written by training, Hugging Face layout, numbers from the run's own files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emoshift.evaluation.modelcard import model_summary, render_model_card


def test_training_writes_model_card(cnn_run: Path) -> None:
    card = (cnn_run / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: emoshift" in card
    for section in ("## Model details", "## Training data", "## Protocol", "## Results", "## Fairness",
                    "## Intended use", "## Limitations", "## How to use", "onnxruntime"):
        assert section in card, section
    m = json.loads((cnn_run / "metrics" / "ravdess.json").read_text())
    if m["ci95"] is None:  # too few test speakers for an interval: the card says so, never a zero-width one
        assert f"{m['uar']:.3f} n/a ({m['speakers']} speakers)" in card
    else:
        assert f"{m['uar']:.3f} [{m['ci95']['uar'][0]:.3f}, {m['ci95']['uar'][1]:.3f}]" in card
    assert "acted speech" in card
    # the speakers sentence counts as the table does: train and val speakers, said apart
    s = model_summary(cnn_run)
    train, val = (s["training_data"][0]["speakers"].get(k, 0) for k in ("train", "val"))
    assert f"Training speakers: {train + val} ({train} trained on, {val} used for validation)" in card


def test_summary_counts_and_audit(cnn_run: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(cnn_run, run)
    s = model_summary(run)
    rows = (run / "splits" / "ravdess.csv").read_text().splitlines()[1:]
    assert sum(s["training_data"][0]["utterances"].values()) == len(rows)
    (run / "audit").mkdir()
    section = {"available": True, "p_value_uar": 0.5, "p_value_floor": 0.1, "best_uar": "female", "worst_uar": "male",
               "gap": {"uar": 0.1}, "groups": {"female": {"uar": 0.6}, "male": {"uar": 0.5}}}
    (run / "audit" / "ravdess.json").write_text(json.dumps({"corpus": "ravdess", "by": {"gender": section}}))
    assert "By gender: UAR ranges from 0.500 (male) to 0.600 (female)" in render_model_card(run)


def _snippet(card: str) -> str:
    after = card.split("With onnxruntime alone", 1)[1]
    return after.split("```python\n", 1)[1].split("```", 1)[0]


def test_card_onnx_snippet_scores_as_predict(exported: tuple[Path, dict], synth_tiny: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The card's onnxruntime-only code gives predict's numbers: a clip longer than the window (scored in
    windows) and one shorter than it with silence around it (trimmed), both at RAVDESS's 48 kHz."""
    import soundfile as sf

    from emoshift.deploy.predict import Predictor

    run, _ = exported
    card = (run / "README.md").read_text()
    assert "scoring a file as `emoshift predict` does" in card
    long = sorted((synth_tiny / "ravdess").rglob("*.wav"))[3]
    wave, sr = sf.read(long, dtype="float32")
    assert sr == 48_000 and len(wave) > 1.0 * sr  # the tiny model's window is 1 s
    short = tmp_path / "short.wav"
    quiet = np.zeros(int(0.15 * sr), np.float32)
    sf.write(short, np.concatenate([quiet, wave[: int(0.6 * sr)], quiet]), sr)
    monkeypatch.chdir(run.parent)  # the snippet names the run as the card does
    predictor = Predictor(run, backend="onnx")
    for clip in (long, short):
        scope: dict = {}
        exec(_snippet(card).replace("'speech.wav'", repr(str(clip))), scope)  # noqa: S102  (the card's own code)
        want = predictor.predict_file(clip).probabilities
        assert list(scope["meta"]["labels"]) == list(want)
        assert scope["mean"] == pytest.approx([want[k] for k in want], abs=1e-4), clip.name


def test_evaluate_and_audit_refresh_the_card(exported: tuple[Path, dict], synth_tiny: Path, tmp_path: Path) -> None:
    """`evaluate --on crema-d` adds its row to README.md (and so to /v1/model); `audit` adds its fairness line; the
    card names the audit's real flag."""
    import shutil

    from typer.testing import CliRunner

    from emoshift.cli import app

    run = tmp_path / "run"
    shutil.copytree(exported[0], run)
    card = (run / "README.md").read_text()
    assert "| crema-d |" not in card and f"`emoshift audit {run.name} --on NAME=ROOT`" in card
    res = CliRunner().invoke(app, ["evaluate", str(run), "--on", f"crema-d={synth_tiny / 'crema-d'}", "-q"])
    assert res.exit_code == 0, res.output
    card = (run / "README.md").read_text()
    n = json.loads((run / "metrics" / "crema-d.json").read_text())["n"]
    assert f"| crema-d | all | {n} |" in card  # no CREMA-D sentence was said in training: no mark
    assert "test (TEXT OVERLAP 100%)" in card and "- Text overlap (share of test utterances" in card  # RAVDESS
    assert "overlap" in res.output  # the results table's text overlap column
    res = CliRunner().invoke(app, ["audit", str(run), "--on", f"crema-d={synth_tiny / 'crema-d'}", "--resamples",
                                   "20", "--permutations", "20"])
    assert res.exit_code == 0, res.output
    card = (run / "README.md").read_text()
    assert "- crema-d: By " in card and "No fairness audit has been run" not in card
