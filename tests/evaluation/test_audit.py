"""Fairness audit: known gaps are found, equal behaviour is not flagged, small groups are kept and flagged,
unrecorded groupings are reported as unavailable; the CLI writes the JSON, Markdown and plots."""

from __future__ import annotations

import csv
import json
import sys
import types

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from emoshift.cli import app
from emoshift.evaluation.audit import (
    AuditError,
    age_band,
    audit_predictions,
    audit_run,
    parse_age_bands,
    parse_by,
    render_markdown,
)

LABELS = ["angry", "disgust", "fearful", "happy", "neutral", "sad"]
GROUP_KEYS = {
    "speakers",
    "n",
    "accuracy",
    "accuracy_ci",
    "uar",
    "uar_ci",
    "macro_f1",
    "macro_f1_ci",
    "ci_reason",
    "recall",
    "confusion",
    "collapsed",
    "too_small",
}


def _rows_and_demographics(
    rng: np.random.Generator,
    *,
    n_per_gender: int = 8,
    per_speaker: int = 24,
    same: bool = False,
    extra_old: int = 0,
):
    """Female speakers predicted perfectly, male speakers at chance (``same``: males copy the females'
    predictions exactly). Ages: 20s and 30s alternate; ``extra_old`` more speakers aged 55 (a small group)."""
    rows, demo = [], {}
    speakers = [("female", s) for s in range(n_per_gender)] + [("male", s) for s in range(n_per_gender)]
    speakers += [("female", 100 + s) for s in range(extra_old)]
    female_preds: dict[int, list[str]] = {}
    for gender, s in speakers:
        truth = [LABELS[i % len(LABELS)] for i in range(per_speaker)]
        if gender == "female":
            pred = list(truth) if not same else [t if rng.random() < 0.6 else "angry" for t in truth]
            female_preds[s] = pred
        else:
            pred = list(female_preds[s]) if same else list(rng.choice(LABELS, per_speaker))
        age = 55 if s >= 100 else (24 if s % 2 == 0 else 33)
        for k, (t, p) in enumerate(zip(truth, pred, strict=True)):
            uid = f"fake/{gender[0]}{s:03d}_{k}"
            rows.append(
                {"id": uid, "speaker": f"fake/{gender[0]}{s:03d}", "true": t, "pred": p, "gender": gender}
            )
            demo[uid] = {"gender": gender, "age": age, "race": None, "ethnicity": None}
    return rows, demo


def test_a_model_perfect_on_one_gender_and_at_chance_on_the_other_shows_a_large_significant_gap():
    rows, demo = _rows_and_demographics(np.random.default_rng(0))
    report = audit_predictions(rows, demo, by=["gender"], labels=LABELS, n_resamples=200, n_permutations=500)
    g = report["by"]["gender"]
    assert list(g["groups"]) == ["female", "male"]
    female, male = g["groups"]["female"], g["groups"]["male"]
    assert set(female) == GROUP_KEYS
    assert female["speakers"] == 8 and female["n"] == 8 * 24
    assert female["uar"] == 1.0 and female["uar_ci"] == [1.0, 1.0]
    assert male["uar"] < 0.35
    assert male["uar_ci"][0] <= male["uar"] <= male["uar_ci"][1]
    assert g["gap"]["uar"] == pytest.approx(1.0 - male["uar"])
    assert g["ratio"]["uar"] == pytest.approx(male["uar"])
    assert g["p_value_uar"] < 0.01
    assert g["best_uar"] == "female" and g["worst_uar"] == "male"
    assert all(g["recall_gap"][label] > 0.3 for label in LABELS)
    assert sum(map(sum, female["confusion"])) == female["n"]
    assert "serves male speakers worse" in render_markdown(report)
    json.dumps(report)  # JSON-ready: no numpy scalars, no NaN


def test_identical_behaviour_gives_no_gap_and_a_large_p_value():
    rows, demo = _rows_and_demographics(np.random.default_rng(1), same=True)
    report = audit_predictions(rows, demo, by=["gender"], labels=LABELS, n_resamples=100, n_permutations=300)
    g = report["by"]["gender"]
    assert g["gap"]["uar"] == pytest.approx(0.0) and g["ratio"]["accuracy"] == pytest.approx(1.0)
    assert g["p_value_uar"] == 1.0
    assert "consistent with chance" in render_markdown(report)


