"""Report rendering on fabricated run directories (no training): results.csv, report.md, report.html."""

from __future__ import annotations

import base64
import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from emoshift.core.io import atomic_write_json, atomic_write_text
from emoshift.evaluation.audit import audit_predictions
from emoshift.study import Outcome, StudyResult, load_study, write_report
from emoshift.study.report import REPORTED_PROTOCOL, RESULT_COLUMNS, collect, key_results, render_markdown

LABELS = ["angry", "happy", "neutral", "sad"]

STUDY = """
title: Fabricated study
defaults:
  data: {corpora: [ravdess]}
  model: {width_mult: 0.25}
  training: {epochs: 1}
experiments:
  - id: A
    title: Specialist
    architecture: ResNet18
    data_strategy: RAVDESS only
    reported_accuracy: {ravdess: 80.56, crema-d: 22.39}
  - id: B
    title: Generalist
    architecture: EfficientNet-B0
    data_strategy: combined
    config:
      data: {corpora: [ravdess, crema-d]}
      model: {name: efficientnet_b0}
  - id: AUD
    title: Audit of A
    architecture: ResNet18 (the A model)
    data_strategy: "-"
    audit_of: A
    audit: {by: [gender, race]}
  - id: NEVER
    title: Never run
    architecture: ResNet18
    data_strategy: RAVDESS only
"""


