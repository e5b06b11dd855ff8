"""Paired comparison of two runs: identical runs give p = 1 and a zero difference, a clearly better run is
found, and runs tested on different utterances are refused."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from emoshift.cli import app
from emoshift.evaluation.compare import CompareError, compare_predictions, compare_runs, verdict

LABELS = ["angry", "happy", "neutral", "sad"]


def _rows(rng, accuracy, n_speakers=12, per_speaker=20):
    rows = []
    for s in range(n_speakers):
        for k in range(per_speaker):
            truth = LABELS[k % len(LABELS)]
            pred = truth if rng.random() < accuracy else LABELS[(k + 1 + rng.integers(3)) % len(LABELS)]
            rows.append(
                {"id": f"crema-d/{s:02d}_{k:02d}", "speaker": f"crema-d/{s:02d}", "true": truth, "pred": pred}
            )
    return rows


def test_identical_runs_give_p_one_and_no_difference():
    rows = _rows(np.random.default_rng(0), 0.6)
    result = compare_predictions(rows, [dict(r) for r in reversed(rows)], LABELS, n_resamples=200)
    assert result["mcnemar"] == {"b": 0, "c": 0, "p_value": 1.0}
    assert result["uar_diff"] == 0.0 and result["uar_diff_ci95"] == [0.0, 0.0]
    assert result["uar_a"] == result["uar_b"] and result["accuracy_a"] == result["accuracy_b"]
    assert result["n"] == 240 and result["speakers"] == 12
    assert "No significant difference" in verdict(result)


def test_a_clearly_better_run_is_found():
    rng = np.random.default_rng(1)
    good = _rows(rng, 0.85)
    bad = [dict(r, pred=r["pred"] if rng.random() < 0.4 else LABELS[0]) for r in _rows(rng, 0.0)]
    bad = [dict(b, true=g["true"]) for g, b in zip(good, bad, strict=True)]
    result = compare_predictions(good, bad, LABELS, n_resamples=300)
    assert result["uar_diff"] == pytest.approx(result["uar_a"] - result["uar_b"])
    assert result["uar_diff_ci95"][0] > 0.3
    assert result["mcnemar"]["b"] > result["mcnemar"]["c"] and result["mcnemar"]["p_value"] < 1e-6
    assert "A is better: both tests agree" in verdict(result)


def test_fewer_than_five_shared_speakers_give_no_interval_and_a_reason():
    rng = np.random.default_rng(4)
    good, bad = _rows(rng, 0.9, n_speakers=4), _rows(rng, 0.3, n_speakers=4)
    bad = [dict(b, true=g["true"]) for g, b in zip(good, bad, strict=True)]
    result = compare_predictions(good, bad, LABELS, n_resamples=200)
    assert result["speakers"] == 4 and result["uar_diff_ci95"] is None
    assert result["uar_diff_ci95_reason"] == "4 test speakers: too few for a speaker bootstrap"
    text = verdict(result)
    assert "no CI: 4 test speakers" in text and "CI excludes 0" not in text
    five = _rows(rng, 0.6, n_speakers=5)
    assert compare_predictions(five, five, LABELS, n_resamples=50)["uar_diff_ci95"] == [0.0, 0.0]


def test_different_utterance_sets_are_paired_on_what_both_scored_and_other_truths_refused():
    rows = _rows(np.random.default_rng(2), 0.5)
    fewer = compare_predictions(rows, rows[1:], LABELS, n_resamples=50)
    assert (fewer["n"], fewer["only_a"], fewer["only_b"]) == (len(rows) - 1, 1, 0)
    assert fewer == {**compare_predictions(rows[1:], rows[1:], LABELS, n_resamples=50), "only_a": 1}
    assert f"paired on the {len(rows) - 1} utterances both scored (1 scored by A alone left out)" in verdict(fewer)
    with pytest.raises(CompareError, match=r"scored no utterance in common \(1 by A"):
        compare_predictions(rows[:1], rows[1:], LABELS)
    changed = [dict(r) for r in rows]
    changed[3]["true"] = "sad" if changed[3]["true"] != "sad" else "angry"
    with pytest.raises(CompareError, match="disagree on the true label of 1 utterances"):
        compare_predictions(rows, changed, LABELS)


def _write_run(run, rows, *, leaky=None):
    (run / "predictions").mkdir(parents=True)
    (run / "model.json").write_text(json.dumps({"model": "resnet18", "labels": LABELS, "label_policy": "four"}))
    with open(run / "predictions" / "crema-d.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "path", "corpus", "speaker", "gender", "true", "pred"] + [f"p_{x}" for x in LABELS])
        for r in rows:
            probs = [1.0 if x == r["pred"] else 0.0 for x in LABELS]
            w.writerow([r["id"], "/x.wav", "crema-d", r["speaker"], "", r["true"], r["pred"], *probs])
    if leaky is not None:
        (run / "metrics").mkdir()
        (run / "metrics" / "crema-d.json").write_text(json.dumps({"leaky": leaky}))


def test_compare_runs_writes_the_default_json(tmp_path):
    rows = _rows(np.random.default_rng(3), 0.6)
    _write_run(tmp_path / "a", rows, leaky=False)
    _write_run(tmp_path / "b", rows, leaky=True)
    path, result = compare_runs(tmp_path / "a", tmp_path / "b", "CREMA-D", str(tmp_path), n_resamples=100)
    assert path == tmp_path / "a" / "compare" / "b_crema-d.json"
    saved = json.loads(path.read_text())
    assert saved == result
    for key in ("uar_a", "uar_b", "uar_diff", "uar_diff_ci95", "accuracy_a", "accuracy_b", "mcnemar", "n"):
        assert key in saved
    assert saved["mcnemar"]["p_value"] == 1.0
    assert saved["leaky_a"] is False and saved["leaky_b"] is True
    assert "Warning: b tested on speakers seen in training" in saved["verdict"]


def test_cli_compare_prints_a_verdict_and_pairs_what_both_scored(tmp_path):
    rng = np.random.default_rng(4)
    rows = _rows(rng, 0.7)
    _write_run(tmp_path / "a", rows)
    _write_run(tmp_path / "b", [dict(r, pred=LABELS[0]) for r in rows])
    _write_run(tmp_path / "c", rows[:-5])
    runner = CliRunner()
    out = tmp_path / "cmp.json"
    result = runner.invoke(
        app,
        [
            "compare",
            str(tmp_path / "a"),
            str(tmp_path / "b"),
            "--on",
            f"crema-d={tmp_path}",
            "-o",
            str(out),
            "--resamples",
            "100",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "a vs b on crema-d (n=240, 12 speakers): UAR" in result.output
    assert json.loads(out.read_text())["uar_diff"] > 0

    result = runner.invoke(app, ["compare", str(tmp_path / "a"), str(tmp_path / "c"), "--on", f"crema-d={tmp_path}"])
    assert result.exit_code == 0, result.output  # the README's generalist vs specialist: B scored fewer
    assert "(n=235, 12 speakers; paired on the 235 utterances both scored (5 scored by a alone left out))" in (
        result.output.replace("\n", "")
    )
    # a corpus folder that does not exist is one line, even though both runs hold predictions for it
    result = runner.invoke(app, ["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--on", "crema-d=/no/such"])
    assert result.exit_code == 2 and "crema-d: /no/such: folder not found" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    result = runner.invoke(app, ["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--on", "crema-d"])
    assert result.exit_code == 2 and "expects NAME=ROOT" in result.output