def test_small_groups_are_kept_flagged_and_not_compared():
    rows, demo = _rows_and_demographics(np.random.default_rng(2), extra_old=2)
    del demo[rows[0]["id"]]  # one utterance without a record: its speaker is otherwise known
    for r in rows:
        if r["speaker"] == "fake/m007":
            demo[r["id"]]["age"] = None  # a speaker whose age is not recorded
    report = audit_predictions(
        rows, demo, by=["age_band"], labels=LABELS, n_resamples=100, n_permutations=200
    )
    a = report["by"]["age_band"]
    assert list(a["groups"]) == ["20-29", "30-39", "50-59", "unknown"]
    assert a["groups"]["50-59"]["too_small"] is True and a["groups"]["50-59"]["speakers"] == 2
    # two speakers: no interval, the reason instead (the markdown says n/a)
    small = a["groups"]["50-59"]
    assert small["uar_ci"] is None and small["accuracy_ci"] is None and small["macro_f1_ci"] is None
    assert small["ci_reason"] == "2 test speakers: too few for a speaker bootstrap"
    assert "n/a (2 speakers)" in render_markdown(report)
    big = a["groups"]["20-29"]
    assert big["speakers"] >= 5 and big["ci_reason"] is None and big["uar_ci"][0] <= big["uar"] <= big["uar_ci"][1]
    assert a["compared"] == ["20-29", "30-39"]
    assert any("50-59" in note and "not compared" in note for note in a["notes"])
    assert any("'unknown'" in note for note in a["notes"])
    assert a["p_value_uar"] is not None
    assert report["notes"] == ["1 predictions have no demographic record in the corpus scan"]
    # speakers are split by their recorded age: fake/f000 kept its 20s band although one id had no record
    assert a["groups"]["unknown"]["speakers"] == 1

    # fewer than two comparable groups: everything reported, nothing compared
    report = audit_predictions(
        rows, demo, by=["age_band"], age_bands=[18, 50], labels=LABELS, n_resamples=50, n_permutations=50
    )
    a = report["by"]["age_band"]
    assert list(a["groups"]) == ["18-49", "50+", "unknown"]
    assert a["p_value_uar"] is None and a["gap"]["uar"] is None


def test_unrecorded_groupings_are_unavailable_unless_none_is_available():
    rows, demo = _rows_and_demographics(np.random.default_rng(3), n_per_gender=3)
    report = audit_predictions(
        rows, demo, by=["gender", "race"], labels=LABELS, n_resamples=50, n_permutations=50, corpus="ravdess"
    )
    assert report["by"]["race"] == {"available": False, "groups": {}, "note": "ravdess does not record race"}
    assert "Not available: ravdess does not record race" in render_markdown(report)
    with pytest.raises(AuditError, match="records none of race, ethnicity"):
        audit_predictions(rows, demo, by=["race", "ethnicity"], corpus="ravdess")
    with pytest.raises(AuditError, match="none of the .* predictions matches"):
        audit_predictions(rows, {"other/1": {}}, by=["gender"])


def test_group_names_and_age_bands():
    assert parse_by("Gender, age") == ["gender", "age_band"]
    assert parse_by("gender,accent") == ["gender", "accent"]  # a metadata column of the corpus
    with pytest.raises(AuditError, match="unknown audit grouping"):
        parse_by("gender,height", known={"gender", "accent"})  # the corpus carries no such column
    with pytest.raises(AuditError, match="unknown audit grouping"):
        parse_by("gender,he ight!")
    assert [age_band(a) for a in (20, 29, 30, 74)] == ["20-29", "20-29", "30-39", "70-79"]
    edges = parse_age_bands("20,35,50")
    assert [age_band(a, edges) for a in (19, 20, 34, 35, 50, 80)] == [
        "<20",
        "20-34",
        "20-34",
        "35-49",
        "50+",
        "50+",
    ]
    with pytest.raises(AuditError, match="increasing"):
        parse_age_bands("30,20")
    with pytest.raises(AuditError, match="whole years"):
        parse_age_bands("20,x")


# --------------------------------------------------------------------------------------------------------
# Run directory + a tiny CREMA-D tree for audit_run and the CLI
# --------------------------------------------------------------------------------------------------------