def _metrics(acc: float, uar: float, n: int, *, leaky: bool = False, split: str = "test") -> dict:
    conf = np.diag([n // 4] * 4).tolist()
    return {
        "accuracy": acc,
        "uar": uar,
        "macro_f1": uar,
        "n": n,
        "labels": LABELS,
        "per_class_recall": dict.fromkeys(LABELS, uar),
        "confusion": conf,
        "ci95": {"accuracy": [acc - 0.05, acc + 0.04], "uar": [uar - 0.06, uar + 0.03]},
        "leaky": leaky,
        "split": split,
    }


def _fake_run(run: Path, metrics: dict[str, dict], *, seconds: float = 12.5) -> None:
    for corpus, m in metrics.items():
        atomic_write_json(run / "metrics" / f"{corpus}.json", m)
    atomic_write_text(
        run / "log.csv",
        "epoch,train_loss,val_loss,val_uar,val_accuracy,lr,seconds\n0,1.7,1.6,0.30,0.31,0.001,3\n1,1.2,1.3,0.52,0.50,0.0005,3\n",
    )
    atomic_write_json(
        run / "model.json", {"model": "resnet18", "labels": LABELS, "architecture": "resnet18 x0.25"}
    )
    atomic_write_json(
        run / "done.json",
        {"fingerprint": "x", "seconds": seconds, "epochs_run": 2, "finished": "2026-01-01T00:00:00+00:00"},
    )


def _fake_audit(folder: Path, corpus: str) -> dict:
    rng = np.random.default_rng(0)
    rows, demo = [], {}
    for s in range(8):
        gender = "male" if s % 2 else "female"
        for i in range(12):
            uid = f"{corpus}-{s}-{i}"
            true = LABELS[i % 4]
            # women are recognised better than men: a real gap for the permutation test
            pred = true if rng.random() < (0.9 if gender == "female" else 0.4) else LABELS[(i + 1) % 4]
            rows.append({"id": uid, "speaker": f"s{s}", "true": true, "pred": pred})
            demo[uid] = {"gender": gender}
    report = audit_predictions(
        rows, demo, by=["gender", "race"], labels=LABELS, n_resamples=50, n_permutations=99, corpus=corpus
    )
    atomic_write_json(folder / f"{corpus}.json", report)
    return report


@pytest.fixture()
def fabricated(tmp_path: Path) -> tuple:
    study_file = tmp_path / "study.yaml"
    study_file.write_text(STUDY)
    roots = {}
    for corpus in ("ravdess", "crema-d"):
        (tmp_path / "data" / corpus).mkdir(parents=True)
        roots[corpus] = str(tmp_path / "data" / corpus)
    study = load_study(study_file, roots=roots)
    out = tmp_path / "out"
    _fake_run(
        out / "runs" / "A",
        {"ravdess": {**_metrics(0.61, 0.58, 96), "text_overlap": 1.0},
         "crema-d": {**_metrics(0.25, 0.22, 480, split="all"), "text_overlap": 0.0}},
    )
    _fake_run(
        out / "runs" / "B",
        {"ravdess": _metrics(0.97, 0.96, 96, leaky=True), "crema-d": _metrics(0.55, 0.53, 120)},
        seconds=3725,
    )
    audit_dir = out / "runs" / "AUD" / "audit"
    report = _fake_audit(audit_dir, "crema-d")
    atomic_write_json(
        out / "runs" / "AUD" / "done.json",
        {"fingerprint": "y", "kind": "audit", "seconds": 2.0, "finished": "2026-01-01T00:00:00+00:00"},
    )
    return study, out, report


def _results(out: Path) -> list[dict[str, str]]:
    with open(out / "results.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == RESULT_COLUMNS
        return list(reader)


def test_results_csv_rows_and_values(fabricated: tuple) -> None:
    study, out, _ = fabricated
    write_report(out, study)
    rows = _results(out)
    assert [(r["experiment"], r["corpus"]) for r in rows] == [
        ("A", "ravdess"),
        ("A", "crema-d"),
        ("B", "ravdess"),
        ("B", "crema-d"),
        ("AUD", "ravdess"),
        ("AUD", "crema-d"),
    ]
    a = rows[0]
    assert float(a["accuracy"]) == pytest.approx(0.61)
    assert float(a["accuracy_lo"]) == pytest.approx(0.56)
    assert float(a["uar_hi"]) == pytest.approx(0.61)
    assert a["n"] == "96" and a["leaky"] == "false"
    assert rows[2]["leaky"] == "true"
    # the audit-only experiment repeats the metrics of the run it audits
    assert {k: v for k, v in rows[4].items() if k != "experiment"} == {
        k: v for k, v in rows[0].items() if k != "experiment"
    }


def test_markdown_has_every_section_and_number(fabricated: tuple) -> None:
    study, out, audit = fabricated
    write_report(out, study)
    md = (out / "report.md").read_text()
    for heading in (
        "## Key results",
        "## Cross-corpus matrix (UAR)",
        "## Confusion matrices",
        "## Training curves",
        "## Fairness audit",
        "## Leakage flags",
        "## Run time",
        "## Environment",
    ):
        assert heading in md
    for eid in ("A", "B", "AUD", "NEVER"):
        assert f"| {eid} |" in md
    assert "61.0 [56.0, 65.0]" in md  # accuracy with its 95% CI, in %
    assert "22.0 [16.0, 25.0] (unseen)" in md  # a corpus the model never saw
    assert REPORTED_PROTOCOL in md and "80.56" in md and "22.39" in md
    assert "⚠ leaky" in md and "LEAKY" in md
    # text overlap is marked beside the leak flags: A tested RAVDESS sentences it trained on, not CREMA-D's
    assert "| no | TEXT OVERLAP 100% |" in md and "| no | no |" in md and "| n/a |" in md
    assert "2 of 6 scores test sentences the model heard in training" in md  # A, and AUD that repeats it
    assert "AUD trains nothing: its scores are those of A (the same model)" in md
    p = audit["by"]["gender"]["p_value_uar"]
    assert f"{p:.3f}" in md and "not recorded" in md  # race is not in the fabricated demographics
    assert "1:02:05 (training)" in md  # B's recorded 3725 s
    assert "not run" in md
    for version in ("python", "torch", "transformers", "lightning", "git commit", "seeds", "device", "date"):
        assert f"| {version} |" in md
    # every image link points at a file that exists
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert links and all((out / link).is_file() for link in links)
    assert "plots/cross_corpus_uar.png" in links


def test_html_is_self_contained(fabricated: tuple) -> None:
    study, out, _ = fabricated
    write_report(out, study)
    page = (out / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page and "<link" not in page and "@import" not in page
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) >= 6  # heatmap, 4 confusions, curves, audit plots ...
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    png = base64.b64decode(sources[0].split(",", 1)[1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Fabricated study" in page and "&lt;" not in page.split("<body>")[0]


def test_failures_and_wall_time_from_study_result(fabricated: tuple) -> None:
    study, out, _ = fabricated
    atomic_write_text(out / "errors" / "NEVER.txt", "Traceback ...\n")
    result = StudyResult(
        out=out,
        selected=["A", "NEVER"],
        outcomes={
            "A": Outcome("A", "skipped", out / "runs" / "A", seconds=0.4),
            "NEVER": Outcome(
                "NEVER", "failed", out / "runs" / "NEVER", seconds=1.0, error="no | pipes allowed"
            ),
        },
        seconds=1.4,
    )
    paths = write_report(out, study, result)
    md = paths["markdown"].read_text()
    assert "## Errors" in md and "no \\| pipes allowed" in md and "errors/NEVER.txt" in md
    assert "FAILED: NEVER (no | pipes allowed)" in md
    summaries = {s.id: s for s in collect(out, study, result)}
    assert summaries["A"].status == "skipped" and summaries["NEVER"].status == "failed"
    assert "NEVER" not in {r["experiment"] for r in _results(out)}


def test_key_results_compact_for_the_terminal(fabricated: tuple) -> None:
    study, out, _ = fabricated
    summaries = collect(out, study)
    header, rows = key_results(summaries, ["ravdess", "crema-d"], compact=True)
    assert header[:2] == ["ID", "RAVDESS acc"] and "RAVDESS study†" in header and "CREMA-D UAR" in header
    assert rows[0][:5] == ["A", "61.0", "58.0", "25.0*", "22.0*"]
    assert rows[1][1] == "97.0!" and rows[2][1] == "61.0"  # B is leaky; AUD repeats A
    assert len({len(r) for r in rows}) == 1 and len(rows[0]) == len(header)


def test_report_of_an_empty_output_folder(tmp_path: Path, fabricated: tuple) -> None:
    study, _, _ = fabricated
    paths = write_report(tmp_path / "empty", study)
    assert _results(tmp_path / "empty") == []
    md = paths["markdown"].read_text()
    assert "No run has been evaluated yet." in md and "No audit has been run." in md


def test_markdown_escapes_table_pipes(tmp_path: Path) -> None:
    from emoshift.study.report import Heading, Image, Table

    png = tmp_path / "x" / "a.png"
    png.parent.mkdir()
    png.write_bytes(b"\x89PNG\r\n\x1a\n")
    text = render_markdown([Heading("T", 1), Table(["a|b"], [["c|d"]]), Image(png, "alt")], tmp_path)
    assert "| a\\|b |" in text and "| c\\|d |" in text and "![alt](x/a.png)" in text


def test_write_report_is_atomic(fabricated: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that fails half-way leaves the previous report untouched and no temp file behind.

    The page given to the writer cannot be encoded past its first characters, so the failure comes while the
    file is being written, after the old one was opened: a plain ``open(path, "w")`` would have truncated it.
    """
    import emoshift.study.report as report

    study, out, _ = fabricated
    write_report(out, study)
    before = (out / "report.html").read_bytes()
    files = sorted(p.name for p in out.iterdir())

    real = report.render_html
    monkeypatch.setattr(report, "render_html", lambda *a, **k: real(*a, **k) + "\ud800")  # a lone surrogate
    with pytest.raises(UnicodeEncodeError):
        write_report(out, study)
    assert (out / "report.html").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == files  # no temp file left
    assert json.loads(json.dumps(_results(out)))  # results.csv still parses


def test_kfold_metrics_fill_the_new_columns_and_null_cis_show_na(fabricated: tuple) -> None:
    """results.csv adds uar_fold_sd, speakers, folds from a pooled k-fold metrics JSON; a null CI (too few
    speakers) is 'n/a (N speakers)' in the report and empty in results.csv, never a zero-width interval."""
    study, out, _ = fabricated
    pooled = _metrics(0.61, 0.58, 96)
    folds = [
        {"fold": i, "n": 32, "speakers": 4, "accuracy": 0.6, "uar": u, "macro_f1": u}
        for i, u in enumerate((0.5, 0.6, 0.64))
    ]
    pooled.update({"folds": folds, "fold_mean": {"uar": 0.58}, "fold_sd": {"uar": 0.0572}, "speakers": 12})
    null_ci = {
        **_metrics(0.25, 0.22, 480, split="all"),
        "ci95": None,
        "ci95_reason": "2 test speakers: too few",
    }
    atomic_write_json(out / "runs" / "A" / "metrics" / "ravdess.json", pooled)
    atomic_write_json(out / "runs" / "A" / "metrics" / "crema-d.json", null_ci)
    # an older run: a zero-width interval from the two speakers of its predictions file
    old = {**_metrics(0.55, 0.53, 120), "ci95": {"accuracy": [0.55, 0.55], "uar": [0.53, 0.53]}}
    atomic_write_json(out / "runs" / "B" / "metrics" / "crema-d.json", old)
    rows = [f"c{i},{'s1' if i % 2 else 's2'},angry,angry\n" for i in range(4)]
    atomic_write_text(
        out / "runs" / "B" / "predictions" / "crema-d.csv", "id,speaker,true,pred\n" + "".join(rows)
    )
    write_report(out, study)
    by = {(r["experiment"], r["corpus"]): r for r in _results(out)}
    assert RESULT_COLUMNS[-6:] == ("uar_fold_sd", "speakers", "folds", "seeds", "uar_seed_mean", "uar_seed_sd")
    a = by["A", "ravdess"]
    assert (a["uar_fold_sd"], a["speakers"], a["folds"]) == ("0.057200", "12", "3")
    assert by["A", "crema-d"]["uar_lo"] == by["A", "crema-d"]["uar_hi"] == ""
    assert by["B", "crema-d"]["uar_lo"] == "" and by["B", "crema-d"]["speakers"] == "2"
    md = (out / "report.md").read_text()
    assert "58.0 [52.0, 61.0], fold sd 5.7 (3 folds)" in md
    assert "22.0 n/a" in md  # no CI, speaker count unknown (no predictions file in this fabricated run)
    assert "53.0 n/a (2 speakers)" in md and "[n/a" not in md and "53.0 [53.0, 53.0]" not in md
    assert re.search(r"(\d+\.\d) \[\1, \1\]", md) is None  # never x [x, x]


def test_seeds_beside_the_fold_sd_and_one_seed_said(fabricated: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    """A score trained over seeds shows the seeds' mean and sd beside the fold sd, results.csv carries them, the
    chart gets each seed's UAR as a dot; a one-seed experiment is said not to measure training variance."""
    from emoshift.evaluation import plots

    study, out, _ = fabricated
    pooled = _metrics(0.61, 0.58, 96)
    seeds = [{"seed": s, "uar": u, "accuracy": 0.6, "macro_f1": u, "fold_sd": 0.05} for s, u in ((0, 0.56), (1, 0.6))]
    pooled.update({"fold_sd": {"uar": 0.05}, "folds": 2, "speakers": 12, "seeds": seeds, "seed_mean": 0.58,
                   "seed_sd": 0.0283, "n_seeds": 2})
    atomic_write_json(out / "runs" / "A" / "metrics" / "ravdess.json", pooled)
    drawn: list[dict] = []
    real = plots.plot_scores_ci
    monkeypatch.setattr(plots, "plot_scores_ci", lambda *a, **k: drawn.append(k.get("points")) or real(*a, **k))
    write_report(out, study)
    md = (out / "report.md").read_text()
    assert "fold sd 5.0 (2 folds), seed mean 58.0, sd 2.8 (2 seeds)" in md
    assert "B trained one seed: training variance not measured (1 seed)" in md
    assert "dots: each training seed's UAR" in md
    assert drawn == [{"A": {"RAVDESS": [0.56, 0.6]}, "B": {}}]
    a = {(r["experiment"], r["corpus"]): r for r in _results(out)}["A", "ravdess"]
    assert (a["seeds"], a["uar_seed_mean"], a["uar_seed_sd"]) == ("2", "0.580000", "0.028300")


def test_key_results_chart_beside_the_table(fabricated: tuple) -> None:
    study, out, _ = fabricated
    write_report(out, study)
    md = (out / "report.md").read_text()
    key = md.split("## Key results", 1)[1].split("## ", 1)[0]
    assert "![key results: UAR with 95% speaker-bootstrap CIs](plots/key_results_uar.png)" in key
    assert (out / "plots" / "key_results_uar.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "report.html").read_text()
    assert 'alt="key results: UAR with 95% speaker-bootstrap CIs"' in page


def test_a_report_written_again_redraws_only_what_changed(fabricated: tuple) -> None:
    """The figures the report draws for runs that drew none are drawn again only for a run evaluated since."""
    import os

    study, out, _ = fabricated
    write_report(out, study)
    drawn = {p.name: p.stat().st_mtime_ns for p in (out / "plots").glob("confusion_*.png")}
    assert {"confusion_A_ravdess.png", "confusion_B_crema-d.png"} <= set(drawn)
    later = max(drawn.values()) + 10**9
    os.utime(out / "runs" / "B" / "metrics" / "crema-d.json", ns=(later, later))  # B evaluated again
    write_report(out, study)
    again = {p.name: p.stat().st_mtime_ns for p in (out / "plots").glob("confusion_*.png")}
    assert [n for n in drawn if again[n] != drawn[n]] == ["confusion_B_crema-d.png"]


# --------------------------------------------------------------------------------------------------------
# issue 24: a collapsed model is called out; notes only for experiments with scores; only the marks in use


def _collapsed_metrics(n: int = 96) -> dict:
    m = _metrics(0.25, 0.25, n)
    m["confusion"] = [[0, 0, 0, n // 4] for _ in LABELS]  # every utterance predicted "sad"
    m["ci95"] = {"accuracy": [0.25, 0.25], "uar": [0.25, 0.25]}
    return m


def test_a_model_collapsed_to_one_class_is_called_out(fabricated: tuple) -> None:
    study, out, _ = fabricated
    _fake_run(out / "runs" / "B", {"ravdess": _collapsed_metrics(), "crema-d": _metrics(0.55, 0.53, 120)})
    summaries = collect(out, study)
    b = next(s for s in summaries if s.id == "B")
    assert b.metrics["ravdess"].collapsed == {"label": "sad", "share": 1.0}  # from the confusion matrix
    assert b.metrics["crema-d"].collapsed is None and summaries[0].metrics["ravdess"].collapsed is None
    header, rows = key_results(summaries, ["ravdess", "crema-d"])
    assert "25.0 [25.0, 25.0] ⚠ collapsed: predicts 'sad' only" in rows[1]
    _, compact = key_results(summaries, ["ravdess", "crema-d"], compact=True)
    assert compact[1][1:3] == ["25.0#", "25.0#"] and "#" not in "".join(compact[0])
    write_report(out, study)
    md = (out / "report.md").read_text()
    assert "B on RAVDESS: the model predicts 'sad' for all 96 utterances (collapsed to one class" in md


STAGED = """
title: Staged
defaults:
  data: {corpora: [ravdess]}
  training: {epochs: 4}
experiments:
  - id: A
    title: Specialist
    architecture: ResNet18
    data_strategy: RAVDESS only
  - id: S
    title: Staged SSL
    architecture: HuBERT
    data_strategy: RAVDESS only
    config:
      model: {name: hubert, preset: tiny}
      training: {stages: [{epochs: 2, train: head}, {epochs: 2, train: all}]}
"""


def test_notes_only_for_experiments_with_scores_and_only_the_marks_in_use(tmp_path: Path) -> None:
    from emoshift.study.report import marks_legend

    (tmp_path / "study.yaml").write_text(STAGED)
    (tmp_path / "ravdess").mkdir()
    study = load_study(tmp_path / "study.yaml", roots={"ravdess": str(tmp_path / "ravdess")},
                       overrides=["training.epochs=2"])
    assert study.experiment("S").notes  # its stages were fitted to the new epochs: a note
    out = tmp_path / "out"
    _fake_run(out / "runs" / "A", {"ravdess": _metrics(0.61, 0.58, 96)})
    write_report(out, study)
    assert "S: training.stages fitted" not in (out / "report.md").read_text()  # S never ran
    _fake_run(out / "runs" / "S", {"ravdess": _metrics(0.5, 0.5, 96)})
    write_report(out, study)
    assert "S: training.stages fitted" in (out / "report.md").read_text()
    # no study numbers (a cross-corpus study): no "†" line; no unseen, leaky or collapsed score: no legend
    header, rows = key_results(collect(out, study), ["ravdess"], compact=True)
    assert not any("†" in h for h in header) and marks_legend(header, rows) == ""
    rows[0][1] += "*"
    assert marks_legend(header, rows) == "* a corpus the model never saw (every utterance)"


def test_ece_beside_uar_and_the_calibration_section(fabricated: tuple) -> None:
    """A calibrated run's ECE (and its ECE before temperature scaling) sits beside UAR in the key results; the
    calibration section states the abstention threshold and what it gives on each corpus."""
    study, out, _ = fabricated
    home, away = _metrics(0.61, 0.58, 96), _metrics(0.25, 0.22, 480, split="all")
    for m, ece, before, answered in ((home, 0.084, 0.104, 40), (away, 0.31, 0.36, 60)):
        m.update(ece=ece, mce=0.2, brier=0.7, nll=1.4)
        m["ci95"]["ece"] = [ece - 0.02, ece + 0.03]
        m["calibration"] = {"bins": 15, "brier": "sum", "temperature": 1.6,
                            "uncalibrated": {"ece": before, "mce": 0.3, "brier": 0.75, "nll": 1.5}}
        m["abstention"] = {"target_accuracy": 0.9, "threshold": 0.612, "threshold_from": ["ravdess"],
                           "answered": answered, "coverage": answered / m["n"], "accuracy": 0.9, "uar": 0.88}
    _fake_run(out / "runs" / "A", {"ravdess": home, "crema-d": away})
    header, rows = key_results(collect(out, study), ["ravdess", "crema-d"])
    assert header.index("RAVDESS ECE [95% CI]") == header.index("RAVDESS UAR % [95% CI]") + 1
    assert "CREMA-D ECE [95% CI]" in header and len(rows[0]) == len(header) == len(rows[1])
    row = dict(zip(header, rows[0], strict=True))
    assert row["RAVDESS ECE [95% CI]"] == "0.084 [0.064, 0.114]; 0.104 before temperature scaling"
    assert dict(zip(header, rows[1], strict=True))["RAVDESS ECE [95% CI]"] == "–"  # B has no calibration scores
    write_report(out, study)
    md = (out / "report.md").read_text()
    assert "## Calibration and abstention" in md
    assert ("CREMA-D (all): ECE 0.310 (0.360 before temperature scaling); threshold 0.612 (keeps 90% in-domain "
            "accuracy) answers 12.5% here, accuracy 90.0%, UAR 88.0%") in md
