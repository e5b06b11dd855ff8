"""The study's claims tested on fabricated run directories: predictions in (one row per utterance and training
seed), verdicts and findings.csv out."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import yaml

from emoshift.core.io import atomic_write_json, atomic_write_text
from emoshift.evaluation.intervals import metric_interval, paired_difference
from emoshift.evaluation.metrics import evaluate_predictions
from emoshift.study import load_study, write_report
from emoshift.study.claims import FINDING_COLUMNS, by_seed, gather
from emoshift.study.findings import holm, mde, unpaired_difference
from emoshift.study.summaries import collect

LABELS = ["angry", "happy", "neutral", "sad"]
SEEDS = (0, 1, 2)

STUDY = """
title: Claims
defaults:
  data: {corpora: [ravdess]}
  model: {width_mult: 0.25}
  training: {epochs: 1}
  evaluation: {n_bootstrap: 200}
experiments:
  - {id: BASE, title: Baseline, architecture: x, data_strategy: RAVDESS only}
  - id: A
    title: Strong
    architecture: x
    data_strategy: RAVDESS only
    reported_accuracy: {ravdess: 90.0}
  - {id: B, title: Weak, architecture: x, data_strategy: RAVDESS only}
  - id: C
    title: Strong, one seed
    architecture: x
    data_strategy: RAVDESS only
  - id: D
    title: Nearly as strong
    architecture: x
    data_strategy: RAVDESS only
    reported_accuracy: {ravdess: 60.0}
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
    - {claim: A beats C, kind: better, a: A, b: C, corpora: [ravdess]}
    - {claim: A beats D, kind: better, a: A, b: D, corpora: [ravdess]}
"""


def _predictions(
    accuracy: float, speakers: int, seed: int, corpus: str, seeds: tuple[int, ...] | None = SEEDS
) -> list[dict[str, str]]:
    """Rows of a predictions CSV: every utterance once per training seed (``seeds`` None: no seed column, an
    older single-seed run)."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in seeds or (None,):
        for k in range(speakers):
            for i in range(12):
                true = LABELS[i % 4]
                pred = true if rng.random() < accuracy else LABELS[(i + 1) % 4]
                row = {"id": f"{corpus}-{k}-{i}", "speaker": f"{corpus}-s{k}", "true": true, "pred": pred}
                rows.append(row if s is None else {**row, "seed": str(s)})
    return rows


def _run(run: Path, preds: dict[str, list[dict[str, str]]], *, preset: str | None = None) -> None:
    for corpus, rows in preds.items():
        columns = list(rows[0])
        text = ",".join(columns) + "\n" + "".join(",".join(r[c] for c in columns) + "\n" for r in rows)
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


def _study(tmp_path: Path, text: str = STUDY):  # type: ignore[no-untyped-def]
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "study.yaml").write_text(text)
    roots = {}
    for corpus in ("ravdess", "crema-d"):
        (tmp_path / "data" / corpus).mkdir(parents=True, exist_ok=True)
        roots[corpus] = str(tmp_path / "data" / corpus)
    return load_study(tmp_path / "study.yaml", roots=roots)


@pytest.fixture()
def fabricated(tmp_path: Path) -> tuple:
    study = _study(tmp_path)
    out = tmp_path / "out"
    strong = {"ravdess": _predictions(0.9, 10, 1, "ravdess"), "crema-d": _predictions(0.3, 2, 2, "crema-d")}
    weak = {"ravdess": _predictions(0.4, 10, 3, "ravdess"), "crema-d": _predictions(0.3, 2, 4, "crema-d")}
    _run(out / "runs" / "A", strong)
    _run(out / "runs" / "B", weak)
    _run(out / "runs" / "C", {"ravdess": _predictions(0.4, 10, 7, "ravdess", seeds=None)})
    _run(out / "runs" / "D", {"ravdess": _predictions(0.88, 10, 8, "ravdess")})
    _run(out / "runs" / "H", {"ravdess": _predictions(0.2, 10, 5, "ravdess")}, preset="tiny")
    _run(out / "runs" / "BASE", {"ravdess": _predictions(0.6, 10, 6, "ravdess")})
    return study, out, strong, weak


def _confusions(rows: list[dict[str, str]]) -> np.ndarray:
    """(S, K, L, L) by a plain loop: the reference the claims' evidence is checked against."""
    seeds = sorted({r["seed"] for r in rows})
    speakers = sorted({r["speaker"] for r in rows})
    conf = np.zeros((len(seeds), len(speakers), len(LABELS), len(LABELS)))
    for r in rows:
        s, k = seeds.index(r["seed"]), speakers.index(r["speaker"])
        conf[s, k, LABELS.index(r["true"]), LABELS.index(r["pred"])] += 1
    return conf


