"""One typed experiment schema: data, features, model, training, trainer, evaluation, tracking.

Configs are data (YAML) validated by pydantic; objects are built from them in Python, never by class path.
``load_config(path, overrides=["training.lr=3e-4"])`` merges a YAML file with ``--set`` overrides; an unknown key
raises :class:`ConfigError` naming the key and the closest valid one.

This schema knows no model code (and imports no torch): what the model registry checks (a known model name,
what its family can build and do) is :class:`ConfigChecks`, which the code that loads a config for use passes
in (``load_config(..., checks=emoshift.models.CONFIG_CHECKS)``); the checks then run inside validation, so
their errors read as every other config error.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from emoshift.config.augment import AugmentConfig
from emoshift.config.dann import UNLABELLED_HELP, DannConfig, Unlabelled, check_dann
from emoshift.config.features import FeatureConfig
from emoshift.config.split import SplitConfig, corpus_key
from emoshift.config.targets import SoftTargets
from emoshift.core.io import atomic_write_text
from emoshift.core.overrides import ConfigError, apply_overrides, explain, read_yaml
from emoshift.core.rundir import RunDir, RunError
from emoshift.core.task import Task, task_named
from emoshift.corpora import CorpusError, list_corpora, resolve_name


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ConfigChecks(Protocol):
    """What the model registry checks in a config (:data:`emoshift.models.CONFIG_CHECKS`): one-line ValueErrors."""

    def check_name(self, name: str) -> None:
        """``model.name`` is a registered model."""

    def check_model(self, model: ModelConfig) -> None:
        """The model's family can build ``model`` (e.g. not frozen + attentive pooling)."""

    def check_config(self, cfg: ExperimentConfig) -> None:
        """The model's family can do what ``cfg`` asks (e.g. no multi-stage fine-tuning of a CNN)."""


def _checks(info: ValidationInfo) -> ConfigChecks | None:
    """The registry's checks given to this validation (``build_config(..., checks=)``), if any."""
    return (info.context or {}).get("checks")


def default_cache_dir() -> str:
    return os.environ.get("EMOSHIFT_CACHE", str(Path.home() / ".cache" / "emoshift"))