ACTORS = {  # ActorID: (Sex, Age, Race, Ethnicity)
    "1001": ("Male", 25, "Caucasian", "Not Hispanic"),
    "1002": ("Female", 27, "Asian", "Not Hispanic"),
    "1003": ("Male", 41, "African American", "Hispanic"),
    "1004": ("Female", 44, "Caucasian", "Not Hispanic"),
    "1005": ("Male", 29, "Caucasian", "Not Hispanic"),
    "1006": ("Female", 46, "Unknown", "Not Hispanic"),
}
CODES = {"ANG": "angry", "DIS": "disgust", "FEA": "fearful", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}


def _fake_cremad(root):
    audio = root / "AudioWAV"
    audio.mkdir(parents=True)
    t = np.arange(8000) / 16000
    clips = []
    for actor in ACTORS:
        for sentence in ("DFA", "IEO"):
            for code in CODES:
                stem = f"{actor}_{sentence}_{code}_XX"
                sf.write(audio / f"{stem}.wav", 0.3 * np.sin(2 * np.pi * 220 * t), 16000, subtype="PCM_16")
                clips.append((stem, actor, CODES[code]))
    with open(root / "VideoDemographics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ActorID", "Age", "Sex", "Race", "Ethnicity"])
        for actor, (sex, age, race, eth) in ACTORS.items():
            w.writerow([actor, age, sex, race, eth])
    return clips


