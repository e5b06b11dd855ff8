"""``emoshift tune`` on the tiny synthetic corpus: validation speakers only, resume, outputs, refusals, pruning."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from typer.testing import CliRunner

from emoshift.cli import app
from emoshift.config import load_config
from emoshift.core.io import read_csv
from emoshift.features.cache import FeatureCache
from emoshift.features.store import FeatureStore
from emoshift.models import family_of
from emoshift.training.tune import TuneError, objective_metric, resolve_storage, tune
from emoshift.training.tune_space import SpaceError, parse_param
from tests.conftest import tiny_overrides

SPACE = "training.lr: {low: 1.0e-3, high: 1.0e-2, log: true}\ntraining.batch_size: {choices: [8, 16]}\n"


class Touched:
    """Every utterance whose features are asked for (built or read), recorded in this process."""

    def __init__(self, mp: pytest.MonkeyPatch) -> None:
        self.speakers: set[str] = set()
        self.ids: set[str] = set()
        build, get = FeatureCache.build, FeatureStore.get

        def recording_build(cache: FeatureCache, corpus: str, utterances: Any, *a: Any, **k: Any) -> Any:
            utterances = list(utterances)
            self.speakers.update(u.speaker for u in utterances)
            self.ids.update(u.id for u in utterances)
            return build(cache, corpus, utterances, *a, **k)

        def recording_get(store: FeatureStore, utt_id: str) -> Any:
            self.ids.add(utt_id)
            return get(store, utt_id)

        mp.setattr(FeatureCache, "build", recording_build)
        mp.setattr(FeatureStore, "get", recording_get)


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study: Any, trial: Any) -> bool:
        return True


def tiny_cfg(root: Path, cache: Path, *extra: str) -> Any:
    return load_config(overrides=[*tiny_overrides(root, cache), "training.epochs=1", *extra])


@pytest.fixture(scope="module")
def tuned(synth_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two trials, then a rerun asking for three whose one new trial a stub pruner prunes at its first epoch;
    every feature read recorded."""
    tmp = tmp_path_factory.mktemp("tune")
    (tmp / "space.yaml").write_text(SPACE)
    cfg = tiny_cfg(synth_tiny, tmp / "cache", "training.epochs=2")
    with pytest.MonkeyPatch.context() as mp:
        touched = Touched(mp)
        first = tune(cfg, tmp / "space.yaml", tmp / "out", trials=2, progress=False)
        rows_first = read_csv(tmp / "out" / "trials.csv")
        second = tune(cfg, tmp / "space.yaml", tmp / "out", trials=3, progress=False, pruner=AlwaysPrune())
    return {"cfg": cfg, "out": tmp / "out", "touched": touched, "first": first, "second": second,
            "rows_first": rows_first, "tmp": tmp}


def split_speakers(out: Path) -> dict[str, set[str]]:
    parts: dict[str, set[str]] = {}
    for r in read_csv(out / "trials" / "0" / "splits" / "ravdess.csv"):
        parts.setdefault(r["split"], set()).add(r["speaker"])
    return parts


