"""The study's claims tested on fabricated run directories: predictions in, verdicts and findings.csv out."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import yaml

from emoshift.core.io import atomic_write_json, atomic_write_text
from emoshift.evaluation.compare import compare_predictions
from emoshift.evaluation.metrics import evaluate_predictions
from emoshift.study import load_study, write_report
from emoshift.study.claims import FINDING_COLUMNS, gather
from emoshift.study.summaries import collect

LABELS = ["angry", "happy", "neutral", "sad"]

STUDY = """
title: Claims
defaults:
  data: {corpora: [ravdess]}
  model: {width_mult: 0.25}
  training: {epochs: 1}
  evaluation: {n_bootstrap: 200}
experiments:
  - {id: BASE, title: Baseline, architecture: x, data_strategy: RAVDESS only}
  - {id: A, title: Strong, architecture: x, data_strategy: RAVDESS only}
  - {id: B, title: Weak, architecture: x, data_strategy: RAVDESS only}
  - id: H
    title: Random-init HuBERT
    architecture: HuBERT
    data_strategy: RAVDESS only
    config: {model: {name: hubert, preset: tiny}}
findings:
  margin: 0.02
  baselines: [BASE]
  claims:
    - {claim: A beats B, kind: better, a: A, b: B, corpora: [ravdess]}
    - {claim: B beats A, kind: better, a: B, b: A, corpora: [ravdess]}
    - {claim: A keeps B's score, kind: noninferior, a: A, b: B, corpora: [ravdess]}
    - {claim: A beats H, kind: better, a: A, b: H, corpora: [ravdess]}
    - {claim: A beats B on two speakers, kind: better, a: A, b: B, corpora: [crema-d]}
    - {claim: A drops from RAVDESS to CREMA-D, kind: drop, a: A, corpora: [ravdess, crema-d]}
"""


def _predictions(accuracy: float, speakers: int, seed: int, corpus: str) -> list[dict[str, str]]:
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(speakers):
        for i in range(12):
            true = LABELS[i % 4]
            pred = true if rng.random() < accuracy else LABELS[(i + 1) % 4]
            rows.append({"id": f"{corpus}-{s}-{i}", "speaker": f"{corpus}-s{s}", "true": true, "pred": pred})
    return rows


def _run(run: Path, preds: dict[str, list[dict[str, str]]], *, preset: str | None = None) -> None:
    for corpus, rows in preds.items():
        text = "id,speaker,true,pred\n" + "".join(
            f"{r['id']},{r['speaker']},{r['true']},{r['pred']}\n" for r in rows
        )
        atomic_write_text(run / "predictions" / f"{corpus}.csv", text)
        metrics = evaluate_predictions(
            [r["true"] for r in rows],
            [r["pred"] for r in rows],
            [r["speaker"] for r in rows],
            LABELS,
            n_resamples=200,
        )
        atomic_write_json(
            run / "metrics" / f"{corpus}.json", {**metrics, "n": len(rows), "leaky": False, "split": "test"}
        )
    model = {"name": "hubert", "preset": preset} if preset else {"name": "resnet18"}
    atomic_write_text(run / "config.yaml", yaml.safe_dump({"model": model}))
    atomic_write_json(run / "model.json", {"model": "resnet18", "labels": LABELS})
    atomic_write_json(
        run / "done.json", {"fingerprint": "x", "seconds": 1.0, "finished": "2026-01-01T00:00:00+00:00"}
    )


@pytest.fixture()
def fabricated(tmp_path: Path) -> tuple:
    (tmp_path / "study.yaml").write_text(STUDY)
    roots = {}
    for corpus in ("ravdess", "crema-d"):
        (tmp_path / "data" / corpus).mkdir(parents=True)
        roots[corpus] = str(tmp_path / "data" / corpus)
    study = load_study(tmp_path / "study.yaml", roots=roots)
    out = tmp_path / "out"
    strong = {"ravdess": _predictions(0.9, 10, 1, "ravdess"), "crema-d": _predictions(0.3, 2, 2, "crema-d")}
    weak = {"ravdess": _predictions(0.4, 10, 3, "ravdess"), "crema-d": _predictions(0.3, 2, 4, "crema-d")}
    _run(out / "runs" / "A", strong)
    _run(out / "runs" / "B", weak)
    _run(out / "runs" / "H", {"ravdess": _predictions(0.2, 10, 5, "ravdess")}, preset="tiny")
    _run(out / "runs" / "BASE", {"ravdess": _predictions(0.6, 10, 6, "ravdess")})
    return study, out, strong, weak


def test_each_claim_gets_the_verdict_its_numbers_give(fabricated: tuple) -> None:
    study, out, strong, weak = fabricated
    findings = {(f.claim.claim, f.corpus): f for f in gather(out, study, collect(out, study))}
    assert findings["A beats B", "ravdess"].judgement.verdict == "supported"
    assert findings["B beats A", "ravdess"].judgement.verdict == "contradicted"
    assert findings["A keeps B's score", "ravdess"].judgement.verdict == "supported"
    hubert = findings["A beats H", "ravdess"].judgement
    assert hubert.verdict == "no verdict" and "H (model.preset: tiny)" in hubert.reason
    few = findings["A beats B on two speakers", "crema-d"].judgement
    assert few.verdict == "inconclusive" and "2 test speakers: too few" in few.reason
    drop = findings["A drops from RAVDESS to CREMA-D", "ravdess->crema-d"]
    assert drop.judgement.verdict == "inconclusive" and "crema-d: 2 test speakers" in drop.judgement.reason
    # the numbers are those of the paired comparison of both runs
    ref = compare_predictions(strong["ravdess"], weak["ravdess"], LABELS, n_resamples=200, seed=0)
    ev = findings["A beats B", "ravdess"].evidence
    assert (ev.uar_a, ev.uar_b, ev.mcnemar_p) == (ref["uar_a"], ref["uar_b"], ref["mcnemar"]["p_value"])
    assert list(ev.ci or ()) == ref["uar_diff_ci95"] and ev.n == 120 and ev.speakers == 10


def test_every_model_is_tested_against_the_baseline_on_its_corpora(fabricated: tuple) -> None:
    study, out, _, _ = fabricated
    base = [f for f in gather(out, study, collect(out, study)) if f.claim.b == "BASE"]
    assert [(f.claim.a, f.corpus) for f in base] == [("A", "ravdess"), ("A", "crema-d"), ("B", "ravdess"),
                                                      ("B", "crema-d"), ("H", "ravdess"), ("H", "crema-d")]  # fmt: skip
    verdicts = {(f.claim.a, f.corpus): f.judgement.verdict for f in base}
    assert verdicts["A", "ravdess"] == "supported" and verdicts["B", "ravdess"] == "contradicted"
    assert verdicts["H", "ravdess"] == "no verdict"  # random-init: no verdict, whatever the numbers
    assert verdicts["A", "crema-d"] == "no verdict"  # the baseline has no CREMA-D predictions


def test_findings_csv_and_report_section(fabricated: tuple) -> None:
    study, out, _, _ = fabricated
    paths = write_report(out, study)
    with open(paths["findings"], newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == FINDING_COLUMNS
        rows = list(reader)
    assert FINDING_COLUMNS[:12] == ("claim", "a", "b", "corpus", "uar_a", "uar_b", "diff", "ci95_low",
                                    "ci95_high", "mcnemar_p", "verdict", "reason")  # fmt: skip
    first = rows[0]
    assert (first["claim"], first["a"], first["b"], first["corpus"], first["verdict"]) == (
        "A beats B", "A", "B", "ravdess", "supported")  # fmt: skip
    assert float(first["ci95_low"]) > 0 and float(first["diff"]) == pytest.approx(
        float(first["uar_a"]) - float(first["uar_b"]), abs=2e-6
    )
    few = next(r for r in rows if r["corpus"] == "crema-d" and r["claim"] == "A beats B on two speakers")
    assert few["ci95_low"] == few["ci95_high"] == "" and few["verdict"] == "inconclusive"
    md = paths["markdown"].read_text()
    assert "## Findings" in md and "| A beats H | A vs H | RAVDESS |" in md and "no verdict" in md
    assert "2 UAR points" in md
