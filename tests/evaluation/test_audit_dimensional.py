"""The dimensional audit: CCC by group with speaker-bootstrap intervals, the group-gap permutation test (equal
to a plain loop), the predictions file, and a run directory audited end to end on the synthetic manifest."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from emoshift.cli import app
from emoshift.corpora import scan_source
from emoshift.evaluation import audit_dimensional as ad
from emoshift.evaluation.audit import AuditError, audit_run, verdict
from emoshift.evaluation.metrics import PredictionsError, encode_groups
from emoshift.evaluation.regression import ccc, evaluate_regression

TARGETS = ["arousal", "valence", "dominance"]


def _rows(
    rng: np.random.Generator, noise: dict[str, float], *, per_speaker: int = 12, n_speakers: int = 12
) -> list[dict]:
    """Speakers alternate female/male; a group's predictions are the truth plus its own noise."""
    rows = []
    for s in range(n_speakers):
        gender = "female" if s % 2 == 0 else "male"
        for k in range(per_speaker):
            true = {t: float(rng.uniform(0.0, 1.0)) for t in TARGETS}
            pred = {t: true[t] + float(rng.normal(0.0, noise[gender])) for t in TARGETS}
            rows.append({"id": f"c/{s:02d}_{k:02d}", "speaker": f"c/{s:02d}", "gender": gender, "true": true,
                         "pred": pred})
    return rows


def _demographics(rows: list[dict]) -> dict[str, dict]:
    return {r["id"]: {"speaker": r["speaker"], "gender": r["gender"], "accent": "a" if r["speaker"] < "c/04" else "b"}
            for r in rows}


def test_permutation_test_equals_a_plain_loop() -> None:
    rng = np.random.default_rng(3)
    rows = _rows(rng, {"female": 0.1, "male": 0.3}, per_speaker=5, n_speakers=9)
    groups = {r["speaker"]: ("x", "y", "z")[int(r["speaker"][-2:]) % 3] for r in rows}
    got = ad.permutation_test_ccc(rows, TARGETS, groups, n_permutations=60, seed=5)

    names = sorted({r["speaker"] for r in rows})
    group_idx, group_names = encode_groups([groups[s] for s in names])

    def gaps(assign: np.ndarray) -> list[float]:
        per = {}
        for k in range(len(group_names)):
            members = {names[i] for i in np.flatnonzero(assign == k)}
            sub = [r for r in rows if r["speaker"] in members]
            per[k] = [ccc([r["true"][t] for r in sub], [r["pred"][t] for r in sub]) for t in TARGETS]
        means = [float(np.mean(v)) for v in per.values()]
        out = [max(means) - min(means)]
        for j in range(len(TARGETS)):
            vals = [per[k][j] for k in per]
            out.append(max(vals) - min(vals))
        return out

    observed = gaps(group_idx)
    perm_rng = np.random.default_rng(5)
    null = np.array([gaps(perm_rng.permutation(group_idx)) for _ in range(60)])
    for j, key in enumerate(["ccc", *TARGETS]):
        assert got["gap"][key] == pytest.approx(observed[j], abs=1e-12)
        assert got["p_value"][key] == pytest.approx((1 + np.sum(null[:, j] >= observed[j] - 1e-12)) / 61)


def test_group_ccc_with_intervals_and_a_detected_gap() -> None:
    rows = _rows(np.random.default_rng(0), {"female": 0.05, "male": 0.45})
    rows[0]["true"]["valence"] = None  # not rated on every target: left out, counted
    report = ad.audit_dimensional_predictions(
        rows, _demographics(rows), targets=TARGETS, by=["gender", "accent"], n_resamples=200, n_permutations=200
    )
    section = report["by"]["gender"]
    female, male = section["groups"]["female"], section["groups"]["male"]
    sub = [r for r in rows[1:] if r["gender"] == "male"]
    assert male["arousal_ccc"] == pytest.approx(ccc([r["true"]["arousal"] for r in sub],
                                                    [r["pred"]["arousal"] for r in sub]))
    direct = evaluate_regression({t: [r["true"][t] for r in sub] for t in TARGETS},
                                 {t: [r["pred"][t] for r in sub] for t in TARGETS},
                                 [r["speaker"] for r in sub], n_resamples=200)
    assert male["ccc"] == pytest.approx(direct["ccc"]) and male["ccc_ci"] == direct["ci95"]["ccc"]
    assert female["ccc"] > 0.9 > 0.6 > male["ccc"]
    assert female["ccc_ci"][0] <= female["ccc"] <= female["ccc_ci"][1]
    assert male["speakers"] == 6 and male["n"] == 72 and female["n"] == 71
    assert section["worst_ccc"] == "male" and section["best_ccc"] == "female"
    assert section["gap"]["ccc"] == pytest.approx(female["ccc"] - male["ccc"])
    assert section["p_value_ccc"] < 0.05 and all(p < 0.05 for p in section["p_values"].values())
    assert "rates male speakers worse" in verdict("gender", section)
    assert any("1 predictions without a rating" in n for n in report["notes"])
    accent = report["by"]["accent"]  # a metadata column; 4 speakers in "a" vs 8 in "b"
    assert set(accent["groups"]) == {"a", "b"} and accent["groups"]["a"]["speakers"] == 4
    md = ad.render_markdown(report)
    assert "| male | 6 | 72 |" in md and "mean CCC" in md