def _uar(conf: np.ndarray) -> np.ndarray:
    """Each seed's UAR, (S, K, L, L) -> (S,): the mean recall over the classes."""
    pooled = conf.sum(axis=1)
    return np.array([np.mean(np.diag(c) / c.sum(axis=1)) for c in pooled])


def test_each_claim_gets_the_verdict_its_numbers_give(fabricated: tuple) -> None:
    study, out, strong, weak = fabricated
    findings = {(f.claim.claim, f.corpus): f for f in gather(out, study, collect(out, study))}
    assert findings["A beats B", "ravdess"].judgement.verdict == "supported"
    assert findings["B beats A", "ravdess"].judgement.verdict == "contradicted"
    assert findings["A keeps B's score", "ravdess"].judgement.verdict == "supported"
    assert "a beat b in 3 of 3 seeds" in findings["A beats B", "ravdess"].judgement.reason
    hubert = findings["A beats H", "ravdess"].judgement
    assert hubert.verdict == "no verdict" and "H (model.preset: tiny)" in hubert.reason
    few = findings["A beats B on two speakers", "crema-d"].judgement
    assert few.verdict == "inconclusive" and "2 test speakers: too few" in few.reason
    drop = findings["A drops from RAVDESS to CREMA-D", "ravdess->crema-d"]
    assert drop.judgement.verdict == "inconclusive" and "crema-d: 2 test speakers" in drop.judgement.reason
    # the numbers are those of the per-seed paired difference of both runs' confusions
    ref = paired_difference(_confusions(strong["ravdess"]), _confusions(weak["ravdess"]), "uar")
    ev = findings["A beats B", "ravdess"].evidence
    assert ev.diff == pytest.approx(ref.diff) and ev.per_seed == pytest.approx(ref.per_seed)
    assert ev.ci == pytest.approx((ref.ci.lo, ref.ci.hi)) and (ev.p, ev.se, ev.df) == (ref.p, ref.se, ref.df)
    assert (ev.n, ev.speakers, ev.seeds, ev.wins) == (120, 10, 3, 3)
    assert findings["A beats B", "ravdess"].judgement.mde == pytest.approx(mde(ref.se, df=ref.df))
    # McNemar pools the discordant utterances of the three seed pairs
    assert (ev.mcnemar_b or 0) + (ev.mcnemar_c or 0) > 120


def test_one_seed_on_either_side_decides_nothing(fabricated: tuple) -> None:
    study, out, _, _ = fabricated
    findings = {(f.claim.claim, f.corpus): f for f in gather(out, study, collect(out, study))}
    one = findings["A beats C", "ravdess"]
    assert one.evidence.seeds == 1 and (one.evidence.seeds_a, one.evidence.seeds_b) == (3, 1)
    assert one.judgement.verdict == "inconclusive"
    assert one.judgement.reason.startswith("1 seed: training variance not measured")
    assert "a has 3, b 1" in one.judgement.reason and "the single seed: a - b = +" in one.judgement.reason
    assert one.judgement.p_adjusted is None  # outside the family the correction counts


def test_holm_across_the_findings_and_the_power_statement(fabricated: tuple) -> None:
    study, out, _, _ = fabricated
    found = gather(out, study, collect(out, study))
    family = [f for f in found if f.judgement.p_adjusted is not None]
    assert len(family) >= 4
    adjusted = holm([f.judgement.p for f in family])
    assert [f.judgement.p_adjusted for f in family] == pytest.approx(adjusted)
    assert all(f"Holm-adjusted over {len(family)} findings" in f.judgement.reason for f in family)
    near = next(f for f in found if f.claim.claim == "A beats D")
    assert near.evidence.claimed == pytest.approx(0.30)  # 90.0 - 60.0 reported
    # D is as strong as A: the seeds split, the interval spans 0, and a 30-point gap would have shown
    assert near.judgement.verdict == "inconclusive" and 0 < (near.judgement.mde or 0) < 0.30
    assert "enough to see the study's reported gap of +30.0 points" in near.judgement.reason


def test_correction_none_judges_each_finding_on_its_raw_p(tmp_path: Path, fabricated: tuple) -> None:
    _, out, _, _ = fabricated
    study = _study(tmp_path / "none", STUDY.replace("  margin: 0.02\n", "  margin: 0.02\n  correction: none\n"))
    assert study.findings.correction == "none"
    for f in gather(out, study, collect(out, study)):
        assert f.judgement.p_adjusted == f.judgement.p or f.judgement.p_adjusted is None
        assert "Holm" not in f.judgement.reason


