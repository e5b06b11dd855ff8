"""The study: configs/study.yaml resolution and errors (fast), then `emoshift study` end to end on the synthetic
tiny corpus (slow: every phase trains for one epoch at tiny widths)."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from emoshift.cli import app
from emoshift.models import family_of, list_models
from emoshift.study import StudyError, fit_stages, load_study, run_dir
from tests.study import studies
from tests.study.studies import CONFIG

PHASES = ["L0", "L0b", "L2", "L2b", "L2c", "L3", "L4.3", "L4.5", "L4.6", "L4.7", "L4.9"]

# configs/study.yaml's first phases (L0, L0b) are the eGeMAPS + SVM baseline: the file only loads where the
# acoustic family registers the model `egemaps` (issue 10, section 2)
pytestmark = pytest.mark.skipif(
    "egemaps" not in list_models(),
    reason="model 'egemaps' (the acoustic baseline family) is not registered: configs/study.yaml's L0 phases need it",
)
RESULT_COLUMNS = [
    "experiment",
    "corpus",
    "accuracy",
    "accuracy_lo",
    "accuracy_hi",
    "uar",
    "uar_lo",
    "uar_hi",
    "n",
    "leaky",
    "uar_fold_sd",
    "speakers",
    "folds",
    "seeds",
    "uar_seed_mean",
    "uar_seed_sd",
]


# --------------------------------------------------------------------------------------------------------
# Resolution (no training)


@pytest.fixture()
def roots(tmp_path: Path) -> dict[str, str]:
    out = {}
    for corpus in ("ravdess", "crema-d"):
        (tmp_path / "corpora" / corpus).mkdir(parents=True)
        out[corpus] = str(tmp_path / "corpora" / corpus)
    return out


def test_study_file_names_every_phase_with_the_studys_numbers(roots: dict[str, str]) -> None:
    for profile in (None, "demo", "paper"):
        study = load_study(CONFIG, profile=profile, roots=roots)
        assert study.ids == PHASES
    reported = {e.id: e.spec.reported_accuracy for e in study.experiments if e.spec.reported_accuracy}
    assert reported == {
        "L2": {"ravdess": 80.56, "crema-d": 22.39},
        "L4.5": {"ravdess": 99.73, "crema-d": 62.71},
        "L4.9": {"ravdess": 45.86, "crema-d": 44.71},
    }
    for e in study.experiments:
        assert e.spec.title and e.spec.architecture and e.spec.data_strategy


def test_baseline_phases_and_kfold_everywhere(roots: dict[str, str]) -> None:
    """L0/L0b: eGeMAPS + SVM on RAVDESS and on both corpora; every training phase uses speaker k-fold CV
    (all folds pooled): in the paper profile 6 folds on RAVDESS (4 actors a fold) and 5 on CREMA-D, 2 in the
    demo (6 of the synthetic corpus's 12 RAVDESS actors a fold)."""
    per_corpus = {"ravdess": 6, "crema-d": 5}
    for profile, k in ((None, per_corpus), ("paper", per_corpus), ("demo", 2)):
        study = load_study(CONFIG, profile=profile, roots=roots)
        l0, l0b = study.experiment("L0").config, study.experiment("L0b").config
        assert (l0.model.name, l0.model.head, l0.data.corpora) == ("egemaps", "svm", ["ravdess"])
        assert (l0b.model.name, l0b.model.head, l0b.data.corpora) == (
            "egemaps",
            "svm",
            ["ravdess", "crema-d"],
        )
        for e in study.experiments:
            if e.config is not None:
                split = e.config.data.split
                assert (split.method, split.k, split.fold) == ("kfold", k, None), e.id


def test_the_studys_claims_are_stated(roots: dict[str, str]) -> None:
    findings = load_study(CONFIG, roots=roots).findings
    assert findings.margin == 0.02 and findings.baselines == ["L0", "L0b"] and findings.correction == "holm"
    claims = {(c.kind, c.a, c.b, tuple(c.corpora)) for c in findings.claims}
    assert claims == {
        ("drop", "L2", None, ("ravdess", "crema-d")),
        ("better", "L4.3", "L2", ("crema-d",)),
        ("better", "L4.5", "L4.6", ()),
        ("not_better", "L4.7", "L4.5", ()),
        ("better", "L4.5", "L4.9", ()),
        ("noninferior", "L2c", "L2b", ("crema-d",)),
    }


def test_phases_resolve_to_the_studys_design(roots: dict[str, str]) -> None:
    study = load_study(CONFIG, profile="paper", roots=roots)
    cfg = {e.id: e.config for e in study.experiments}
    assert cfg["L2"].data.corpora == ["ravdess"] and cfg["L2"].model.name == "resnet18"
    aug = cfg["L2b"].training.augment
    assert aug.specaugment and aug.bandlimit_p > 0 and aug.noise_p > 0
    assert cfg["L2c"].training.distill.teacher == "L2b" and study.experiment("L2c").depends == ("L2b",)
    assert cfg["L3"] is None and study.experiment("L3").depends == ("L2",)
    assert set(study.experiment("L3").audit.by) == {"gender", "age_band", "race", "ethnicity"}
    assert cfg["L4.3"].data.corpora == ["ravdess", "crema-d"]
    champion = cfg["L4.5"].training
    assert (champion.sampling, champion.schedule, champion.augment.specaugment) == (
        "class_corpus",
        "onecycle",
        True,
    )
    # the ablations are the champion with one thing changed
    assert cfg["L4.6"].training.sampling == "none" and cfg["L4.6"].training.schedule == "onecycle"
    assert cfg["L4.7"].model.name == "efficientnet_b0" and cfg["L4.7"].training.sampling == "class_corpus"
    hubert = cfg["L4.9"]
    assert hubert.model.name == "hubert" and hubert.model.pretrained == "facebook/hubert-base-ls960"
    assert [s.train for s in hubert.training.stages] == ["head", "top", "all"]
    assert hubert.training.stages[-1].layer_decay < 1.0
    assert cfg["L2"].features.n_mels == 128 and cfg["L2"].features.crop_s == 3.0
    assert cfg["L2"].model.pretrained is None  # the study's CNNs are trained from scratch
    assert all(c.data.roots == {k: roots[k] for k in c.data.corpora} for c in cfg.values() if c)


def test_demo_profile_is_small(roots: dict[str, str]) -> None:
    study = load_study(CONFIG, profile="demo", roots=roots)
    for e in study.experiments:
        if e.config is None:
            continue
        assert e.config.training.epochs <= 4
        if family_of(e.config.model.name, e.config.model.mode).input_kind == "spectrogram":
            assert e.config.model.width_mult <= 0.25 and e.config.features.n_mels == 64
        elif family_of(e.config.model.name, e.config.model.mode).input_kind == "waveform":
            assert e.config.model.preset == "tiny"
    assert study.experiment("L2c").config.model.width_mult < study.experiment("L2b").config.model.width_mult


def test_a_profile_sets_training_seeds_and_new_seeds_extend_a_finished_run(roots: dict[str, str], tmp_path: Path) -> None:
    """``training.seeds`` is a profile key like any other; a finished run whose seeds change only is resumed
    (its seed runs reused: training/seeds.py), not moved aside; any other change still retrains."""
    from emoshift.config import save_config
    from emoshift.core.io import atomic_write_json
    from emoshift.study.plan import plan_training

    data = yaml.safe_load(CONFIG.read_text())
    data["profiles"]["seeded"] = {**data["profiles"]["demo"], "defaults": {
        **data["profiles"]["demo"]["defaults"], "training": {**data["profiles"]["demo"]["defaults"]["training"],
                                                             "seeds": [0, 1]}}}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    study = load_study(path, profile="seeded", roots=roots)
    # the phases the demo profile sets no seeds for (L2 sets its own, L2b/L2c/L3 theirs or L2's)
    phase4 = [e for e in study.experiments if e.id.startswith("L4.")]
    assert phase4 and all(e.config.training.seeds == [0, 1] for e in phase4)
    out = tmp_path / "out"
    run = Path(run_dir(out, "L4.5"))
    cfg = study.run_config("L4.5", out)
    run.mkdir(parents=True)
    save_config(cfg, run / "config.yaml")
    atomic_write_json(run / "done.json", {"fingerprint": cfg.fingerprint(exclude_roots=True)})

    class Log:
        def note(self, text: str) -> None:
            pass

    for sets, status in ((["training.seeds=[0,1,2]"], "resumed"), (["training.lr=0.5"], "retrained")):
        again = load_study(path, profile="seeded", roots=roots, overrides=sets)
        plan = plan_training(again, again.experiment("L4.5"), out, Log())
        assert plan.status == status, sets
    assert plan.cfg.training.seeds == [0, 1]


def test_overrides_apply_to_every_experiment_or_one(roots: dict[str, str]) -> None:
    study = load_study(
        CONFIG, profile="demo", roots=roots, overrides=["training.lr=0.01", "L4.5:training.batch_size=7"]
    )
    assert all(e.config.training.lr == 0.01 for e in study.experiments if e.config)
    assert study.experiment("L4.5").config.training.batch_size == 7
    assert (
        study.experiment("L4.6").config.training.batch_size == 32
    )  # extends L4.5's file overlay, not its --set
    assert study.experiment("L4.5").config.name == "L4.5"


def test_later_epochs_fit_the_stage_schedule(roots: dict[str, str]) -> None:
    study = load_study(CONFIG, profile="paper", roots=roots, overrides=["training.epochs=5"])
    hubert = study.experiment("L4.9")
    assert [(s.train, s.epochs) for s in hubert.config.training.stages] == [("head", 2), ("top", 3)]
    assert "fitted" in hubert.notes[0]
    assert fit_stages([{"epochs": 2, "train": "head"}, {"epochs": 3, "train": "all"}], 9)[-1]["epochs"] == 7
    assert fit_stages([{"epochs": 2, "train": "head"}, {"epochs": 3, "train": "all"}], 1) == [
        {"epochs": 1, "train": "head"}
    ]


def test_teacher_id_becomes_a_run_directory(roots: dict[str, str], tmp_path: Path) -> None:
    study = load_study(CONFIG, profile="demo", roots=roots)
    cfg = study.run_config("L2c", tmp_path / "out")
    assert cfg.training.distill.teacher == str(tmp_path / "out" / "runs" / "L2b")
    assert run_dir(tmp_path / "out", "L2b") == tmp_path / "out" / "runs" / "L2b"


def test_only_adds_dependencies_in_run_order(roots: dict[str, str]) -> None:
    study = load_study(CONFIG, roots=roots)
    assert study.select(["L2c"]) == ["L2b", "L2c"]
    assert study.select(["L3", "L4.5"]) == ["L2", "L3", "L4.5"]
    assert study.select(None) == PHASES


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _experiment(eid: str, **extra: object) -> dict:
    return {"id": eid, "title": eid, "architecture": "ResNet18", "data_strategy": "x", **extra}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"profile": "fast"}, "unknown profile 'fast'; "),
        ({"only": ["L9"]}, "--only: unknown experiment 'L9'"),
        ({"roots": "ravdess-only"}, "experiment L0b trains on crema-d but no root was given"),
        ({"roots": "missing-folder"}, "folder not found"),
        ({"roots": "unknown-corpus"}, "unknown corpus 'nosuch'"),
        ({"overrides": ["L9:training.lr=1"]}, "unknown experiment 'L9'"),
        ({"overrides": ["training.lrr=1"]}, "did you mean 'training.lr'?"),
        ({"overrides": ["L3:training.lr=1"]}, "trains nothing"),
        ({"overrides": ["L2c:training.distill.teacher=nowhere"]}, "neither an experiment id"),
    ],
)
def test_load_study_errors_are_one_line(
    roots: dict[str, str], tmp_path: Path, kwargs: dict, message: str
) -> None:
    chosen = {
        "ravdess-only": {"ravdess": roots["ravdess"]},
        "missing-folder": {**roots, "crema-d": str(tmp_path / "nope")},
        "unknown-corpus": {**roots, "nosuch": roots["ravdess"]},
    }.get(kwargs.pop("roots", ""), roots)
    with pytest.raises(StudyError) as err:
        load_study(CONFIG, roots=chosen, **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_only_checks_roots_of_the_selection(roots: dict[str, str]) -> None:
    study = load_study(CONFIG, roots={"ravdess": roots["ravdess"]}, only=["L2c", "L3"])
    assert study.select(study.only) == ["L2", "L2b", "L2c", "L3"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"experiments": [_experiment("A", confg={})]},
            "unknown config key 'experiments.0.confg'; did you mean",
        ),
        ({"experiments": [_experiment("A"), _experiment("A")]}, "experiment id(s) used twice: A"),
        ({"experiments": [_experiment("A", extends="B")]}, "extends 'B', which is not a training experiment"),
        ({"experiments": [_experiment("A", audit_of="A", config={"x": 1})]}, "trains nothing: drop config"),
        (  # an adaptation: another experiment's run adapted instead of training (emoshift.study.adapting)
            {"experiments": [_experiment("A"), _experiment("B", adapt_of="A", config={"x": 1},
                                                           adapt={"method": "adabn", "corpus": "crema-d"})]},
            "adapts A's run and trains nothing: drop config",
        ),
        ({"experiments": [_experiment("B", adapt_of="Z", adapt={"method": "adabn", "corpus": "crema-d"})]},
         "adapts 'Z', which is not a training experiment"),
        ({"experiments": [_experiment("A"), _experiment("B", adapt_of="A")]}, "adapt_of (the run to adapt) and adapt"),
        ({"experiments": [_experiment("A"), _experiment("B", adapt_of="A", adapt={"method": "few-shot",
                                                                                 "corpus": "crema-d"})]},
         "few-shot needs labelled_speakers"),
        ({"experiments": [_experiment("A"), _experiment("B", adapt_of="A", adapt={"method": "adabn",
                                                                                 "corpus": "ravdess"})]},
         "A trained on ravdess: adapt it to another corpus"),
        ({"experiments": [_experiment("a/b")]}, "names a folder"),
        ({"experiments": [_experiment("A", reported_accuracy={"ravdess": 180})]}, "percentage"),
        (
            {"experiments": [_experiment("A", config={"training": {"epoch": 3}})]},
            "did you mean 'training.epochs'?",
        ),
        ({"experiments": [_experiment("A", extends="B"), _experiment("B", extends="A")]}, "'extends' loops"),
        ({"experiments": []}, "the study has no experiments"),
        (  # a dimensional phase is refused up front: the report compares emotion classes
            {"experiments": [_experiment("A", config={"task": "dimensional"})]},
            "experiment A: task: dimensional is not supported in a study",
        ),
        (
            {"profiles": {"p": {"experiments": {"Z": {}}}}, "experiments": [_experiment("A")]},
            "unknown experiment(s) Z",
        ),
    ],
)
def test_study_file_errors(roots: dict[str, str], tmp_path: Path, data: dict, message: str) -> None:
    with pytest.raises(StudyError) as err:
        load_study(_write(tmp_path, data), roots=roots)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_cli_errors_exit_2_with_one_line(roots: dict[str, str], tmp_path: Path) -> None:
    base = ["study", str(CONFIG), "--corpus", f"ravdess={roots['ravdess']}", "-o", str(tmp_path / "o")]
    for extra, message in (
        (["--only", "L9"], "unknown experiment 'L9'"),
        (["--profile", "huge"], "unknown profile 'huge'"),
        ([], "trains on crema-d but no root was given"),
        (["--corpus", "ravdess"], "--corpus expects NAME=ROOT"),
    ):
        result = CliRunner().invoke(app, base + extra)
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------------------------------------
# End to end on the synthetic corpus


