"""The N-corpus study: experiments generated from the corpus list, the label intersection (fast), then the
whole study on three synthetic corpora (RAVDESS, CREMA-D, IEMOCAP) at tiny widths, one epoch per run."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emoshift.cli import app
from emoshift.corpora import scan_source
from emoshift.study import StudyError, load_study
from emoshift.study.cross_corpus import CrossCorpusError, CrossCorpusSpec, choose_labels

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "cross_corpus.yaml"
COLUMNS = ["train", "test", "uar", "ci95_low", "ci95_high", "speakers", "in_domain", "leaky"]


@pytest.fixture(scope="module")
def roots(synth_tiny: Path, synth_more: Path) -> dict[str, str]:
    return {
        "ravdess": str(synth_tiny / "ravdess"),
        "crema-d": str(synth_tiny / "crema-d"),
        "iemocap": str(synth_more / "iemocap"),
    }


def test_experiments_are_generated_from_the_corpus_list(roots: dict[str, str]) -> None:
    study = load_study(CONFIG, roots=roots, profile="demo", overrides=["model.width_mult=0.125"])
    assert study.ids == [
        "train.ravdess", "train.crema-d", "train.iemocap", "loco.ravdess", "loco.crema-d", "loco.iemocap"
    ]
    trained = {e.id: e.config.data.corpora for e in study.experiments if e.config}
    assert trained["train.iemocap"] == ["iemocap"]
    assert trained["loco.crema-d"] == ["ravdess", "iemocap"]
    assert study.matrix is not None and study.matrix.corpora == ("ravdess", "crema-d", "iemocap")
    # IEMOCAP holds no fear or disgust: the intersection is the four-class policy, set in every config
    assert study.matrix.policy == "four" and study.matrix.classes == ("angry", "happy", "neutral", "sad")
    assert "iemocap lacks disgust, fearful" in study.matrix.chosen
    assert {e.config.data.labels for e in study.experiments if e.config} == {"four"}
    assert {e.config.model.width_mult for e in study.experiments if e.config} == {0.125}

    two = load_study(CONFIG, roots={k: roots[k] for k in ("ravdess", "crema-d")})
    assert two.ids == ["train.ravdess", "train.crema-d"]  # with two corpora a LOCO set is the other corpus
    assert two.matrix is not None and two.matrix.policy == "six"


def test_a_manifest_table_is_a_corpus_of_the_study(roots: dict[str, str], synth_more: Path) -> None:
    table = str(synth_more / "manifest" / "manifest.csv")
    study = load_study(CONFIG, roots={"ravdess": roots["ravdess"], "mine": table})
    assert study.ids == ["train.ravdess", "train.mine"]
    assert study.experiment("train.mine").config.data.roots == {"mine": table}  # type: ignore[union-attr]
    assert study.matrix is not None and study.matrix.policy == "six"


def test_corpus_count_and_label_errors(roots: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(StudyError, match="2 to 10 corpora"):
        load_study(CONFIG, roots={"ravdess": roots["ravdess"]})
    spec = CrossCorpusSpec()
    sad_only = {"a": Counter(angry=10, happy=10, neutral=10, sad=10), "b": Counter(sad=30, neutral=1)}
    with pytest.raises(CrossCorpusError, match=r"b lacks angry, happy\)"):  # 1 of 31 neutral is 3%: held
        choose_labels(spec, sad_only)
    # a class under the share does not count as held; a policy named in the file is used as given
    rare = {"a": Counter(dict.fromkeys(["angry", "disgust", "fearful", "happy", "neutral", "sad"], 50)),
            "b": Counter(angry=100, happy=100, neutral=100, sad=100, fearful=3, disgust=1)}
    assert choose_labels(spec, rare)[0] == "four"
    assert choose_labels(CrossCorpusSpec(min_class_share=0.0), rare)[0] == "six"
    policy, chosen, lacking = choose_labels(CrossCorpusSpec(labels="six"), rare)
    assert (policy, lacking) == ("six", {"b": ["disgust", "fearful"]}) and "as set" in chosen
    bad = tmp_path / "bad.yaml"
    bad.write_text(CONFIG.read_text().replace("loco: true", "loco: true\n  shuffle: yes"))
    with pytest.raises(StudyError, match="cross_corpus"):
        load_study(bad, roots=roots)


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_three_corpus_study_writes_the_matrix(roots: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    sets = [
        f"data.cache_dir={tmp_path / 'cache'}", "features.n_mels=32", "features.crop_s=0.5",
        "model.name=resnet18", "model.width_mult=0.125", "training.batch_size=32", "training.epochs=1",
        "training.early_stopping_patience=null", "evaluation.n_bootstrap=20", "evaluation.figures=false", "trainer.progress=false",
    ]
    args = ["study", str(CONFIG), "-o", str(out), "-q"]
    args += [a for name, root in roots.items() for a in ("--corpus", f"{name}={root}")]
    args += [a for s in sets for a in ("--set", s)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output

    rows = _read(out / "cross_corpus.csv")
    assert list(rows[0]) == COLUMNS
    trains = ["ravdess", "crema-d", "iemocap", "crema-d+iemocap", "ravdess+iemocap", "ravdess+crema-d"]
    assert [(r["train"], r["test"]) for r in rows] == [(t, c) for t in trains for c in roots]  # 6 x 3
    four = {c: scan_source(c, root, "four") for c, root in roots.items()}
    for r in rows:
        run = out / "runs" / (f"train.{r['train']}" if "+" not in r["train"] else
                              "loco." + next(c for c in roots if c not in r["train"].split("+")))
        preds = _read(run / "predictions" / f"{r['test']}.csv")
        assert {p["true"] for p in preds} <= {"angry", "happy", "neutral", "sad"}
        assert r["in_domain"] == ("true" if r["test"] in r["train"].split("+") else "false")
        assert r["leaky"] == "false" and 0.0 <= float(r["uar"]) <= 1.0
        if r["in_domain"] == "true":  # only the held-out test speakers of that corpus
            split = _read(run / "splits" / f"{r['test']}.csv")
            test_ids = {s["id"] for s in split if s["split"] == "test"}
            assert {p["id"] for p in preds} == test_ids
            assert int(r["speakers"]) == len({s["speaker"] for s in split if s["split"] == "test"})
        else:  # every utterance of a corpus the model never saw
            assert {p["id"] for p in preds} == {u.id for u in four[r["test"]].utterances}
            assert int(r["speakers"]) == len(four[r["test"]].speakers)
    report = (out / "report.md").read_text()
    assert "## Cross-corpus matrix: 3 corpora (UAR)" in report
    assert "intersection of the corpora's label policies, 'four'" in report
    assert "| all but iemocap |" in report and (out / "plots" / "cross_corpus_matrix.png").is_file()
    assert "Cross-corpus matrix: 3 corpora" in (out / "report.html").read_text()
