"""Experiment tracking (``tracking:``): MLflow runs read back through MlflowClient (params, per-epoch metric
history, final metrics equal to metrics/<corpus>.json, artefacts, git commit), one run per fold, a study's runs
tagged with their experiment ids, TensorBoard event files only when asked, an unreachable server in one line,
config typos named, and mlflow never imported by a run that does not track with it."""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from emoshift.config import ConfigError, load_config
from emoshift.core.io import read_csv
from emoshift.core.rundir import RunDir
from emoshift.training.tracking import MlflowTracker, final_metrics, flatten, git_commit
from emoshift.training.train import train
from tests.conftest import tiny_overrides

mlflow = pytest.importorskip("mlflow")


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty MLflow SQLite store: creating one costs seconds of fsyncs, so tests copy this one to
    the default location (``<run parent>/mlflow.db``) instead of each creating its own."""
    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


def _store_in(folder: Path, empty_store: Path) -> mlflow.MlflowClient:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(empty_store, folder / "mlflow.db")
    return mlflow.MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")


def _runs(client: mlflow.MlflowClient, experiment: str) -> list:
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no MLflow experiment {experiment!r}"
    return client.search_runs([exp.experiment_id])


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")  # log-mels and functionals computed once for the module's runs


def _acoustic(synth: Path, cache: Path, *extra: str) -> list[str]:
    return [*tiny_overrides(synth, cache), "model.name=egemaps", "model.head=logreg", *extra]


# --------------------------------------------------------------------------------------------------------
# config and helpers (no training)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("tracking.backnd=mlflow", "tracking.backnd"),
        ("tracking.backend=wandb", "tracking.backend"),
        ("tracking.uri=http://localhost:5000", "tracking.uri is for the mlflow and tensorboard backends"),
    ],
)
def test_a_tracking_typo_names_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(overrides=[override])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_tracking_never_changes_the_fingerprint() -> None:
    plain = load_config()
    tracked = load_config(overrides=["tracking.backend=mlflow", "tracking.tags.team=ser"])
    assert plain.fingerprint(exclude_roots=True) == tracked.fingerprint(exclude_roots=True)


def test_flatten_and_final_metrics() -> None:
    assert flatten({"a": {"b": 1, "c": [1, 2], "d": {}}, "e": None}) == {
        "a.b": "1",
        "a.c": "[1, 2]",
        "a.d": "{}",
        "e": "None",
    }
    m = {
        "uar": 0.5,
        "n": 10,
        "leaky": False,
        "labels": ["a"],
        "ci95": {"uar": [0.4, 0.6], "accuracy": None},
        "fold_mean": {"uar": 0.45},
        "confusion": [[1]],
    }
    assert final_metrics(m, "c/") == {
        "c/uar": 0.5,
        "c/n": 10.0,
        "c/uar_ci95_lo": 0.4,
        "c/uar_ci95_hi": 0.6,
        "c/fold_mean/uar": 0.45,
    }
    assert final_metrics({"uar": 0.5, "ci95": None}, "") == {"uar": 0.5}  # a null interval logs nothing


def test_a_resumed_run_logs_into_the_same_mlflow_run(tmp_path: Path, empty_store: Path) -> None:
    client = _store_in(tmp_path, empty_store)
    run = RunDir.of(tmp_path / "run")
    run.path.mkdir()
    cfg = load_config(overrides=["tracking.backend=mlflow", "data.roots.ravdess=/a"])
    first = MlflowTracker.open(cfg, run)
    first.end("KILLED")
    moved = load_config(overrides=["tracking.backend=mlflow", "data.roots.ravdess=/b"])  # roots may move
    again = MlflowTracker.open(moved, run)
    assert again.run_id == first.run_id and len(_runs(client, "experiment")) == 1
    assert client.get_run(again.run_id).info.status == "RUNNING"
    assert client.get_run(again.run_id).data.params["data.roots.ravdess"] == "/a"  # kept, not refused


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_server_is_one_line_and_exit_2(tmp_path: Path) -> None:
    from emoshift.cli import app

    uri = f"http://127.0.0.1:{_free_port()}"
    sets = [f"tracking.uri={uri}", "tracking.backend=mlflow", f"data.roots.ravdess={tmp_path}"]
    args = ["train", "-o", str(tmp_path / "run"), *[a for s in sets for a in ("--set", s)]]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and uri in lines[0] and "cannot be used" in lines[0], result.output
    assert "Traceback" not in result.output


def test_mlflow_is_imported_only_by_the_mlflow_backend(tmp_path: Path) -> None:
    code = (
        "import sys, emoshift\n"
        "from emoshift.config import load_config\n"
        "from emoshift.core.rundir import RunDir\n"
        "from emoshift.training.tracking import start_tracking\n"
        "import emoshift.training.train, emoshift.training.fit\n"
        "for backend in ('csv', 'tensorboard'):\n"
        f"    t = start_tracking(load_config(overrides=['tracking.backend=' + backend]), RunDir.of({str(tmp_path)!r}))\n"
        "    t.loggers(); t.end()\n"
        "assert 'mlflow' not in sys.modules, 'mlflow was imported'\n"
    )
    # a real process that has imported nothing of mlflow: forked from the kill tests' server, which imported the
    # training stack (and would hold mlflow too, were any of it importing mlflow) once per worker
    from tests.crash.forked import Forked

    child = Forked([sys.executable, "-c", code], dict(os.environ))
    assert child.wait(timeout=120) == 0, child.stderr.read().decode()[-3000:]


# --------------------------------------------------------------------------------------------------------
# a CNN run tracked by MLflow (per-epoch metrics through Lightning's logger)

EPOCHS = 2


@pytest.fixture(scope="module")
def mlflow_run(
    synth_tiny: Path, cache: Path, empty_store: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str]:
    parent = tmp_path_factory.mktemp("tracked") / "runs"
    _store_in(parent, empty_store)
    sets = [
        *tiny_overrides(synth_tiny, cache),
        f"training.epochs={EPOCHS}",
        "evaluation.corpora=[crema-d]",  # every CREMA-D speaker: an interval; RAVDESS's few test speakers: none
        "tracking.backend=mlflow",
        "tracking.tags.team=ser",
        "name=tiny-cnn",
        "evaluation.figures=true",  # the figures are artefacts of the MLflow run
    ]
    run = train(load_config(overrides=sets), parent / "cnn", progress=False)
    return run, f"sqlite:///{parent / 'mlflow.db'}"


def test_mlflow_run_holds_config_epochs_metrics_artefacts(
    mlflow_run: tuple[Path, str], synth_tiny: Path
) -> None:
    run, uri = mlflow_run
    client = mlflow.MlflowClient(uri)
    runs = _runs(client, "tiny-cnn")
    assert len(runs) == 1
    r = runs[0]
    assert r.info.status == "FINISHED"
    assert r.data.params["training.epochs"] == str(EPOCHS)
    assert r.data.params["data.roots.ravdess"] == str(synth_tiny / "ravdess")
    assert r.data.params["model.width_mult"] == "0.125"
    assert r.data.tags["team"] == "ser"
    commit = git_commit()
    assert r.data.tags.get("mlflow.source.git.commit") == commit  # absent outside a git checkout

    log = read_csv(run / "log.csv")  # still written, as without tracking
    history = client.get_metric_history(r.info.run_id, "val_uar")
    assert len(history) == EPOCHS == len(log)
    assert [h.value for h in history] == pytest.approx([float(row["val_uar"]) for row in log], abs=1e-5)

    for corpus in ("ravdess", "crema-d"):
        m = json.loads((run / "metrics" / f"{corpus}.json").read_text())
        assert r.data.metrics[f"{corpus}/uar"] == pytest.approx(m["uar"], abs=1e-12)
        assert r.data.metrics[f"{corpus}/accuracy"] == pytest.approx(m["accuracy"], abs=1e-12)
        if m["ci95"] is None:
            assert f"{corpus}/uar_ci95_lo" not in r.data.metrics
        else:
            lo, hi = m["ci95"]["uar"]
            assert r.data.metrics[f"{corpus}/uar_ci95_lo"] == pytest.approx(lo, abs=1e-12)
            assert r.data.metrics[f"{corpus}/uar_ci95_hi"] == pytest.approx(hi, abs=1e-12)
    assert any(f"{c}/uar_ci95_lo" in r.data.metrics for c in ("ravdess", "crema-d"))

    top = {a.path for a in client.list_artifacts(r.info.run_id)}
    plots = {a.path for a in client.list_artifacts(r.info.run_id, "plots")}
    assert {"README.md", "config.yaml"} <= top
    assert {"plots/curves.png", "plots/confusion_ravdess.png"} <= plots
    local = Path(
        mlflow.artifacts.download_artifacts(run_id=r.info.run_id, artifact_path="README.md", tracking_uri=uri)
    )
    assert local.read_text() == (run / "README.md").read_text()
    assert (run.parent / "mlartifacts").is_dir()  # the local store keeps artefacts beside it
    assert not (run / "tensorboard").exists()


def test_tensorboard_backend_writes_event_files(synth_tiny: Path, cache: Path, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sets = [
        *tiny_overrides(synth_tiny, cache),  # the log-mels the MLflow run cached
        "training.epochs=1",
        "tracking.backend=tensorboard",
    ]
    run = train(load_config(overrides=sets), tmp_path / "runs" / "tb", progress=False)
    events = list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert events and (run / "log.csv").is_file()
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    assert len(acc.Scalars("val_uar")) == 1  # one epoch
    assert not (tmp_path / "runs" / "mlflow.db").exists()


def test_csv_default_writes_no_event_files_and_no_store(cnn_run: Path) -> None:
    assert load_config(cnn_run / "config.yaml").tracking.backend == "csv"
    assert (cnn_run / "log.csv").is_file()
    assert not list(cnn_run.rglob("events.out.tfevents.*")) and not (cnn_run / "tensorboard").exists()
    assert not (cnn_run.parent / "mlflow.db").exists() and not (cnn_run / "tracking.json").exists()


# --------------------------------------------------------------------------------------------------------
# folds and studies (the acoustic family: scikit-learn, no Lightning; seconds)


def test_kfold_logs_one_run_per_fold_under_the_pooled_run(
    synth_tiny: Path, cache: Path, empty_store: Path, tmp_path: Path
) -> None:
    client = _store_in(tmp_path / "runs", empty_store)
    sets = _acoustic(
        synth_tiny, cache, "data.split.method=kfold", "data.split.k=2", "tracking.backend=mlflow"
    )
    run = train(load_config(overrides=sets), tmp_path / "runs" / "cv", progress=False)
    runs = _runs(client, "experiment")
    pooled = [r for r in runs if "emoshift.fold" not in r.data.tags]
    folds = {r.data.tags["emoshift.fold"]: r for r in runs if "emoshift.fold" in r.data.tags}
    assert len(pooled) == 1 and sorted(folds) == ["0", "1"]
    for i, r in folds.items():
        assert r.data.tags["mlflow.parentRunId"] == pooled[0].info.run_id
        assert r.data.params["data.split.fold"] == i and r.data.params["model.name"] == "egemaps"
        m = json.loads((run / "folds" / i / "metrics" / "ravdess.json").read_text())
        assert r.data.metrics["ravdess/uar"] == pytest.approx(m["uar"], abs=1e-12)
        assert "README.md" in {a.path for a in client.list_artifacts(r.info.run_id)}
        assert r.info.status == "FINISHED"
    m = json.loads((run / "metrics" / "ravdess.json").read_text())
    assert pooled[0].data.metrics["ravdess/fold_mean/uar"] == pytest.approx(m["fold_mean"]["uar"], abs=1e-12)
    assert pooled[0].data.metrics["ravdess/uar"] == pytest.approx(m["uar"], abs=1e-12)
    assert not math.isnan(pooled[0].data.metrics["ravdess/uar"])


def test_a_study_logs_every_experiment_and_fold_tagged_with_its_id(
    synth_tiny: Path, cache: Path, empty_store: Path, tmp_path: Path
) -> None:
    from emoshift.study import load_study
    from emoshift.study.runner import run_study

    def experiment(eid: str, config: dict) -> dict:
        return {
            "id": eid,
            "title": eid,
            "architecture": "eGeMAPS",
            "data_strategy": "RAVDESS",
            "config": config,
        }

    study_file = tmp_path / "s.yaml"
    study_file.write_text(
        yaml.safe_dump(
            {
                "title": "tracked",
                "description": "two acoustic experiments",
                "defaults": {
                    "model": {"name": "egemaps", "head": "logreg"},
                    "data": {"corpora": ["ravdess"]},
                },
                "experiments": [
                    experiment("A", {"data": {"split": {"method": "kfold", "k": 2}}}),
                    experiment("B", {"model": {"speaker_norm": True}}),
                ],
            }
        )
    )
    out = tmp_path / "study-out"
    client = _store_in(out, empty_store)  # the study's default store: OUT/mlflow.db
    sets = [
        s for s in _acoustic(synth_tiny, cache, "tracking.backend=mlflow") if not s.startswith("data.roots")
    ]
    study = load_study(study_file, roots={"ravdess": str(synth_tiny / "ravdess")}, overrides=sets)
    assert run_study(study, out, progress=False).ok
    runs = _runs(client, "study-out")  # one experiment: the output folder's name
    tagged = sorted(
        (r.data.tags["emoshift.experiment_id"], r.data.tags.get("emoshift.fold", "")) for r in runs
    )
    assert tagged == [("A", ""), ("A", "0"), ("A", "1"), ("B", "")]
    b = next(r for r in runs if r.data.tags["emoshift.experiment_id"] == "B")
    m = json.loads((out / "runs" / "B" / "metrics" / "ravdess.json").read_text())
    assert b.data.metrics["ravdess/uar"] == pytest.approx(m["uar"], abs=1e-12)
    assert not (out / "runs" / "mlflow.db").exists()
    # a second pass skips the complete runs: no new MLflow runs
    assert run_study(study, out, progress=False).ok
    assert len(_runs(client, "study-out")) == 4