def test_drop_pairs_by_seed_and_combines_the_corpora(tmp_path: Path) -> None:
    study = _study(tmp_path, STUDY)
    out = tmp_path / "out"
    rav, crema = _predictions(0.9, 10, 1, "ravdess"), _predictions(0.35, 8, 2, "crema-d")
    _run(out / "runs" / "A", {"ravdess": rav})
    alone = [f for f in gather(out, study, collect(out, study)) if f.claim.kind == "drop"][0]
    assert alone.judgement.verdict == "no verdict" and alone.judgement.reason == "A has no predictions on crema-d"
    _run(out / "runs" / "A", {"ravdess": rav, "crema-d": crema})
    drop = next(
        f for f in gather(out, study, collect(out, study)) if f.claim.claim == "A drops from RAVDESS to CREMA-D"
    )
    (ci_1, _), (ci_2, _) = metric_interval(_confusions(rav)), metric_interval(_confusions(crema))
    assert ci_1 is not None and ci_2 is not None
    uar_1, uar_2 = _uar(_confusions(rav)), _uar(_confusions(crema))
    ev = drop.evidence
    assert ev.per_seed == pytest.approx(np.subtract(uar_1, uar_2)) and ev.wins == 3 and ev.seeds == 3
    combined = unpaired_difference(float(np.mean(uar_1) - np.mean(uar_2)), ci_1.se, ci_1.df, ci_2.se, ci_2.df)
    assert combined is not None and ev.ci == pytest.approx(combined.ci) and ev.p == pytest.approx(combined.p)
    assert drop.judgement.verdict == "supported" and "3 of 3 seeds" in drop.judgement.reason
    assert (ev.n, ev.speakers) == (120 + 96, 18)


def test_by_seed_orders_numerically_and_reads_old_runs_as_one_seed() -> None:
    rows = [{"id": "u", "seed": s} for s in ("10", "2", "0")]
    assert [next(iter(g.values()))["seed"] for g in by_seed(rows)] == ["0", "2", "10"]
    assert len(by_seed([{"id": "u"}, {"id": "v"}])) == 1


def test_every_model_is_tested_against_the_baseline_on_its_corpora(fabricated: tuple) -> None:
    study, out, _, _ = fabricated
    base = [f for f in gather(out, study, collect(out, study)) if f.claim.b == "BASE"]
    assert [(f.claim.a, f.corpus) for f in base if f.claim.a in ("A", "B", "H")] == [
        ("A", "ravdess"), ("A", "crema-d"), ("B", "ravdess"), ("B", "crema-d"), ("H", "ravdess"), ("H", "crema-d")
    ]  # fmt: skip
    verdicts = {(f.claim.a, f.corpus): f.judgement.verdict for f in base}
    assert verdicts["A", "ravdess"] == "supported" and verdicts["B", "ravdess"] == "contradicted"
    assert verdicts["H", "ravdess"] == "no verdict"  # random-init: no verdict, whatever the numbers
    assert verdicts["A", "crema-d"] == "no verdict"  # the baseline has no CREMA-D predictions
    assert verdicts["C", "ravdess"] == "inconclusive"  # one seed


def test_findings_csv_and_report_section(fabricated: tuple) -> None:
    study, out, _, _ = fabricated
    paths = write_report(out, study)
    with open(paths["findings"], newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == FINDING_COLUMNS
        rows = list(reader)
    assert FINDING_COLUMNS[:16] == ("claim", "a", "b", "corpus", "uar_a", "uar_b", "diff", "ci95_low",
                                    "ci95_high", "mcnemar_p", "verdict", "reason", "kind", "margin", "n",
                                    "speakers")  # fmt: skip
    assert {"seeds", "wins", "p_adjusted", "mde"} <= set(FINDING_COLUMNS)
    first = rows[0]
    assert (first["claim"], first["a"], first["b"], first["corpus"], first["verdict"]) == (
        "A beats B", "A", "B", "ravdess", "supported")  # fmt: skip
    assert float(first["ci95_low"]) > 0 and float(first["diff"]) == pytest.approx(
        float(first["uar_a"]) - float(first["uar_b"]), abs=2e-6
    )
    assert (first["seeds"], first["wins"]) == ("3", "3")
    assert float(first["p"]) <= float(first["p_adjusted"]) < 0.05 and float(first["mde"]) > 0
    few = next(r for r in rows if r["corpus"] == "crema-d" and r["claim"] == "A beats B on two speakers")
    assert few["ci95_low"] == few["ci95_high"] == "" and few["verdict"] == "inconclusive"
    one = next(r for r in rows if r["claim"] == "A beats C")
    assert (one["seeds"], one["wins"], one["p_adjusted"]) == ("1", "1", "")
    md = paths["markdown"].read_text()
    assert "## Findings" in md and "| A beats H | A vs H | RAVDESS |" in md and "no verdict" in md
    assert "2 UAR points" in md
    assert "| 3 of 3 |" in md and "Holm" in md and "1 seed: training variance not measured" in md
