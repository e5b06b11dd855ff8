"""`emoshift adapt` (training/adapt.py): AdaBN into a new run keeps every weight, never reads a target label
(instrumented), evaluation.adapt: adabn adapts a copy per corpus; bad input is one line, exit 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emoshift.cli import app
from emoshift.corpora.base import Utterance

LABEL_FIELDS = ("emotion", "native_label", "votes", "arousal", "valence", "dominance", "agreement")


def _no_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on, reading any label of any utterance raises (the utterances already made keep their audio)."""

    def boom(self: Utterance) -> None:
        raise AssertionError("a target label was read")

    for name in LABEL_FIELDS:
        monkeypatch.setattr(Utterance, name, property(boom))


def test_adabn_run_keeps_the_weights_and_never_reads_a_target_label(
    cnn_run: Path, synth_tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safetensors.torch import load_file

    import emoshift.training.adapt as adapt_mod

    real_scan = adapt_mod.scan_source

    def scan_then_hide_labels(*args, **kwargs):  # the loader reads its own files; nothing after it sees a label
        sc = real_scan(*args, **kwargs)
        _no_labels(monkeypatch)
        return sc

    monkeypatch.setattr(adapt_mod, "scan_source", scan_then_hide_labels)
    done = adapt_mod.adapt_run(adapt_mod.AdaptRequest(cnn_run, "crema-d", str(synth_tiny / "crema-d"),
                                                      tmp_path / "run2", method="adabn"), progress=False)
    monkeypatch.undo()
    n = len(list((synth_tiny / "crema-d" / "AudioWAV").glob("*.wav")))
    assert done.record == {"method": "adabn", "corpus": "crema-d", "root": str((synth_tiny / "crema-d").resolve()),
                           "clips": n, "from": str(cnn_run.resolve())}
    assert json.loads((done.run / "model.json").read_text())["adapted"] == done.record
    before, after = load_file(str(cnn_run / "model.safetensors")), load_file(str(done.run / "model.safetensors"))
    assert before.keys() == after.keys()
    stats = [k for k in before if "running_" in k]
    assert stats and all(not before[k].equal(after[k]) for k in stats)  # every batch norm re-estimated ...
    assert all(before[k].equal(after[k]) for k in before if "running_" not in k and "num_batches" not in k)  # only
    card = (done.run / "README.md").read_text()
    assert f"Adapted to crema-d ({n} unlabelled clips" in card and "by adabn" in card
    assert (done.run / "splits").is_dir() and not (done.run / "metrics").exists()  # the old scores are not its own
    assert not list(tmp_path.glob(".*partial"))


def test_evaluation_adapt_adabn_scores_a_copy(cnn_run: Path, synth_tiny: Path) -> None:
    import torch

    from emoshift.config import load_run_config
    from emoshift.core.rundir import RunDir
    from emoshift.corpora import scan
    from emoshift.evaluation.scoring import Scorer
    from emoshift.models.weights import load_model

    cfg = load_run_config(cnn_run)
    cfg = cfg.model_copy(update={"evaluation": cfg.evaluation.model_copy(update={"adapt": "adabn"})})
    model, info = load_model(cnn_run)
    utts = scan("crema-d", str(synth_tiny / "crema-d")).utterances[:20]
    scorer = Scorer(RunDir.of(cnn_run), cfg, model, info, cfg.data.cache_dir, 8, False)
    adapted = scorer.adapted(model, info, utts)
    bn = [k for k in model.state_dict() if k.endswith("running_mean")]
    assert adapted is not model
    assert all(not torch.equal(adapted.state_dict()[k], model.state_dict()[k]) for k in bn)
    assert torch.equal(load_model(cnn_run)[0].state_dict()[bn[0]], model.state_dict()[bn[0]])  # the run's own: as saved
    off = cfg.model_copy(update={"evaluation": cfg.evaluation.model_copy(update={"adapt": "none"})})
    assert Scorer(RunDir.of(cnn_run), off, model, info, cfg.data.cache_dir, 8, False).adapted(model, info, utts) is model


def test_bad_input_is_one_line(cnn_run: Path, synth_tiny: Path, tmp_path: Path) -> None:
    def run(*args: str) -> str:
        res = CliRunner().invoke(app, ["adapt", *args, "-q"])
        assert res.exit_code == 2 and "Traceback" not in res.output, res.output
        assert res.output.strip().count("\n") == 0, res.output
        return res.output

    target = f"crema-d={synth_tiny / 'crema-d'}"
    assert "not a finished run" in run(str(tmp_path / "nowhere"), "--on", target, "-o", str(tmp_path / "a"))
    (tmp_path / "empty").mkdir()
    assert "no audio found" in run(str(cnn_run), "--on", f"mine={tmp_path / 'empty'}", "--method", "adabn",
                                   "-o", str(tmp_path / "b"))
    assert "folder not found" in run(str(cnn_run), "--on", f"mine={tmp_path / 'gone'}", "--method", "adabn",
                                      "-o", str(tmp_path / "b"))
    assert "by itself" in run(str(cnn_run), "--on", target, "-o", str(tmp_path / "c"))  # corpus-norm: no fixed one
    assert "--method must be" in run(str(cnn_run), "--on", target, "--method", "dann", "-o", str(tmp_path / "d"))
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("")
    assert "already exists" in run(str(cnn_run), "--on", target, "--method", "adabn", "-o", str(tmp_path / "taken"))
    acoustic = tmp_path / "acoustic"  # an acoustic run: refused from its model.json, before any audio is read
    shutil.copytree(cnn_run, acoustic)
    info = json.loads((acoustic / "model.json").read_text())
    (acoustic / "model.json").write_text(json.dumps({**info, "model": "egemaps", "input_kind": "functionals"}))
    assert "no batch norm" in run(str(acoustic), "--on", target, "--method", "adabn", "-o", str(tmp_path / "e"))
    assert not any(p.name in "abcde" for p in tmp_path.iterdir())