def _fold_weights(run: Path, fold: int) -> Path:
    """A fold's weights in a study run: RUN/folds/<i>/, or the first seed's in a repeated-training run."""
    seeded = run / "seeds" / "0" / "folds" / str(fold) / "model.safetensors"
    return seeded if (run / "seeds").is_dir() else run / "folds" / str(fold) / "model.safetensors"


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "results.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == RESULT_COLUMNS
        return list(reader)


@pytest.mark.slow
def test_full_study_runs_every_phase_and_reports_it(full_study: tuple[Path, str, float]) -> None:
    out, output, _ = full_study
    for eid in PHASES:
        done = json.loads((out / "runs" / eid / "done.json").read_text())
        assert done["seconds"] >= 0
    for eid in PHASES:
        if eid != "L3":  # k-fold CV: one model per fold, RUN/model.json names the ensemble
            assert _fold_weights(out / "runs" / eid, 1).is_file()
            assert (out / "runs" / eid / "model.json").is_file()
            clean = {p.stem for p in (out / "runs" / eid / "metrics").glob("*.json") if "@" not in p.stem}
            assert clean == {"ravdess", "crema-d"}  # beside them <corpus>@<perturbation>.json (robustness)
    assert json.loads((out / "runs" / "L2" / "metrics" / "ravdess.json").read_text())["n_seeds"] == 2
    assert json.loads((out / "runs" / "L2" / "metrics" / "ravdess@telephone.json").read_text())["n_seeds"] == 2
    for corpus in ("ravdess", "crema-d"):
        audit = json.loads((out / "runs" / "L3" / "audit" / f"{corpus}.json").read_text())
        assert audit["by"]["gender"]["available"]
    # progress: index/total, elapsed and ETA
    assert "[1/11] L0" in output and "[11/11] L4.9" in output and "ETA" in output
    assert "Key results" in output and "report.html" in output

    rows = _rows(out)
    assert [(r["experiment"], r["corpus"]) for r in rows] == [
        (e, c) for e in PHASES for c in ("ravdess", "crema-d")
    ]
    for r in rows:
        assert int(r["n"]) > 0 and r["leaky"] == "false"
        metrics_json = out / "runs" / r["experiment"] / "metrics" / f"{r['corpus']}.json"
        if metrics_json.is_file():  # an interval only where at least 5 speakers carry it
            m = json.loads(metrics_json.read_text())
            assert (m["ci95"] is None) == (m["speakers"] < 5), (r["experiment"], r["corpus"], m["speakers"])
        if r["uar_lo"] == "":  # no interval: null together, never a zero-width one
            assert r["accuracy_lo"] == r["accuracy_hi"] == r["uar_hi"] == ""
            continue
        assert 0 <= float(r["accuracy_lo"]) <= float(r["accuracy"]) <= float(r["accuracy_hi"]) <= 1
        assert 0 <= float(r["uar_lo"]) <= float(r["uar"]) <= float(r["uar_hi"]) <= 1
    by = {(r["experiment"], r["corpus"]): r for r in rows}
    assert {k: v for k, v in by["L3", "crema-d"].items() if k != "experiment"} == {
        k: v for k, v in by["L2", "crema-d"].items() if k != "experiment"
    }
    # in-domain scores pool the out-of-fold predictions of both folds: every actor scored once
    assert (by["L2", "ravdess"]["folds"], by["L2", "ravdess"]["speakers"]) == ("2", "8")
    assert by["L4.3", "crema-d"]["speakers"] == "8" and by["L4.3", "crema-d"]["uar_fold_sd"] != ""

    with open(out / "findings.csv", newline="") as f:
        findings = list(csv.DictReader(f))
    claims = {r["claim"] for r in findings}
    assert (
        "Balancing beats no balancing" in claims and "The specialist drops from RAVDESS to CREMA-D" in claims
    )
    assert all(r["verdict"] in ("supported", "contradicted", "inconclusive", "no verdict") for r in findings)
    hubert = [r for r in findings if "L4.9" in (r["a"], r["b"])]
    assert hubert and all(r["verdict"] == "no verdict" and "random-init" in r["reason"] for r in hubert)
    baseline = {(r["a"], r["b"]) for r in findings if "acoustic baseline" in r["claim"]}
    assert ("L2", "L0") in baseline and ("L4.5", "L0b") in baseline
    # pooled k-fold predictions cover the same utterances in every run: each comparison pairs all of them
    balancing = next(
        r for r in findings if r["claim"] == "Balancing beats no balancing" and r["corpus"] == "ravdess"
    )
    assert balancing["n"] == by["L4.5", "ravdess"]["n"] and "paired on the" not in balancing["reason"]

    md = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    for eid in PHASES:
        assert f"| {eid} |" in md and f"<td>{eid}</td>" in page
    for text in (
        "RAVDESS",
        "CREMA-D",
        "random utterance split, likely leaky",
        "p-value",
        "## Findings",
        "## Environment",
    ):
        assert text in md
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) >= 9 * 2 and all(i.startswith("data:image/png;base64,") for i in images)
    # L2b's confusions are its own figures; the report drew those of the runs that drew none
    assert (out / "runs" / "L2b" / "plots" / "confusion_crema-d.png").is_file()
    assert not (out / "runs" / "L4.3" / "plots").exists()
    drawn = {p.name for p in (out / "plots").glob("confusion_*.png")}
    assert "confusion_L4.3_crema-d.png" in drawn and not any(n.startswith("confusion_L2b_") for n in drawn)


