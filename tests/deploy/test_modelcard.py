"""RUN/README.md: written by training, Hugging Face layout, numbers from the run's own files."""

from __future__ import annotations

import json
from pathlib import Path

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