def test_never_reads_a_test_speaker(tuned: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    parts, touched = split_speakers(tuned["out"]), tuned["touched"]
    assert parts["test"] and not touched.speakers & parts["test"], touched.speakers & parts["test"]
    assert touched.speakers == parts["train"] | parts["val"]  # the recorder saw the data path
    test_ids = {r["id"] for r in read_csv(tuned["out"] / "trials" / "0" / "splits" / "ravdess.csv")
                if r["split"] == "test"}
    assert not touched.ids & test_ids
    # ... and it would have seen an evaluation: scoring the test speakers goes through the same recorder.
    from emoshift.corpora import scan_source

    cfg = tuned["cfg"]
    scan = scan_source("ravdess", cfg.data.roots["ravdess"], cfg.data.labels)
    utts = [u for u in scan.utterances if u.speaker in parts["test"]][:4]
    probe = Touched(monkeypatch)
    family = family_of(cfg.model.name, cfg.model.mode)
    from emoshift.core.record import ModelRecord

    record = ModelRecord.parse({"model": cfg.model.name, "labels": [str(i) for i in range(6)],
                                "features": cfg.features.model_dump()})
    family.outputs(family.build(cfg, num_labels=6), record, utts,
                  cache_dir=cfg.data.cache_dir, batch_size=4, device=torch.device("cpu"),
                  advance=lambda n: None, progress=False)
    assert probe.speakers & parts["test"]


def test_resumes_from_its_storage(tuned: dict[str, Any]) -> None:
    first, second = tuned["rows_first"], read_csv(tuned["out"] / "trials.csv")
    assert [r["number"] for r in first] == ["0", "1"]
    assert [r["number"] for r in second] == ["0", "1", "2"]  # exactly one new trial
    assert second[:2] == first  # the first two were not run again
    assert sorted(p.name for p in (tuned["out"] / "trials").iterdir()) == ["0", "1", "2"]
    assert sum(tuned["second"].counts.values()) == 3


def test_outputs(tuned: dict[str, Any]) -> None:
    out, result = tuned["out"], tuned["second"]
    rows = read_csv(out / "trials.csv")
    assert list(rows[0]) == ["number", "state", "value", "params", "duration"]
    done = [r for r in rows if r["state"] == "COMPLETE"]
    best = max(done, key=lambda r: float(r["value"]))
    assert result.best_trial == int(best["number"]) and result.metric == "val_uar" == objective_metric(tuned["cfg"])
    params = json.loads(best["params"])
    cfg = load_config(out / "best.yaml")  # emoshift's own loader
    assert cfg.training.lr == params["training.lr"] and cfg.training.batch_size == params["training.batch_size"]
    assert cfg.training.epochs == 2 and cfg.features.n_mels == 32  # the rest is the base config
    for r in done:  # the value is the trial's best validation UAR over its epochs (its log.csv)
        log = read_csv(out / "trials" / r["number"] / "log.csv")
        assert len(log) == 2 and float(r["value"]) == pytest.approx(max(float(x["val_uar"]) for x in log), abs=1e-6)
    assert (out / "plots" / "optimization_history.png").stat().st_size > 0
    assert len(done) == 2 and (out / "plots" / "param_importances.png").stat().st_size > 0
    assert result.command == f"emoshift train {out / 'best.yaml'} --corpus ravdess={cfg.data.roots['ravdess']} " \
                             f"--out {out / 'best-run'}"
    assert not any((out / "trials" / r["number"] / "checkpoints").exists() for r in rows)
    assert not (out / "trials" / "0" / "metrics").exists()  # no trial was evaluated


def test_pruned_trial_is_recorded(tuned: dict[str, Any]) -> None:
    rows = read_csv(tuned["out"] / "trials.csv")
    assert [r["state"] for r in rows] == ["COMPLETE", "COMPLETE", "PRUNED"]
    log = read_csv(tuned["out"] / "trials" / "2" / "log.csv")
    assert len(log) == 1  # stopped after its first of two epochs
    assert float(rows[2]["value"]) == pytest.approx(float(log[0]["val_uar"]), abs=1e-6)  # what it reported
    assert tuned["second"].counts == {"COMPLETE": 2, "PRUNED": 1} and tuned["second"].best_trial in (0, 1)


# ------------------------------------------------------------------------------------------------ refusals


def run_cli(root: Path, tmp: Path, space: str, *extra: str) -> Any:
    (tmp / "space.yaml").write_text(space)
    args = ["tune", "--space", str(tmp / "space.yaml"), "--trials", "2", "-o", str(tmp / "out"),
            "-c", f"ravdess={root / 'ravdess'}", "--set", f"data.cache_dir={tmp / 'cache'}", *extra]
    return CliRunner().invoke(app, args)


@pytest.mark.parametrize(
    ("space", "named"),
    [
        ("training.lrr: {low: 1.0e-4, high: 1.0e-2}\n", "'training.lrr'; did you mean 'training.lr'"),
        ("training.epochs: {low: 0, high: 3}\n", "training.epochs"),
        ("training.lr: {low: high, high: 1.0e-2}\n", "space key 'training.lr': low and high must be numbers"),
        ("training.schedule: {choices: [cosine, nope]}\n", "training.schedule"),
    ],
)
def test_bad_space_exits_2_naming_the_key(synth_tiny: Path, tmp_path: Path, space: str, named: str) -> None:
    result = run_cli(synth_tiny, tmp_path, space)
    assert result.exit_code == 2, result.output
    assert named in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "trials").exists()  # refused before any trial