@pytest.mark.slow
def test_second_run_skips_complete_experiments(
    full_study: tuple[Path, str, float], tiny_corpus: dict[str, str]
) -> None:
    out, _, _ = full_study
    weights = {
        e: _fold_weights(out / "runs" / e, 0).stat().st_mtime_ns
        for e in PHASES
        if e != "L3"
    }
    dones = {e: (out / "runs" / e / "done.json").stat().st_mtime_ns for e in PHASES}
    code, output, _ = studies.run(tiny_corpus, out)
    assert code == 0, output
    assert (
        output.count("complete with the same") == 11
    )  # skipped: nothing trained, evaluated or audited again
    assert {e: (out / "runs" / e / "done.json").stat().st_mtime_ns for e in PHASES} == dones
    assert {
        e: _fold_weights(out / "runs" / e, 0).stat().st_mtime_ns for e in weights
    } == weights
    assert len(_rows(out)) == 22


@pytest.mark.slow
def test_changed_config_moves_the_stale_run_aside(
    full_study: tuple[Path, str, float], tiny_corpus: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(full_study[0], out)
    old = json.loads((out / "runs" / "L2" / "done.json").read_text())
    changed = ["--set", "L2:training.lr=0.01", "--set", "L2:training.seeds=null"]  # one seed: half the retraining
    code, output, _ = studies.run(tiny_corpus, out, "--only", "L2", *changed)
    assert code == 0, output
    assert "moved to" in output
    (stale,) = (out / "stale").glob("L2-*")
    assert json.loads((stale / "done.json").read_text()) == old
    new = json.loads((out / "runs" / "L2" / "done.json").read_text())
    assert new["fingerprint"] != old["fingerprint"]
    assert yaml.safe_load((out / "runs" / "L2" / "config.yaml").read_text())["training"]["lr"] == 0.01
    # the audit of L2 (L3) is now stale too: it is redone against the retrained model
    code, output, _ = studies.run(tiny_corpus, out, "--only", "L3", *changed)
    assert code == 0, output
    assert "L3 audited" in output and list((out / "stale").glob("L3-*"))
    assert output.count("complete with the same") == 1


@pytest.mark.slow
def test_a_failing_experiment_does_not_stop_the_others(
    full_study: tuple[Path, str, float], tiny_corpus: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(full_study[0], out)
    bad = ["--set", "L4.3:model.pretrained=/nonexistent/weights", "--set", "L4.3:model.width_mult=1.0"]
    code, output, _ = studies.run(tiny_corpus, out, *bad)
    assert code == 1
    assert "L4.3 failed" in output and "failed: L4.3" in output
    assert output.count("complete with the same") == 10  # every other experiment was still handled
    md = (out / "report.md").read_text()
    assert "## Errors" in md and "/nonexistent/weights" in md and "errors/L4.3.txt" in md
    assert (out / "errors" / "L4.3.txt").read_text().startswith("Traceback")
    assert "L4.3" not in {r["experiment"] for r in _rows(out)} and len(_rows(out)) == 20