class ManifestConfig(Strict):
    """How to read a corpus given as a table (``--corpus NAME=table.csv``)."""

    columns: dict[str, str] = Field(
        default_factory=dict, description="emoshift field -> the table's column, e.g. {path: file, speaker: spk}"
    )
    scale: tuple[float, float] | None = Field(
        None, description="the native scale of the table's arousal/valence/dominance ratings, e.g. [1, 5]"
    )

    @field_validator("scale")
    @classmethod
    def _scale_ordered(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and not v[0] < v[1]:
            raise ValueError(f"data.manifest.scale must be [low, high] with low < high, got {list(v)}")
        return v


class DataConfig(Strict):
    # roots before corpora: pydantic validates fields in order, so the corpora check sees the validated roots
    # (a name outside the registry is a corpus of your own when its root is a manifest table)
    roots: dict[str, str] = Field(
        default_factory=dict,
        description="corpus name -> root folder; or a corpus of your own: a .csv/.jsonl manifest table, "
        "hf:PATH (a Hugging Face dataset on disk), lhotse:PATH (lhotse manifests), audformat:PATH (a database)",
    )
    corpora: list[str] = Field(default_factory=lambda: ["ravdess"], description="training corpora")
    labels: Literal["six", "calm-as-neutral", "four", "native"] = "six"
    split: SplitConfig = Field(default_factory=lambda: SplitConfig())
    include_song: bool = False
    cache_dir: str = Field(default_factory=default_cache_dir)
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes")
    manifest: ManifestConfig = Field(default_factory=lambda: ManifestConfig())
    label_map: dict[str, str] = Field(
        default_factory=dict, description="a manifest's labels -> emoshift emotions, e.g. {ang: angry, exc: happy}"
    )
    labels_from: Literal["acted", "voice"] = Field(
        "acted", description="CREMA-D: acted intent, or the crowd's majority for the voice alone"
    )
    targets: list[Literal["arousal", "valence", "dominance"]] = Field(
        default_factory=lambda: ["arousal", "valence", "dominance"],  # type: ignore[arg-type]
        description="task dimensional: the ratings the model predicts, in this order",
    )
    target_range: tuple[float, float] = Field(
        (0.0, 1.0), description="task dimensional: every corpus's ratings are rescaled to this [low, high]"
    )
    unlabelled: Unlabelled = Field(default_factory=dict, description=UNLABELLED_HELP)  # config/dann.py

    @field_validator("targets")
    @classmethod
    def _targets_distinct(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("data.targets needs at least one of arousal, valence, dominance")
        if len(set(v)) != len(v):
            raise ValueError(f"data.targets names a target twice: {v}")
        return v

    @field_validator("target_range")
    @classmethod
    def _range_ordered(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not v[0] < v[1]:
            raise ValueError(f"data.target_range must be [low, high] with low < high, got {list(v)}")
        return v

    def scan_options(self) -> dict[str, Any]:
        """The keyword options every scan of a corpus takes from this config (``corpora.scan_source`` drops
        those a loader does not use): one place, so training and evaluation scan a corpus the same way."""
        return {
            "include_song": self.include_song,
            "labels_from": self.labels_from,
            "columns": self.manifest.columns,
            "label_map": self.label_map,
            "allow_leak": self.split.allow_leak,
            "cache_dir": self.cache_dir,  # a Hugging Face dataset's audio bytes are extracted under it
        }

    @field_validator("roots")
    @classmethod
    def _known_roots(cls, v: dict[str, str]) -> dict[str, str]:
        """Canonical names; a name outside the registry needs a manifest table as its root."""
        roots = {corpus_key(k): str(r) for k, r in v.items()}
        for name, root in roots.items():
            _check_corpus_name(name, root)
        return roots

    @field_validator("corpora")
    @classmethod
    def _known_corpora(cls, v: list[str], info: ValidationInfo) -> list[str]:
        if not v:
            raise ValueError("data.corpora needs at least one training corpus")
        names = [corpus_key(c) for c in v]
        if "roots" in info.data:  # else data.roots is itself wrong, and named as such
            for name in names:
                _check_corpus_name(name, info.data["roots"].get(name))
        return names

    @model_validator(mode="after")
    def _fold_counts_name_corpora(self) -> DataConfig:
        """A per-corpus ``split.k`` names registered or training corpora, and (kfold) every training corpus.

        Corpora named but not trained on are allowed: one profile (``k: {ravdess: 6, crema-d: 5}``) serves the
        experiments on RAVDESS alone and on both corpora."""
        k = self.split.k
        if not isinstance(k, dict):
            return self
        unknown = [c for c in k if c not in self.corpora and c not in list_corpora()]
        if unknown:
            raise ValueError(
                f"data.split.k names {unknown[0]!r}, which is neither a training corpus "
                f"({', '.join(self.corpora)}) nor a known corpus ({', '.join(list_corpora())})"
            )
        missing = [c for c in self.corpora if c not in k]
        if missing and self.split.method == "kfold":
            raise ValueError(
                f"data.split.k gives no fold count for training corpus {missing[0]!r} "
                f"(one per training corpus, e.g. k: {{{', '.join(f'{c}: 5' for c in self.corpora)}}}, or one number)"
            )
        return self


def _check_corpus_name(name: str, root: str | None) -> None:
    """ValueError unless ``name`` is a registered corpus or a corpus of your own with a manifest ``root``."""
    if name in list_corpora():
        return
    try:
        resolve_name(name, root)
    except KeyError as e:
        hint = f" (or a corpus of your own: --corpus {name}=/path/to/manifest.csv, or hf:, lhotse:, audformat:PATH)"
        raise ValueError(str(e).strip("'\"") + hint) from None
    except CorpusError as e:
        raise ValueError(str(e)) from None


class ModelConfig(Strict):
    name: str = "resnet18"
    pretrained: str | None = Field(None, description="Hugging Face id or local folder")
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    width_mult: float = Field(1.0, gt=0.0, description="CNN channel multiplier (1.0 = the published width)")
    # self-supervised encoders (hubert / ssl)
    mode: Literal["frozen", "finetune"] = "finetune"
    preset: Literal["tiny", "base"] | None = None
    pooling: Literal["mean", "stats", "attentive"] = Field(
        "mean", description="mean; stats = mean and std; attentive = attentive statistics (finetune only)"
    )
    layer_sum: bool = False
    head_hidden: int = Field(256, ge=1)
    # acoustic baselines (egemaps / compare)
    head: Literal["svm", "logreg"] = Field(
        "svm", description="acoustic baselines: calibrated linear SVM, or logistic regression"
    )
    speaker_norm: bool = Field(
        False,
        description="z-score each speaker's inputs with their own statistics (acoustic baselines: functionals; "
        "CNNs: log-mels per mel bin; a clip of an unknown speaker uses the training speakers')",
    )
    domain_norm: Literal["none", "corpus"] = Field("none", description="corpus: each corpus's inputs standardised "
                                                   "with its own statistics, from its audio alone (docs/adaptation.md)")

    @field_validator("name")
    @classmethod
    def _known_model(cls, v: str, info: ValidationInfo) -> str:
        if (checks := _checks(info)) is not None:
            checks.check_name(v)
        return v

    @model_validator(mode="after")
    def _family_accepts(self, info: ValidationInfo) -> ModelConfig:
        if (checks := _checks(info)) is not None:
            checks.check_model(self)  # what this family cannot build (e.g. frozen + attentive)
        return self


class StageConfig(Strict):
    """One stage of multi-stage fine-tuning of an SSL encoder."""

    epochs: int = Field(..., ge=1)
    train: Literal["head", "top", "all"]
    top_k: int | None = Field(None, ge=1, description="transformer layers trained in a 'top' stage")
    layer_decay: float = Field(1.0, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _top_needs_k(self) -> StageConfig:
        if self.train == "top" and self.top_k is None:
            raise ValueError("a stage with train: top needs top_k (how many transformer layers to train)")
        return self


class DistillConfig(Strict):
    teacher: str = Field(..., description="run directory of the teacher model")
    temperature: float = Field(4.0, gt=0.0)
    alpha: float = Field(0.5, ge=0.0, le=1.0, description="weight of the hard-label cross-entropy")


class TrainingConfig(Strict, SoftTargets):  # training.targets, training.soft_mix: config.targets
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0.0, description="head / CNN learning rate")
    encoder_lr: float = Field(5e-5, gt=0.0, description="SSL encoder learning rate (fine-tuning)")
    weight_decay: float = Field(1e-2, ge=0.0)
    schedule: Literal["onecycle", "cosine", "plateau", "constant"] = "cosine"
    warmup_epochs: float = Field(1.0, ge=0.0, description="linear warm-up for the cosine schedule")
    sampling: Literal["none", "class", "class_corpus"] = "none"
    class_weighted_loss: bool = False
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    loss: Literal["ccc", "mse"] = Field(
        "ccc", description="task dimensional: 1 - CCC averaged over targets (the standard), or mean squared error"
    )
    augment: AugmentConfig = Field(default_factory=lambda: AugmentConfig())
    early_stopping_patience: int | None = Field(10, ge=1)
    gradient_clip: float | None = Field(1.0, gt=0.0)
    seed: int = 0
    seeds: list[int] | None = Field(
        None,
        description="train the whole run (every fold) once per seed into RUN/seeds/<s>/ and report the mean over "
        "seeds; None: one run with training.seed",
    )
    stages: list[StageConfig] = Field(default_factory=list, description="SSL multi-stage fine-tuning")
    distill: DistillConfig | None = None
    dann: DannConfig | None = Field(None, description="domain-adversarial training (DANN): docs/dann.md")
    max_batch_seconds: float = Field(120.0, gt=0.0, description="cap on padded audio per batch (SSL)")

    @model_validator(mode="before")
    @classmethod
    def _one_seed_is_a_seed(cls, data: Any) -> Any:
        """``seeds: [s]`` is one run with ``seed: s`` (the same directory layout, fingerprint and metrics)."""
        seeds = data.get("seeds") if isinstance(data, dict) else None
        if isinstance(seeds, list) and len(seeds) == 1 and isinstance(seeds[0], int) and not isinstance(seeds[0], bool):
            data = {**data, "seed": seeds[0], "seeds": None}  # anything else is left for the field to name
        return data

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, v: list[int] | None) -> list[int] | None:
        for bad, why in ((v == [], "is empty: give the seeds to train, or leave it out for one run"),
                         (v and len(set(v)) != len(v), f"repeats a seed: {v}"),
                         (v and min(v) < 0, f"must be non-negative: {v}")):
            if bad:
                raise ValueError(f"training.seeds {why}")
        return v

    @property
    def seed_list(self) -> list[int]:
        """The seeds this config trains: ``seeds``, or ``[seed]``."""
        return list(self.seeds) if self.seeds else [self.seed]

    @model_validator(mode="after")
    def _stages_fit(self) -> TrainingConfig:
        if self.stages and sum(s.epochs for s in self.stages) != self.epochs:
            total = sum(s.epochs for s in self.stages)
            raise ValueError(f"training.stages last {total} epochs in all but training.epochs is {self.epochs}")
        return self


class TrainerConfig(Strict):
    """Passed to Lightning's Trainer: DDP is ``devices: 2, strategy: ddp`` (torchrun/SLURM for multi-node)."""

    accelerator: str = "auto"
    devices: int | str = 1
    strategy: str = "auto"
    num_nodes: int = Field(1, ge=1)
    precision: str = Field("auto", description="auto = 32-true on CPU, bf16-mixed/16-mixed on GPU")
    deterministic: bool = True
    progress: bool = True


class EvaluationConfig(Strict):
    # extra corpora to test on (every utterance), canonical names: checked against data.roots by ExperimentConfig
    corpora: Annotated[list[str], AfterValidator(lambda v: [corpus_key(c) for c in v])] = Field(default_factory=list)
    n_bootstrap: int = Field(1000, ge=0)
    seed: int = 0
    batch_size: int = Field(64, ge=1)
    calibrate: Literal["none", "temperature"] = "none"
    target_accuracy: float = Field(0.9, gt=0, le=1)  # in-domain accuracy the abstention threshold keeps
    adapt: Literal["none", "adabn"] = Field("none", description="adabn: batch-norm statistics re-estimated on each "
                                            "evaluated corpus's audio, never its labels (the CNNs)")
    figures: bool = Field(True, description="draw the run's figures (RUN/plots/: confusion, calibration, curves, "
                          "robustness); false writes the metrics and predictions only (a sweep, a smoke test)")


class TrackingConfig(Strict):
    """Where a run's parameters, metrics and artefacts go besides the run directory (RUN/log.csv is always
    written): ``csv`` nothing more, ``tensorboard`` event files, ``mlflow`` an MLflow run
    (:mod:`emoshift.training.tracking`). Changing it never changes the config's fingerprint."""

    backend: Literal["csv", "tensorboard", "mlflow"] = "csv"
    uri: str | None = Field(
        None,
        description="mlflow: a tracking URI (a server, sqlite:///path.db), default "
        "sqlite:///<run parent>/mlflow.db; tensorboard: the log folder, default RUN/tensorboard",
    )
    experiment: str | None = Field(None, description="the MLflow experiment (default: the config's name)")
    tags: dict[str, str] = Field(default_factory=dict, description="tags on every tracked run")

    @model_validator(mode="after")
    def _uri_needs_a_backend(self) -> TrackingConfig:
        if self.backend == "csv" and self.uri:
            raise ValueError("tracking.uri is for the mlflow and tensorboard backends, not csv")
        return self


# Options that only mean something for emotion classes: a dimensional run refuses them (one line, naming the key).
CATEGORICAL_ONLY: dict[str, str] = {
    "training.sampling": "class-balanced sampling needs emotion classes; use training.sampling=none",
    "training.class_weighted_loss": "class weights need emotion classes",
    "training.label_smoothing": "label smoothing applies to class labels",
    "training.distill": "distillation learns from a teacher's class logits",
    "evaluation.calibrate": "temperature scaling rescales class logits; use evaluation.calibrate=none",
}


# Options that only mean something for a dimensional run: a categorical run does not read them.
DIMENSIONAL_ONLY: frozenset[str] = frozenset({"training.loss", "data.targets", "data.target_range"})


class ExperimentConfig(Strict):
    name: str = "experiment"
    task: Literal["categorical", "dimensional"] = Field(
        "categorical", description="categorical: emotion classes; dimensional: arousal/valence/dominance ratings"
    )
    data: DataConfig = Field(default_factory=lambda: DataConfig())
    features: FeatureConfig = Field(default_factory=lambda: FeatureConfig())
    model: ModelConfig = Field(default_factory=lambda: ModelConfig())
    training: TrainingConfig = Field(default_factory=lambda: TrainingConfig())
    trainer: TrainerConfig = Field(default_factory=lambda: TrainerConfig())
    evaluation: EvaluationConfig = Field(default_factory=lambda: EvaluationConfig())
    tracking: TrackingConfig = Field(default_factory=lambda: TrackingConfig())

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> ExperimentConfig:
        if task_named(self.task).rated:
            t = self.training
            used = {
                "training.sampling": t.sampling != "none",
                "training.class_weighted_loss": t.class_weighted_loss,
                "training.label_smoothing": t.label_smoothing > 0,
                "training.distill": t.distill is not None, "evaluation.calibrate": self.evaluation.calibrate != "none",
            }
            for key, why in CATEGORICAL_ONLY.items():
                if used[key]:
                    raise ValueError(f"{key} cannot be used with task: dimensional ({why})")
            if self.training.seeds:
                raise ValueError(
                    "training.seeds cannot be used with task: dimensional yet (repeated training pools classes: "
                    "train one run per training.seed instead)"
                )
        check_dann(self.training.dann, self.data.corpora, self.data.unlabelled, self.training.augment.mixup_alpha)
        for name in self.evaluation.corpora:
            try:
                _check_corpus_name(name, self.data.roots.get(name))
            except ValueError as e:
                raise ValueError(f"evaluation.corpora: {e}") from None
        if (checks := _checks(info)) is not None:
            checks.check_config(self)  # what this model's family cannot do with this config
        return self

    @property
    def task_kind(self) -> Task:
        """What the run learns (:mod:`emoshift.core.task`): the one place that answers by task."""
        return task_named(self.task)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def unused_keys(self) -> list[str]:
        """The dotted keys that do not apply to this config: those its model family does not read
        (:meth:`Family.unused`) and the dimensional-only options of a categorical run. RUN/config.yaml leaves
        them out (naming them in a comment) and :meth:`fingerprint` ignores them."""
        keys = set(_family_unused(self)) if _family_unused is not None else set()
        if not self.task_kind.rated:
            keys |= DIMENSIONAL_ONLY
        if self.training.seeds:  # the protocol, not the model: kept even where a family reads no training key
            if "training" in keys:
                keys = (keys - {"training"}) | {f"training.{f}" for f in TrainingConfig.model_fields if f != "seeds"}
            keys.add("training.seed")  # every seed of training.seeds trains; training.seed is not read
        return sorted(k for k in keys if not any(k.startswith(f"{s}.") for s in keys))  # a section says it all

    def applied_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` without the :meth:`unused_keys` (what RUN/config.yaml holds)."""
        d = self.to_dict()
        for key in self.unused_keys():
            *parents, last = key.split(".")
            section = d
            for part in parents:  # a key under a section already left out whole: nothing left to drop
                section = section.get(part, {})
            section.pop(last, None)
        return d

    def fingerprint(self, *, exclude_roots: bool = False) -> str:
        """Stable hash of the resolved config (the study skips experiments whose fingerprint is unchanged).

        A key that does not apply (:meth:`unused_keys`) counts at its default value, so changing it changes
        nothing, and a config whose unused keys hold their defaults hashes as it always did."""
        d = _with_defaults(self.to_dict(), self.unused_keys())
        d.pop("name", None)
        d.pop("tracking", None)  # where a run is logged is not what it trains
        d["evaluation"].pop("figures", None)  # nor whether its figures are drawn
        d["trainer"].pop("progress", None)
        for part, key, default in ((d["training"], "seeds", None), (d["data"]["split"], "disjoint", ["speaker"]),
                                   (d["training"], "dann", None), (d["data"], "unlabelled", {}),
                                   (d["model"], "domain_norm", "none"), (d["evaluation"], "adapt", "none")):
            part.pop(key) if part.get(key) == default else None  # added later: at their defaults, hash as before
        if exclude_roots:
            d["data"].pop("roots", None)
            d["data"].pop("cache_dir", None)
            if "unlabelled" in d["data"]:  # where the target audio lies is not what trains: its names are
                d["data"]["unlabelled"] = sorted(d["data"]["unlabelled"])
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def recipe_fingerprint(self) -> str:
        """:meth:`fingerprint` (roots excluded) of what each seed trains, whatever the seeds: two repeated-training
        configs with the same recipe fingerprint differ in ``training.seeds`` only, so a run of one is extended to
        the other's seeds (its seed runs reused) rather than retrained."""
        d = self.to_dict()
        d["training"]["seed"], d["training"]["seeds"] = 0, None
        return build_config(d).fingerprint(exclude_roots=True)


# The model registry's answer to "which keys does this config's family not read" (Family.unused): set by
# emoshift.models when it is imported (this schema imports no model code); until then only the task's keys.
_family_unused: Callable[[ExperimentConfig], frozenset[str]] | None = None


def set_family_unused(fn: Callable[[ExperimentConfig], frozenset[str]]) -> None:
    """Called once by :mod:`emoshift.models`: how a config's model family names the keys it does not read."""
    global _family_unused
    _family_unused = fn


@functools.cache
def _defaults() -> dict[str, Any]:
    return ExperimentConfig().to_dict()


def _with_defaults(d: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """``d`` with each dotted key of ``keys`` set to its default value (in place; returned)."""
    for key in keys:
        *parents, last = key.split(".")
        section, default = d, _defaults()
        for part in parents:
            section, default = section[part], default[part]
        section[last] = copy.deepcopy(default[last])
    return d


# ---------------------------------------------------------------------------------------------------------
# loading, overrides and friendly errors (the parser and the formatter are emoshift.core.overrides')


def merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``overlay`` onto ``base`` (dicts merge, everything else replaces)."""
    out = copy.deepcopy(base)
    for k, v in overlay.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def build_config(data: dict[str, Any], *, checks: ConfigChecks | None = None) -> ExperimentConfig:
    """``data`` validated as an :class:`ExperimentConfig` (ConfigError in one line), with the model registry's
    ``checks`` when the config is loaded for use (see the module docstring)."""
    try:
        return ExperimentConfig.model_validate(data, context={"checks": checks} if checks is not None else None)
    except ValidationError as e:
        raise ConfigError(explain(e, ExperimentConfig)) from None


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: list[str] | None = None,
    *,
    base: dict[str, Any] | None = None,
    checks: ConfigChecks | None = None,
) -> ExperimentConfig:
    data = merge(base or {}, read_yaml(path) if path else {})
    return build_config(apply_overrides(data, overrides), checks=checks)


def save_config(cfg: ExperimentConfig, path: str | os.PathLike[str]) -> None:
    """The resolved config as YAML, with only the keys that apply to it (a comment names those left out: they
    read back as their defaults, which changes nothing, see :meth:`ExperimentConfig.unused_keys`)."""
    unused = cfg.unused_keys()
    what = f"{cfg.model.name}, {cfg.task}"
    head = f"# not written, they do not apply to this run ({what}): {', '.join(unused)}\n" if unused else ""
    atomic_write_text(path, head + yaml.safe_dump(cfg.applied_dict(), sort_keys=False))


def load_run_config(run_dir: str | os.PathLike[str]) -> ExperimentConfig:
    """The resolved experiment config a run was trained with (RUN/config.yaml)."""
    run = RunDir.of(run_dir)
    if not run.config.is_file():
        raise RunError(f"{run.path} is not a run directory (config.yaml missing)")
    try:
        return load_config(run.config)
    except ConfigError as e:
        raise RunError(f"{run.config}: {e}") from None
