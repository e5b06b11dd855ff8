"""Comparing two dimensional runs: the paired bootstrap of the CCC difference per target and of the mean (equal
to a plain resampling loop), no McNemar (said why), and runs that cannot be compared are refused."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from emoshift.cli import app
from emoshift.evaluation.compare import CompareError, compare_dimensional, compare_runs
from emoshift.evaluation.metrics import encode_groups, speaker_draws
from emoshift.evaluation.regression import ccc

TARGETS = ["arousal", "valence", "dominance"]


def _pair(seed: int, sd_a: float, sd_b: float, n_speakers: int = 10, per_speaker: int = 10) -> tuple[list, list]:
    rng = np.random.default_rng(seed)
    a, b = [], []
    for s in range(n_speakers):
        for k in range(per_speaker):
            true = {t: float(rng.uniform()) for t in TARGETS}
            row = {"id": f"c/{s:02d}_{k:02d}", "speaker": f"c/{s:02d}", "gender": "female", "true": true}
            a.append({**row, "pred": {t: v + float(rng.normal(0, sd_a)) for t, v in true.items()}})
            b.append({**row, "pred": {t: v + float(rng.normal(0, sd_b)) for t, v in true.items()}})
    return a, b


def test_a_better_run_is_found_and_the_mean_interval_equals_a_plain_loop() -> None:
    a, b = _pair(0, 0.05, 0.35)
    result = compare_dimensional(a, list(reversed(b)), TARGETS, n_resamples=200, seed=3)
    assert result["mcnemar"] is None and "no right or wrong per utterance" in result["mcnemar_note"]
    for t in TARGETS:
        r = result["per_target"][t]
        assert r["ccc_a"] == pytest.approx(ccc([x["true"][t] for x in a], [x["pred"][t] for x in a]))
        assert r["diff"] == pytest.approx(r["ccc_a"] - r["ccc_b"]) and r["ci95"][0] > 0
        assert r["mae_a"] < r["mae_b"]
    assert result["ccc_diff"] == pytest.approx(np.mean([result["per_target"][t]["diff"] for t in TARGETS]))
    assert result["ccc_diff_ci95"][0] > 0.1

    # the interval of the mean difference, by drawing speakers in a loop (same draws)
    g, names = encode_groups([r["speaker"] for r in sorted(a, key=lambda r: r["id"])])
    rows_a, rows_b = sorted(a, key=lambda r: r["id"]), sorted(b, key=lambda r: r["id"])
    weights = speaker_draws(len(names), 200, np.random.default_rng(3))
    diffs = []
    for w in weights:
        idx = np.concatenate([np.repeat(np.flatnonzero(g == s), int(w[s])) for s in range(len(names))])

        def mean_ccc(rows: list, idx: np.ndarray = idx) -> float:
            return float(np.mean([ccc([rows[i]["true"][t] for i in idx], [rows[i]["pred"][t] for i in idx])
                                  for t in TARGETS]))

        diffs.append(mean_ccc(rows_a) - mean_ccc(rows_b))
    assert result["ccc_diff_ci95"] == pytest.approx(list(np.percentile(diffs, [2.5, 97.5])), abs=1e-9)


def test_equal_runs_differ_by_zero_and_few_speakers_give_no_interval() -> None:
    a, _ = _pair(1, 0.2, 0.2)
    same = compare_dimensional(a, [dict(r) for r in a], TARGETS, n_resamples=100)
    assert same["ccc_diff"] == 0.0 and same["ccc_diff_ci95"] == [0.0, 0.0]
    a, b = _pair(2, 0.1, 0.2, n_speakers=3)
    few = compare_dimensional(a, b, TARGETS, n_resamples=100)
    assert few["ccc_diff_ci95"] is None and few["ccc_diff_ci95_reason"].startswith("3 test speakers")
    assert all(r["ci95"] is None for r in few["per_target"].values())


def test_what_cannot_be_compared_is_refused() -> None:
    a, b = _pair(4, 0.1, 0.2)
    fewer = compare_dimensional(a, b[1:], TARGETS, n_resamples=50)  # paired on what both scored
    assert (fewer["n"], fewer["only_a"], fewer["only_b"]) == (len(a) - 1, 1, 0)
    with pytest.raises(CompareError, match="scored no utterance in common"):
        compare_dimensional(a[:1], b[1:], TARGETS)
    other = [dict(r, true={**r["true"], "valence": r["true"]["valence"] + 0.5}) for r in b]
    with pytest.raises(CompareError, match="disagree on the ratings of 100 utterances"):
        compare_dimensional(a, other, TARGETS)
    unrated = [dict(r, true={**r["true"], "arousal": None}) for r in a]
    with pytest.raises(CompareError, match="no utterance is rated on every target"):
        compare_dimensional(unrated, unrated, TARGETS)


def _run(tmp_path: Path, name: str, rows: list, info: dict) -> Path:
    run = tmp_path / name
    (run / "predictions").mkdir(parents=True)
    with open(run / "predictions" / "iemocap.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "path", "corpus", "speaker", "gender", *[f"{k}_{t}" for t in TARGETS for k in ("true", "pred")]])
        for r in rows:
            cells = [f"{x:.6f}" for t in TARGETS for x in (r["true"][t], r["pred"][t])]
            w.writerow([r["id"], "/x.wav", "iemocap", r["speaker"], r["gender"], *cells])
    (run / "model.json").write_text(json.dumps(info))
    return run


def test_two_dimensional_runs_compared_from_their_directories(tmp_path: Path) -> None:
    a, b = _pair(5, 0.05, 0.3)
    info = {"model": "resnet18", "task": "dimensional", "targets": TARGETS, "target_range": [0, 1], "labels": []}
    run_a, run_b = _run(tmp_path, "good", a, info), _run(tmp_path, "noisy", b, info)
    path, result = compare_runs(run_a, run_b, "iemocap", str(tmp_path), n_resamples=100)
    assert path == run_a / "compare" / "noisy_iemocap.json"
    saved = json.loads(path.read_text())
    assert saved["task"] == "dimensional" and saved["mcnemar"] is None and saved["targets"] == TARGETS
    assert "good has the higher mean CCC" in saved["verdict"] and "No McNemar test" in saved["verdict"]
    out = CliRunner().invoke(app, ["compare", str(run_a), str(run_b), "--on", f"iemocap={tmp_path}", "--resamples", "50"])
    assert out.exit_code == 0, out.output
    assert "mean CCC" in out.output
    categorical = _run(tmp_path, "classes", a, {"model": "resnet18", "labels": ["angry", "sad"]})
    with pytest.raises(CompareError, match="good is dimensional and classes is categorical"):
        compare_runs(run_a, categorical, "iemocap", str(tmp_path))