def _write_predictions(path, clips, seed=0):
    """Female actors always right, male actors at chance."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "path", "corpus", "speaker", "gender", "true", "pred"] + [f"p_{x}" for x in LABELS])
        for stem, actor, emotion in clips:
            gender = ACTORS[actor][0].lower()
            pred = emotion if gender == "female" else str(rng.choice(LABELS))
            probs = [1.0 if x == pred else 0.0 for x in LABELS]
            w.writerow(
                [
                    f"crema-d/{stem}",
                    f"/x/{stem}.wav",
                    "crema-d",
                    f"crema-d/{actor}",
                    gender,
                    emotion,
                    pred,
                    *probs,
                ]
            )


def _fake_run(run, clips, *, predictions=True):
    run.mkdir(parents=True)
    (run / "model.json").write_text(json.dumps({"model": "resnet18", "labels": LABELS, "label_policy": "six"}))
    if predictions:
        _write_predictions(run / "predictions" / "crema-d.csv", clips)


def test_cli_audit_writes_json_markdown_and_plots(tmp_path):
    clips = _fake_cremad(tmp_path / "CREMA-D")
    run = tmp_path / "run"
    _fake_run(run, clips)
    result = CliRunner().invoke(
        app,
        [
            "audit",
            str(run),
            "--on",
            f"crema-d={tmp_path / 'CREMA-D'}",
            "--by",
            "gender,age_band,race,ethnicity",
            "--resamples",
            "100",
            "--permutations",
            "100",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "By gender: UAR ranges from" in result.output
    assert "too few speakers for this test to reach p < 0.05 (smallest possible p = 0.100)" in result.output
    out = run / "audit"
    report = json.loads((out / "crema-d.json").read_text())
    assert report["corpus"] == "crema-d"
    assert list(report["by"]) == ["gender", "age_band", "race", "ethnicity"]
    gender = report["by"]["gender"]
    assert gender["groups"]["female"]["uar"] == 1.0 and gender["groups"]["female"]["speakers"] == 3
    assert gender["groups"]["male"]["too_small"] is False
    assert set(gender) >= {"groups", "gap", "ratio", "p_value_uar"}
    assert gender["p_value_floor"] == pytest.approx(0.1) and gender["p_value_uar"] >= 0.09
    assert list(report["by"]["age_band"]["groups"]) == ["20-29", "40-49"]
    race = report["by"]["race"]["groups"]
    assert race["caucasian"]["speakers"] == 3 and race["asian"]["too_small"] is True
    ethnicity = report["by"]["ethnicity"]  # hispanic: 1 speaker (too small), not hispanic: 5
    assert ethnicity["compared"] == ["not hispanic"] and ethnicity["p_value_uar"] is None
    md = (out / "crema-d.md").read_text()
    assert "| female | 3 | 36 | 1.000 n/a (3 speakers)" in md  # never a zero-width interval
    for key in report["by"]:
        for kind in ("bars", "confusion"):
            assert (out / f"crema-d_{key}_{kind}.png").read_bytes()[:4] == b"\x89PNG"


def test_audit_evaluates_first_when_predictions_are_missing(tmp_path, monkeypatch):
    clips = _fake_cremad(tmp_path / "CREMA-D")
    run = tmp_path / "run"
    _fake_run(run, clips, predictions=False)
    calls = []

    def evaluate_run(run_dir, corpora):
        calls.append((str(run_dir), dict(corpora)))
        _write_predictions(run_dir / "predictions" / "crema-d.csv", clips)

    fake = types.ModuleType("emoshift.evaluation.evaluate")
    fake.evaluate_run = evaluate_run
    monkeypatch.setitem(sys.modules, "emoshift.evaluation.evaluate", fake)
    path = audit_run(
        run, "CREMA-D", str(tmp_path / "CREMA-D"), by=["gender"], n_resamples=50, n_permutations=50
    )
    assert calls == [(str(run), {"crema-d": str(tmp_path / "CREMA-D")})]
    assert path == run / "audit" / "crema-d.json" and path.is_file()


def test_cli_audit_errors_are_one_line(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["audit", str(tmp_path / "nope"), "--on", "crema-d=/x"])
    assert result.exit_code == 2
    assert "run directory not found" in result.output and "Traceback" not in result.output
    (tmp_path / "run").mkdir()
    result = runner.invoke(app, ["audit", str(tmp_path / "run"), "--on", "crema-d=/x", "--by", "he ight!"])
    assert result.exit_code == 2 and "unknown audit grouping" in result.output
    clips = _fake_cremad(tmp_path / "CREMA-D")
    _fake_run(tmp_path / "run2", clips)
    on = f"crema-d={tmp_path / 'CREMA-D'}"
    result = runner.invoke(app, ["audit", str(tmp_path / "run2"), "--on", on, "--resamples", "0"])
    assert result.exit_code == 2 and "n_resamples must be at least 1" in result.output
    result = runner.invoke(app, ["audit", str(tmp_path / "run"), "--on", "mystery=/x"])
    assert result.exit_code == 2 and "unknown corpus 'mystery'" in result.output


def test_metadata_columns_can_be_audited():
    """A manifest's extra column (accent) groups like gender; a column the corpus lacks is refused by name."""
    rng = np.random.default_rng(0)
    rows, demo = [], {}
    for s in range(8):
        accent = "north" if s % 2 else "south"
        for i in range(6):
            uid = f"m/{s}/{i}"
            true = ["angry", "sad"][i % 2]
            pred = true if (accent == "north" or rng.random() < 0.5) else ["angry", "sad"][1 - i % 2]
            rows.append({"id": uid, "speaker": f"m/{s}", "true": true, "pred": pred})
            demo[uid] = {"speaker": f"m/{s}", "gender": None, "accent": accent}
    report = audit_predictions(rows, demo, by=["accent"], n_resamples=50, n_permutations=50)
    section = report["by"]["accent"]
    assert section["available"] and set(section["groups"]) == {"north", "south"}
    assert section["groups"]["north"]["uar"] == 1.0
    with pytest.raises(AuditError, match="unknown audit grouping.*height.*accent"):
        audit_predictions(rows, demo, by=["height"], n_resamples=50, n_permutations=50)


def test_a_model_collapsed_to_one_class_is_called_out_in_the_audit():
    rows, demo = _rows_and_demographics(np.random.default_rng(0))
    for r in rows:
        r["pred"] = "sad"  # the demo's L4.9: one class for every clip
    report = audit_predictions(rows, demo, by=["gender"], labels=LABELS, n_resamples=50, n_permutations=50)
    assert report["overall"]["collapsed"] == {"label": "sad", "share": 1.0}
    assert report["by"]["gender"]["groups"]["male"]["collapsed"]["label"] == "sad"
    md = render_markdown(report)
    assert f"Collapsed model: it predicts 'sad' for all {len(rows)} utterances" in md
    working, _ = _rows_and_demographics(np.random.default_rng(0))
    assert "Collapsed" not in render_markdown(audit_predictions(working, demo, by=["gender"], labels=LABELS,
                                                               n_resamples=50, n_permutations=50))