def test_equal_groups_are_not_called_different_and_small_groups_are_not_compared() -> None:
    rows = _rows(np.random.default_rng(1), {"female": 0.2, "male": 0.2})
    report = ad.audit_dimensional_predictions(
        rows, _demographics(rows), targets=TARGETS, by=["gender"], n_resamples=100, n_permutations=200
    )
    assert report["by"]["gender"]["p_value_ccc"] > 0.05
    assert "consistent with chance" in verdict("gender", report["by"]["gender"])
    small = ad.audit_dimensional_predictions(
        rows, _demographics(rows), targets=TARGETS, by=["gender"], n_resamples=100, n_permutations=50,
        min_speakers=7,
    )["by"]["gender"]
    assert small["p_value_ccc"] is None and all(g["too_small"] for g in small["groups"].values())
    assert "no comparison" in verdict("gender", small)


def _write_csv(path: Path, rows: list[dict], targets: list[str]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "path", "corpus", "speaker", "gender", *[f"{k}_{t}" for t in targets for k in ("true", "pred")]])
        for r in rows:
            cells = []
            for t in targets:
                cells += ["" if r["true"][t] is None else f"{r['true'][t]:.6f}", f"{r['pred'][t]:.6f}"]
            w.writerow([r["id"], f"/x/{r['id']}.wav", "c", r["speaker"], r["gender"], *cells])
    return path


def test_reading_the_predictions_file(tmp_path: Path) -> None:
    rows = _rows(np.random.default_rng(2), {"female": 0.1, "male": 0.1}, n_speakers=2, per_speaker=2)
    rows[1]["true"]["arousal"] = None
    got, targets = ad.read_dimensional_predictions(_write_csv(tmp_path / "p.csv", rows, ["valence", "arousal"]))
    assert targets == ["valence", "arousal"]
    assert got[1]["true"]["arousal"] is None and got[0]["pred"]["valence"] == pytest.approx(rows[0]["pred"]["valence"])
    bad = tmp_path / "bad.csv"
    bad.write_text((tmp_path / "p.csv").read_text().replace(f"{rows[2]['pred']['valence']:.6f}", "high"))
    with pytest.raises(PredictionsError, match=r"bad.csv:4: pred_valence is not a number: 'high'"):
        ad.read_dimensional_predictions(bad)
    bad.write_text("id,speaker,pred_arousal\nx,s,0.1\n")
    with pytest.raises(PredictionsError, match="missing column.*true_arousal"):
        ad.read_dimensional_predictions(bad)


@pytest.fixture
def manifest_run(synth_more: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A dimensional run directory whose predictions cover the synthetic manifest (ratings on 1-5 rescaled to
    0-1): female speakers predicted well, male speakers badly."""
    table = synth_more / "manifest" / "manifest.csv"
    sc = scan_source("mine", table, "six")
    rng = np.random.default_rng(0)
    rows = []
    for u in sc.utterances:
        true = {t: (getattr(u, t) - 1.0) / 4.0 for t in TARGETS}
        sd = 0.03 if u.gender == "female" else 0.3
        rows.append({"id": u.id, "speaker": u.speaker, "gender": u.gender, "true": true,
                     "pred": {t: v + float(rng.normal(0.0, sd)) for t, v in true.items()}})
    run = tmp_path / "run"
    (run / "predictions").mkdir(parents=True)
    _write_csv(run / "predictions" / "mine.csv", rows, TARGETS)
    info = {"model": "resnet18", "task": "dimensional", "targets": TARGETS, "target_range": [0.0, 1.0], "labels": [], "label_policy": "six"}
    (run / "model.json").write_text(json.dumps(info))
    return run, table


def test_a_dimensional_run_is_audited_on_ccc(manifest_run: tuple[Path, Path]) -> None:
    run, table = manifest_run
    path = audit_run(run, "mine", str(table), by=["gender", "accent"], n_resamples=100, n_permutations=100)
    report = json.loads(path.read_text())
    assert report["task"] == "dimensional" and report["targets"] == TARGETS and report["overall"]["n"] == 96
    gender = report["by"]["gender"]
    assert gender["worst_ccc"] == "male" and gender["gap"]["ccc"] > 0.3
    # 4 + 4 speakers: the exact test's smallest p is 2 / C(8, 4); 100 random permutations land near it
    assert gender["p_value_floor"] == pytest.approx(2 / 70) and gender["p_value_ccc"] < 0.15
    assert set(report["by"]["accent"]["groups"]) == {"scottish", "irish", "general american", "indian english"}
    assert (run / "audit" / "mine.md").read_text().startswith("# Fairness audit: mine (dimensional)")
    assert sorted(p.name for p in (run / "audit").glob("*.png")) == ["mine_accent_bars.png", "mine_gender_bars.png"]
    result = CliRunner().invoke(
        app, ["audit", str(run), "--on", f"mine={table}", "--by", "gender", "--resamples", "50", "--permutations", "50"]
    )
    assert result.exit_code == 0, result.output
    assert "mean CCC ranges from" in result.output


def test_no_rated_prediction_is_one_clear_error() -> None:
    rows = _rows(np.random.default_rng(0), {"female": 0.1, "male": 0.1}, n_speakers=2, per_speaker=2)
    for r in rows:
        r["true"]["dominance"] = None
    with pytest.raises(AuditError, match="none of the 4 predictions has a rating for every target"):
        ad.audit_dimensional_predictions(rows, _demographics(rows), targets=TARGETS)
