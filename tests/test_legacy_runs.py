"""Run directories written before issue 19 (the code of commit 5f91e50: model.json an untyped dict, the task a
string) still load, evaluate, export and predict the same with today's code.

tests/fixtures/legacy_runs/ holds three tiny runs and what that code gave for each (expected.json; how they
were made: tests/fixtures/legacy_runs/make.py): a categorical CNN, a dimensional one (arousal and valence) and
a 2-fold cross-validation run. The corpora are regenerated here exactly as make.py generated them.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

LEGACY = Path(__file__).parent / "fixtures" / "legacy_runs"
EXPECTED: dict[str, Any] = json.loads((LEGACY / "expected.json").read_text())
TOL = 2e-6  # predictions are written with 6 decimals; parity is checked against its own tolerance
# keys later issues added to what evaluation writes (issue 24: a collapsed model is called out, copies of training
# audio among the test files are counted; issue 20: a run is one training seed, its predictions carry it, and the
# share of test utterances saying a training text; issue 22: calibration scores with their intervals, the
# abstention statement, agreement with raters' votes); all else is equal
ADDED_SINCE = {"collapsed", "training_audio", "seeds", "n_seeds", "seed_mean", "seed_sd", "seed", "text_overlap",
               "ece", "mce", "brier", "nll", "calibration", "abstention", "agreement", "ci95_method"}


@pytest.fixture(scope="module")
def rated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.corpora.fakes_rated import make_rated

    return make_rated(tmp_path_factory.mktemp("legacy") / "rated", speakers=6, per_speaker=6, seconds=1.6)


def _same(got: Any, want: Any, where: str = "") -> None:
    """Equal, with floats to ``TOL`` (what the old code computed, give or take the last bit)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) - ADDED_SINCE == set(want), f"{where}: {sorted(got)} != {sorted(want)}"
        for k in want:
            _same(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: {got!r:.80} != {want!r:.80}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _same(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(got, bool):
        assert got == pytest.approx(want, abs=TOL, nan_ok=True), where
    else:
        assert got == want, where


def _rows(path: Path) -> dict[str, dict[str, Any]]:
    """Predictions by id, without the path (where the corpus was), numbers as numbers."""

    def num(v: str) -> Any:
        try:
            return float(v)
        except ValueError:
            return v

    with open(path, newline="") as f:
        return {r["id"]: {k: num(v) for k, v in r.items() if k != "path"} for r in csv.DictReader(f)}


def _case(name: str, synth_tiny: Path, rated: Path) -> tuple[dict[str, str], list[Path]]:
    if name == "dim":
        return {"rated": str(rated)}, [rated.parent / c for c in EXPECTED[name]["clips"]]
    roots = {"ravdess": str(synth_tiny / "ravdess"), "crema-d": str(synth_tiny / "crema-d")}
    return roots, [synth_tiny / c for c in EXPECTED[name]["clips"]]


@pytest.mark.parametrize("name", ["cnn", "dim", "folds"])
def test_a_run_written_before_issue_19_evaluates_exports_and_predicts_the_same(
    name: str, synth_tiny: Path, rated: Path, tmp_path: Path
) -> None:
    from emoshift.core.rundir import RunDir
    from emoshift.deploy.export import export_runs
    from emoshift.deploy.predict import Predictor
    from emoshift.evaluation.evaluate import evaluate_run
    from emoshift.evaluation.metrics import bootstrap_ci, read_predictions
    from emoshift.models.weights import load_model

    want = EXPECTED[name]
    run = tmp_path / name
    shutil.copytree(LEGACY / name, run)
    before = json.loads((run / "model.json").read_text())
    record = RunDir.of(run).info()
    assert record.to_json() == before  # reads, and would write back, exactly what the old code wrote
    _, info = load_model(run)
    assert info.is_ensemble == (name == "folds")

    roots, clips = _case(name, synth_tiny, rated)
    evaluate_run(run, roots, progress=False, cache_dir=str(tmp_path / "cache"))
    for corpus in roots:
        metrics = json.loads(RunDir.of(run).metrics(corpus).read_text())
        metrics.pop("skipped")
        want_metrics = dict(want["metrics"][corpus])
        if name != "dim" and want_metrics["ci95"] is not None:
            # changed on purpose: issue 20 replaced the percentile speaker bootstrap of the categorical ci95 by
            # the speaker jackknife t-interval, checked against today's method on the same predictions (which
            # are checked equal to the old ones below), not against the old numbers
            rows = read_predictions(RunDir.of(run).predictions(corpus))
            true, pred, speakers = ([r[c] for r in rows] for c in ("true", "pred", "speaker"))
            want_metrics["ci95"] = bootstrap_ci(true, pred, speakers, want_metrics["labels"])
        _same(metrics, want_metrics, f"{name} metrics/{corpus}")
        got = _rows(RunDir.of(run).predictions(corpus))
        _same(got, {i: {k: _num(v) for k, v in r.items()} for i, r in want["predictions"][corpus].items()},
              f"{name} predictions/{corpus}")

    torch_out = [_prediction(Predictor(run, backend="torch").predict_file(c)) for c in clips]
    _same(torch_out, want["predict_torch"], f"{name} predict (torch)")

    report = export_runs([run], max_files=6)
    # the report's keys the old code wrote (the parity check itself grew more keys since: issue 24)
    parity, want_parity = report["parity"], want["export"]["parity"]
    assert parity["max_abs_diff"] <= 1e-4 and not parity.get("failing")
    assert (parity["files"], parity["windows"]) == (want_parity["files"], want_parity["windows"])
    got_report = {k: report[k] for k in want["export"] if k != "parity"}
    _same(got_report, {k: v for k, v in want["export"].items() if k != "parity"}, f"{name} export report")

    onnx_out = [_prediction(Predictor(run, backend="onnx").predict_file(c)) for c in clips]
    _same(onnx_out, want["predict_onnx"], f"{name} predict (onnx)")


def _num(v: Any) -> Any:
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


def _prediction(p: Any) -> dict[str, Any]:
    d = p.to_dict()
    d.pop("file", None)
    d.pop("path", None)
    return d  # type: ignore[no-any-return]
