"""ExperimentConfig: YAML + --set, errors that name the key, a stable fingerprint, save/load round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from emoshift.config import ConfigError, ExperimentConfig, load_config, save_config
from emoshift.models import CONFIG_CHECKS, check_config, family_of

YAML = """\
name: cfg-test
data:
  corpora: [ravdess, cremad]
  roots: {ravdess: /data/R}
training:
  epochs: 7
  lr: 0.01
  augment: {specaugment: true}
"""


def _write(tmp_path: Path, text: str = YAML) -> Path:
    p = tmp_path / "exp.yaml"
    p.write_text(text)
    return p


def test_yaml_then_set_overrides(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path), ["training.lr=3e-4", "data.roots.crema-d=/data/C", "model.dropout=0"])
    assert cfg.name == "cfg-test"
    assert cfg.data.corpora == ["ravdess", "crema-d"]  # aliases resolved to registry names
    assert cfg.data.roots == {"ravdess": "/data/R", "crema-d": "/data/C"}
    assert (cfg.training.epochs, cfg.training.lr, cfg.model.dropout) == (7, 3e-4, 0.0)
    assert cfg.training.augment.specaugment is True
    assert cfg.training.augment.freq_masks == 2  # defaults fill what the YAML leaves out
    assert load_config(_write(tmp_path), ["training.epochs=9"]).training.epochs == 9  # --set wins


def test_base_layer_under_the_yaml(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path), base={"training": {"epochs": 2, "batch_size": 4}})
    assert (cfg.training.epochs, cfg.training.batch_size) == (7, 4)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["training.lr_schedule=cosine"], "unknown config key 'training.lr_schedule'; did you mean 'training.schedule'?"),
        (["trainer.device=2"], "unknown config key 'trainer.device'; did you mean 'trainer.devices'?"),
        (["modle.name=resnet18"], "unknown config key 'modle'; did you mean 'model'?"),
        (["training.epochs=many"], "training.epochs: Input should be a valid integer"),
        (["training.epochs=0"], "training.epochs: Input should be greater than or equal to 1 (got 0)"),
        (["training.schedule=linear"], "training.schedule: Input should be 'onecycle', 'cosine'"),
        (["model.name=resnet19"], "unknown model 'resnet19' (did you mean 'resnet18'?)"),
        (["training"], "--set expects key.path=value, got 'training'"),
        (["training.lr.x=1"], "training.lr: Input should be a valid number"),
        (["name=x", "name.first=a"], "--set name.first=a: 'name' is a value, not a section"),
    ],
)
def test_errors_name_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(overrides=overrides, checks=CONFIG_CHECKS)  # as `emoshift train` loads it
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.name=resnet19"], "model.name: unknown model 'resnet19' (did you mean 'resnet18'?)"),
        (["model.name=hubert", "model.mode=frozen", "model.pooling=attentive"], "model: model.pooling=attentive"),
        (["model.name=resnet18", "training.epochs=2", "training.stages=[{epochs: 2, train: all}]"],
         "training.stages (multi-stage fine-tuning) applies to SSL models"),
    ],
)
def test_registry_checks_run_when_a_config_is_loaded_for_use(overrides: list[str], message: str) -> None:
    """The schema knows no model code: the registry's checks run with CONFIG_CHECKS (the CLI, tune, the study
    file) and in ``check_config`` (what ``train`` runs first), not in a plain load (the audit, the report)."""
    cfg = load_config(overrides=overrides)  # no model code consulted
    with pytest.raises(ConfigError) as loaded:
        load_config(overrides=overrides, checks=CONFIG_CHECKS)
    with pytest.raises(ConfigError) as checked:
        check_config(cfg)
    assert message in str(loaded.value) and message in str(checked.value)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "training: [1\n"))
    with pytest.raises(ConfigError, match="expected a mapping at the top level"):
        load_config(_write(tmp_path, "- a\n- b\n"))


def test_fingerprint_is_stable_and_ignores_only_what_it_should(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path))
    assert cfg.fingerprint() == load_config(_write(tmp_path)).fingerprint()
    assert len(cfg.fingerprint()) == 16
    # the same settings written in another order / by --set give the same fingerprint
    same = load_config(overrides=["training.augment.specaugment=true", "training.lr=0.01", "training.epochs=7",
                                  "data.roots.ravdess=/data/R", "data.corpora=[ravdess, crema-d]", "name=other"])
    assert same.fingerprint() == cfg.fingerprint()  # the name is not part of it
    quiet = load_config(_write(tmp_path), ["trainer.progress=false"])
    assert quiet.fingerprint() == cfg.fingerprint()  # nor is showing progress
    assert load_config(_write(tmp_path), ["training.lr=0.02"]).fingerprint() != cfg.fingerprint()
    moved = load_config(_write(tmp_path), ["data.roots.ravdess=/elsewhere", "data.cache_dir=/c"])
    assert moved.fingerprint() != cfg.fingerprint()
    assert moved.fingerprint(exclude_roots=True) == cfg.fingerprint(exclude_roots=True)


def test_save_load_round_trip(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path), ["training.stages=[]", "evaluation.corpora=[tess]"])
    path = tmp_path / "run" / "config.yaml"
    save_config(cfg, path)
    back = load_config(path)
    assert back == cfg and back.fingerprint() == cfg.fingerprint()
    assert isinstance(back, ExperimentConfig)
    assert [p.name for p in path.parent.iterdir()] == ["config.yaml"]


RECIPES = sorted((Path(__file__).resolve().parents[1] / "configs" / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.stem for p in RECIPES])
def test_shipped_recipes_load_with_only_corpus_roots(recipe: Path, tmp_path: Path) -> None:
    """Every recipe in configs/recipes/ is a valid training config (keys current, its family accepts it)."""
    cfg = load_config(recipe, [f"data.roots.ravdess={tmp_path}"])
    assert family_of(cfg.model.name, cfg.model.mode) is not None and cfg.data.split.method == "kfold"


# --------------------------------------------------------------------------------------------------------
# keys that do not apply (issue 24): not in config.yaml, not in the run's identity


def test_config_yaml_holds_only_the_keys_that_apply(tmp_path: Path) -> None:
    import yaml

    cnn = load_config(overrides=["model.name=resnet18", "model.width_mult=0.25"])
    assert {"model.head", "training.loss", "data.targets"} <= set(cnn.unused_keys())
    save_config(cnn, tmp_path / "cnn.yaml")
    text = (tmp_path / "cnn.yaml").read_text()
    data = yaml.safe_load(text)
    assert "head" not in data["model"] and "loss" not in data["training"] and "targets" not in data["data"]
    assert data["model"]["width_mult"] == 0.25  # what applies stays
    assert text.startswith("# not written, they do not apply to this run (resnet18, categorical): ")
    assert "model.head" in text.splitlines()[0] and "training.loss" in text.splitlines()[0]
    assert load_config(tmp_path / "cnn.yaml").fingerprint() == cnn.fingerprint()
    # a dimensional run reads training.loss; an acoustic baseline reads no training options at all
    dim = load_config(overrides=["task=dimensional"])
    assert "training.loss" not in dim.unused_keys()
    acoustic = load_config(overrides=["model.name=egemaps"])
    save_config(acoustic, tmp_path / "egemaps.yaml")
    data = yaml.safe_load((tmp_path / "egemaps.yaml").read_text())
    assert "training" not in data and "width_mult" not in data["model"] and data["model"]["head"] == "svm"
    assert set(data["features"]) == {"sample_rate", "trim_silence", "trim_top_db"}


@pytest.mark.parametrize(
    ("model", "key", "applies"),
    [
        ("egemaps", "model.width_mult=0.25", False),  # the study's eGeMAPS phase under a global --set
        ("egemaps", "training.epochs=3", False),
        ("egemaps", "features.n_mels=32", False),
        ("egemaps", "model.head=logreg", True),
        ("resnet18", "model.width_mult=0.25", True),
        ("resnet18", "model.head=logreg", False),
        ("resnet18", "training.loss=mse", False),
        ("hubert", "model.width_mult=0.25", False),
        ("hubert", "model.pooling=stats", True),
    ],
)
def test_a_key_that_does_not_apply_does_not_change_the_runs_identity(model: str, key: str, applies: bool) -> None:
    base = load_config(overrides=[f"model.name={model}"])
    changed = load_config(overrides=[f"model.name={model}", key])
    assert (changed.fingerprint() != base.fingerprint()) is applies


def test_fingerprint_of_a_config_with_default_unused_keys_is_unchanged() -> None:
    """Runs trained before unused keys were ignored keep their identity (nothing is retrained on upgrade)."""
    import hashlib
    import json

    cfg = load_config(overrides=["model.width_mult=0.125", "training.epochs=3"])
    d = cfg.to_dict()
    d.pop("name")
    d.pop("tracking")
    d["trainer"].pop("progress")
    d["data"]["split"].pop("disjoint")  # issue 20: its default is left out, so configs from before hash the same
    assert d["training"].pop("seeds") is None  # added later (repeated training): one run hashes as before it
    assert d["training"].pop("dann") is None and d["data"].pop("unlabelled") == {}  # issue 21: likewise
    assert d["model"].pop("domain_norm") == "none" and d["evaluation"].pop("adapt") == "none"  # issue 21, likewise
    assert d["evaluation"].pop("figures") is True  # issue 23: whether figures are drawn is never part of it
    assert cfg.fingerprint() == hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def test_the_study_keeps_a_run_when_only_a_key_that_does_not_apply_changed(tmp_path: Path) -> None:
    from emoshift.core.io import atomic_write_json
    from emoshift.core.rundir import RunDir
    from emoshift.study.plan import _training_state

    trained = load_config(overrides=["model.name=egemaps"])
    run = RunDir.of(tmp_path / "runs" / "L1")
    save_config(trained, run.config)
    atomic_write_json(run.done, {"fingerprint": trained.fingerprint(exclude_roots=True), "seconds": 1.0,
                                 "finished": "2026-01-01T00:00:00+00:00"})
    again = load_config(overrides=["model.name=egemaps", "model.width_mult=0.25"])  # a global --set
    assert _training_state(run, again, None)[0] == "complete"
    other = load_config(overrides=["model.name=egemaps", "model.head=logreg"])
    assert _training_state(run, other, None) == ("stale", "its config changed")
