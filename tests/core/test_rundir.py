"""RunDir: the run-directory contract (paths, completeness, model.json errors) and its torch-free import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emoshift.core.rundir import MODEL_FORMAT, RunDir, RunError, write_model_json
from tests.imports import heavy_loaded


def test_paths_follow_the_contract(tmp_path: Path) -> None:
    run = RunDir.of(tmp_path)
    rel = {
        "config": run.config,
        "weights": run.weights,
        "model_json": run.model_json,
        "log": run.log,
        "done": run.done,
        "checkpoints": run.checkpoints,
        "last": run.last_checkpoint,
        "best": run.best_weights,
        "split": run.split("ravdess"),
        "metrics": run.metrics("crema-d"),
        "predictions": run.predictions("ravdess"),
        "confusion": run.confusion_plot("ravdess"),
        "curves": run.curves_plot,
        "audit_json": run.audit_json("ravdess"),
        "audit_md": run.audit_md("ravdess"),
        "audit_bars": run.audit_plot("ravdess", "gender", "bars"),
        "compare": run.compare_json("other-run", "ravdess"),
        "teacher": run.teacher_logits("abc"),
    }
    assert {k: p.relative_to(tmp_path).as_posix() for k, p in rel.items()} == {
        "config": "config.yaml",
        "weights": "model.safetensors",
        "model_json": "model.json",
        "log": "log.csv",
        "done": "done.json",
        "checkpoints": "checkpoints",
        "last": "checkpoints/last.ckpt",
        "best": "checkpoints/best.safetensors",
        "split": "splits/ravdess.csv",
        "metrics": "metrics/crema-d.json",
        "predictions": "predictions/ravdess.csv",
        "confusion": "plots/confusion_ravdess.png",
        "curves": "plots/curves.png",
        "audit_json": "audit/ravdess.json",
        "audit_md": "audit/ravdess.md",
        "audit_bars": "audit/ravdess_gender_bars.png",
        "compare": "compare/other-run_ravdess.json",
        "teacher": "teacher_logits/abc.npy",
    }
    assert run.metrics("x").parent == run.metrics_dir and run.audit_json("x").parent == run.audit_dir


def test_only_a_fold_inside_a_run_draws_no_figures(tmp_path: Path) -> None:
    run = RunDir.of(tmp_path / "run")
    (tmp_path / "run").mkdir()
    assert run.draws_figures and RunDir.of(run.fold(0)).draws_figures  # no config.yaml above: not a fold run yet
    run.config.write_text("name: x\n")
    assert not RunDir.of(run.fold(0)).draws_figures and not RunDir.of(run.fold(12)).draws_figures
    assert run.draws_figures and RunDir.of(run.seed(0)).draws_figures  # a seed run is a complete run, figures too
    assert RunDir.of(tmp_path / "run" / "folds" / "best").draws_figures


def test_complete_only_with_done_weights_and_model_json(tmp_path: Path) -> None:
    run = RunDir.of(tmp_path)
    assert not run.is_complete() and run.done_info() == {}
    run.weights.write_bytes(b"w")
    write_model_json(run, {"model": "resnet18", "labels": ["a", "b"]})
    assert not run.is_complete()  # done.json is written last: without it the run is unfinished
    run.done.write_text('{"fingerprint": "f00"}')
    assert run.is_complete() and run.done_info() == {"fingerprint": "f00"}
    run.weights.unlink()
    assert not run.is_complete()


def test_model_json_carries_its_format(tmp_path: Path) -> None:
    run = RunDir.of(tmp_path)
    write_model_json(run, {"model": "resnet18", "labels": ["a", "b"]})
    assert run.info().to_json() == {"format": MODEL_FORMAT, "model": "resnet18", "labels": ["a", "b"]}
    assert json.loads(run.model_json.read_text()) == run.info().to_json()  # written as read


def test_metrics_corpora_lists_the_metrics_files(tmp_path: Path) -> None:
    run = RunDir.of(tmp_path)
    assert run.metrics_corpora() == []
    for c in ("savee", "crema-d"):
        run.metrics(c).parent.mkdir(exist_ok=True)
        run.metrics(c).write_text("{}")
    assert run.metrics_corpora() == ["crema-d", "savee"]


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "model.json is missing"), ("{not json", "not valid JSON"), ("[1, 2]", "JSON object")],
)
def test_info_errors_are_one_line(tmp_path: Path, content: str | None, message: str) -> None:
    run = RunDir.of(tmp_path)
    if content is not None:
        run.model_json.write_text(content)
    with pytest.raises(RunError, match=message) as err:
        run.info()
    assert "\n" not in str(err.value)


def test_unreadable_done_json_is_a_run_error(tmp_path: Path) -> None:
    run = RunDir.of(tmp_path)
    run.done.write_text("{")
    with pytest.raises(RunError, match="done.json is not valid JSON"):
        run.done_info()


TORCH_FREE = ("emoshift.core.rundir", "emoshift.study.report", "emoshift.evaluation.audit")


@pytest.mark.parametrize("module", TORCH_FREE)
def test_import_is_torch_free(module: str) -> None:
    assert "torch" not in heavy_loaded(module, together=TORCH_FREE)