def test_kfold_is_refused_with_the_fix(synth_tiny: Path, tmp_path: Path) -> None:
    result = run_cli(synth_tiny, tmp_path, SPACE, "--set", "data.split.method=kfold")
    assert result.exit_code == 2, result.output
    assert "every speaker is a test speaker of some fold" in result.output
    assert "data.split.fold=i" in result.output
    # a space that would switch to every fold is refused too, naming its key
    result = run_cli(synth_tiny, tmp_path, "data.split.method: {choices: [speaker, loso]}\n")
    assert result.exit_code == 2 and "data.split.method" in result.output and "data.split.fold" in result.output


def test_parallel_workers_need_a_shared_storage(tmp_path: Path) -> None:
    with pytest.raises(TuneError, match="--jobs 2 needs a database storage"):
        resolve_storage("memory", tmp_path, 2)
    assert resolve_storage("memory", tmp_path, 1) is None
    assert resolve_storage(None, tmp_path, 4) == f"sqlite:///{(tmp_path / 'tune.db').resolve()}"


@pytest.mark.parametrize(
    ("spec", "kind"),
    [({"low": 1, "high": 8}, "int"), ({"low": 1, "high": 8, "step": 0.5}, "float"),
     ({"low": 1.0e-4, "high": 1.0e-2, "log": True}, "float"), ({"choices": ["a", 2, None]}, "categorical")],
)
def test_space_kinds(spec: dict[str, Any], kind: str) -> None:
    assert parse_param("k.x", spec).kind == kind


@pytest.mark.parametrize(
    "spec",
    [{"low": 2, "high": 1}, {"low": 0.0, "high": 1.0, "log": True}, {"choices": []}, {"choices": [[1, 2]]},
     {"low": 1, "high": 4, "step": 1, "log": True}, {"low": 1}, {"low": 1, "high": 2, "scale": "x"}, [1, 2],
     {"low": True, "high": 3}, {"choices": [1, 1]}],
)
def test_bad_space_specs(spec: Any) -> None:
    with pytest.raises(SpaceError, match="space key 'k.x'"):
        parse_param("k.x", spec)


