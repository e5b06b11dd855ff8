"""The CLI's error rule (cli/__init__.py): an EmoshiftError is the user's, printed as one line with exit code 2;
anything else is a bug and keeps its traceback. ``train``, ``evaluate``, ``tune``, ``audit`` and ``compare`` catch
nothing themselves,
so a KeyError or FileNotFoundError deep in the pipeline is no longer shown as ``error: labels``."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from emoshift.cli import app

COMMANDS = {
    "train": ("emoshift.training.train.train", lambda tmp: ["train", "--corpus", f"ravdess={tmp}", "-o", str(tmp / "run")]),
    "evaluate": ("emoshift.evaluation.evaluate.evaluate_run", lambda tmp: ["evaluate", str(tmp), "--on", f"ravdess={tmp}"]),
    "tune": ("emoshift.training.tune.tune",
             lambda tmp: ["tune", "--corpus", f"ravdess={tmp}", "--space", str(tmp / "space.yaml"), "-n", "1", "-o", str(tmp / "t")]),
    "audit": ("emoshift.evaluation.audit.audit_run", lambda tmp: ["audit", str(tmp), "--on", f"ravdess={tmp}"]),
    "adapt": ("emoshift.training.fewshot.adapt_few_shot",
              lambda tmp: ["adapt", str(tmp), "--on", f"crema-d={tmp}", "--labelled-speakers", "2", "-o", str(tmp / "a")]),
    "compare": ("emoshift.evaluation.compare.compare_runs",
                lambda tmp: ["compare", str(tmp / "a"), str(tmp / "b"), "--on", f"ravdess={tmp}"]),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("bug", [KeyError("labels"), FileNotFoundError("model.safetensors")])
def test_a_bug_keeps_its_traceback(command: str, bug: Exception, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    target, argv = COMMANDS[command]

    def broken(*args: object, **kwargs: object) -> None:
        raise bug

    monkeypatch.setattr(target, broken)
    result = CliRunner().invoke(app, argv(tmp_path))
    assert result.exit_code == 1 and result.exception is bug, result.output  # the exception itself, not exit 2
    assert "error:" not in result.output


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_user_error_is_one_line(command: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from emoshift.corpora import CorpusError

    target, argv = COMMANDS[command]

    def refused(*args: object, **kwargs: object) -> None:
        raise CorpusError("ravdess: no Actor_01 ... Actor_24 folders")

    monkeypatch.setattr(target, refused)
    result = CliRunner().invoke(app, argv(tmp_path))
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == ["error: ravdess: no Actor_01 ... Actor_24 folders"]