def test_cli_on_a_finished_study_runs_nothing_and_prints_the_final_command(tuned: dict[str, Any]) -> None:
    from emoshift.config import save_config

    tmp, out = tuned["tmp"], tuned["out"]
    save_config(tuned["cfg"], tmp / "base.yaml")
    before = read_csv(out / "trials.csv")
    result = CliRunner().invoke(app, ["tune", str(tmp / "base.yaml"), "--space", str(tmp / "space.yaml"),
                                      "--trials", "3", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert read_csv(out / "trials.csv") == before  # N finished already: no new trial
    assert f"emoshift train {out / 'best.yaml'} --corpus ravdess=" in result.output
    # the study remembers its space: another one is refused instead of mixing two searches
    (tmp / "other.yaml").write_text("training.lr: {low: 1.0e-4, high: 1.0e-2}\n")
    result = CliRunner().invoke(app, ["tune", str(tmp / "base.yaml"), "--space", str(tmp / "other.yaml"),
                                      "--trials", "3", "-o", str(out)])
    assert result.exit_code == 2 and "search of another search space" in result.output


def test_closed_form_trial_fits_on_training_speakers_and_scores_validation(
    synth_tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The acoustic head fits on training + validation speakers in `train`; a trial must hold the validation
    speakers out of the fit (they score it) and never compute a test speaker's functionals."""
    from emoshift.features.functionals import FunctionalCache
    from emoshift.models.acoustic import AcousticBaseline
    from emoshift.training.tune import fit_trial

    asked: set[str] = set()
    fitted: list[str] = []
    build, fit = FunctionalCache.build, AcousticBaseline.fit

    def recording_build(cache: Any, corpus: str, utterances: Any, *a: Any, **k: Any) -> Any:
        asked.update(u.speaker for u in utterances)
        return build(cache, corpus, utterances, *a, **k)

    def recording_fit(head: Any, x: Any, y: Any, speakers: Any, **options: Any) -> Any:
        fitted.extend(speakers)
        return fit(head, x, y, speakers, **options)

    monkeypatch.setattr(FunctionalCache, "build", recording_build)
    monkeypatch.setattr(AcousticBaseline, "fit", recording_fit)
    cfg = load_config(overrides=[*tiny_overrides(synth_tiny, tmp_path / "cache"), "model.name=egemaps",
                                 "model.head=logreg"])
    value = fit_trial(cfg, tmp_path / "trial", progress=False)
    parts: dict[str, set[str]] = {}
    for r in read_csv(tmp_path / "trial" / "splits" / "ravdess.csv"):
        parts.setdefault(r["split"], set()).add(r["speaker"])
    assert set(fitted) == parts["train"]
    assert asked == parts["train"] | parts["val"]
    assert 1 / 6 < value <= 1.0  # well above chance on the validation speakers


def test_closed_form_dimensional_trial_is_scored_by_validation_ccc(tmp_path: Path) -> None:
    """The acoustic Ridge head of a dimensional task: a trial is worth its mean CCC on the validation speakers
    (the ratings of the fake table follow pitch and loudness, so it is clearly above 0)."""
    from emoshift.training.tune import check_tunable, fit_trial
    from tests.corpora.fakes_rated import make_rated, rated_overrides

    table = make_rated(tmp_path / "rated")
    cfg = load_config(overrides=[*rated_overrides(table, tmp_path / "cache"), "model.name=egemaps"])
    check_tunable(cfg)  # a closed-form dimensional search is allowed
    value = fit_trial(cfg, tmp_path / "trial", progress=False)
    assert 0.2 < value <= 1.0
    # a neural dimensional trial is worth its best val_ccc (the module logs it per epoch in log.csv)
    cnn = load_config(overrides=[*rated_overrides(table, tmp_path / "cache"), "training.epochs=2"])
    value = fit_trial(cnn, tmp_path / "cnn", progress=False)
    logged = [float(r["val_ccc"]) for r in read_csv(tmp_path / "cnn" / "log.csv")]
    assert value == pytest.approx(max(logged), abs=1e-6)


@pytest.mark.parametrize("values", [[0.5, 0.5, 0.5], [0.4, 0.6, 0.5]], ids=["all-the-same", "different"])
def test_importance_plot_only_when_the_scores_differ(
    values: list[float], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from optuna.distributions import FloatDistribution
    from optuna.trial import create_trial

    from emoshift.training.tune import write_plots

    study = optuna.create_study(direction="maximize")
    for i, v in enumerate(values):
        study.add_trial(create_trial(params={"training.lr": 10.0 ** -(i + 2), "model.dropout": 0.1 * i},
                                     distributions={"training.lr": FloatDistribution(1e-5, 1e-1, log=True),
                                                    "model.dropout": FloatDistribution(0.0, 0.5)}, value=v))
    written = {p.name for p in write_plots(study, tmp_path, progress=True)}
    same = len(set(values)) == 1
    assert ("param_importances.png" in written) is not same
    assert "optimization_history.png" in written
    if same:  # it says why, instead of equal shares that read as importance
        assert "every complete trial scored the same (0.5), so there is no importance to show" in capsys.readouterr().err
