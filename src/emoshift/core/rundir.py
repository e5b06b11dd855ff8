"""The run directory, a contract that checks outside the repo read::

    RUN/config.yaml            resolved experiment config
    RUN/model.safetensors      weights (safetensors: nothing is unpickled to use a model)
    RUN/model.json             architecture, labels, feature config: enough to rebuild and use the model
    RUN/splits/<corpus>.csv    id, speaker, split
    RUN/log.csv                one row per epoch
    RUN/metrics/<corpus>.json  accuracy, uar, macro_f1, n, labels, per_class_recall, confusion, ci95, leaky
    RUN/metrics/<corpus>@<perturbation>.json  the same utterances through a channel effect (evaluate --perturb):
                               the perturbed scores, uar_clean, uar_drop and its speaker-paired CI; the SPEC
                               spelled for a file name (``mp3_16k``, ``noise_snr_10``: data.channel.Perturbation.slug)
    RUN/predictions/<corpus>.csv
    RUN/plots/confusion_<corpus>.png, RUN/plots/curves.png, RUN/plots/<corpus>_scatter.png (dimensional)
    RUN/plots/reliability_<corpus>.png, RUN/plots/risk_coverage_<corpus>.png (categorical: calibration),
                               RUN/plots/robustness_<corpus>.png (UAR clean and per perturbation)
    RUN/audit/<corpus>.json, <corpus>.md, <corpus>_<grouping>_bars.png, <corpus>_<grouping>_confusion.png
    RUN/compare/<other run>_<corpus>.json
    RUN/teacher_logits/<key>.npy   a teacher's logits for a student's training items (distillation)
    RUN/training_audio.json    fingerprints of the audio it trained on (training audio among test audio is a leak)
    RUN/training_texts.json    the spoken texts it trained on (a test utterance saying one is text overlap)
    RUN/checkpoints/           Lightning checkpoints (last.ckpt resumes an interrupted run; best.safetensors)
    RUN/done.json              written last: the run is complete
    RUN/domain_stats.safetensors  input statistics per corpus (emoshift adapt --method corpus-norm: the target's;
                               emoshift.features.domain_norm.CorpusStats)
    RUN/tracking.json          the MLflow run this run logs to (tracking.backend: mlflow; reused on resume)
    RUN/tensorboard/           TensorBoard event files (tracking.backend: tensorboard)
    RUN/folds/<i>/             speaker cross-validation: each fold a run directory like this one, but without
                               plots/ (RunDir.draws_figures: RUN's figures draw every fold's out-of-fold
                               predictions at once); RUN/model.json then lists them as "members" (the fold
                               ensemble) and RUN has no weights of its own
    RUN/seeds/<s>/             repeated training (training.seeds): each seed a complete run directory like this
                               one (single or folds); RUN/model.json lists every seed's models as "members" and
                               RUN/metrics, RUN/predictions pool the seeds (a ``seed`` column)

This module is the only code that builds these paths, and it imports no torch, so torch-free readers (the
study report, the audit) use it too. Weights are loaded by :mod:`emoshift.models.weights`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emoshift.core.errors import EmoshiftError
from emoshift.core.io import read_json
from emoshift.core.record import MODEL_FORMAT, ModelRecord, RecordError

__all__ = ["MODEL_FORMAT", "RunDir", "RunError", "write_model_json"]


PERTURBED = "@"  # metrics/<corpus>@<perturbation>.json


class RunError(EmoshiftError):
    """A run directory is missing something or cannot be used (one-line message)."""


@dataclass(frozen=True)
class RunDir:
    path: Path

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> RunDir:
        return cls(Path(path))

    @property
    def draws_figures(self) -> bool:
        """Whether evaluating this run draws its figures (RUN/plots/). Not for a fold of a k-fold run
        (``RUN/folds/<i>/`` inside a run with a config): the pooled run draws the confusion, calibration and
        curves of every fold's out-of-fold predictions together, and a fold's own figures were a 4-fold cost
        of a cross-validated run that no report showed. A fold still writes its metrics and predictions."""
        parent = self.path.parent
        return not (parent.name == "folds" and self.path.name.isdigit() and (parent.parent / "config.yaml").is_file())

    # -- files ----------------------------------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def training_audio(self) -> Path:
        return self.path / "training_audio.json"

    @property
    def training_texts(self) -> Path:
        return self.path / "training_texts.json"

    @property
    def weights(self) -> Path:
        return self.path / "model.safetensors"

    @property
    def model_json(self) -> Path:
        return self.path / "model.json"

    @property
    def log(self) -> Path:
        return self.path / "log.csv"

    @property
    def done(self) -> Path:
        return self.path / "done.json"

    @property
    def domain_stats(self) -> Path:
        """Per-corpus input statistics (:class:`emoshift.features.domain_norm.CorpusStats`)."""
        return self.path / "domain_stats.safetensors"

    @property
    def tracking(self) -> Path:
        return self.path / "tracking.json"

    # -- folders --------------------------------------------------------------------------------------
    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def splits_dir(self) -> Path:
        return self.path / "splits"

    @property
    def metrics_dir(self) -> Path:
        return self.path / "metrics"

    @property
    def predictions_dir(self) -> Path:
        return self.path / "predictions"

    @property
    def plots_dir(self) -> Path:
        return self.path / "plots"

    @property
    def audit_dir(self) -> Path:
        return self.path / "audit"

    @property
    def compare_dir(self) -> Path:
        return self.path / "compare"

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / "tensorboard"

    # -- per corpus -----------------------------------------------------------------------------------
    def split(self, corpus: str) -> Path:
        return self.splits_dir / f"{corpus}.csv"

    def metrics(self, corpus: str) -> Path:
        return self.metrics_dir / f"{corpus}.json"

    def predictions(self, corpus: str) -> Path:
        return self.predictions_dir / f"{corpus}.csv"

    def perturbed_metrics(self, corpus: str, slug: str) -> Path:
        """``corpus`` scored through a channel effect; ``slug``: its SPEC spelled for a file name."""
        return self.metrics_dir / f"{corpus}{PERTURBED}{slug}.json"

    def perturbed_metrics_of(self, corpus: str) -> list[Path]:
        """The perturbed metrics files of ``corpus``, sorted."""
        if not self.metrics_dir.is_dir():
            return []
        return sorted(p for p in self.metrics_dir.glob("*.json") if p.stem.startswith(corpus + PERTURBED))

    def robustness_plot(self, corpus: str) -> Path:
        return self.plots_dir / f"robustness_{corpus}.png"

    def confusion_plot(self, corpus: str) -> Path:
        return self.plots_dir / f"confusion_{corpus}.png"

    def reliability_plot(self, corpus: str) -> Path:
        """A categorical run's reliability diagram with its confidence histogram."""
        return self.plots_dir / f"reliability_{corpus}.png"

    def risk_coverage_plot(self, corpus: str) -> Path:
        """A categorical run's accuracy and UAR of the answered clips against the share answered."""
        return self.plots_dir / f"risk_coverage_{corpus}.png"

    def scatter_plot(self, corpus: str) -> Path:
        """A dimensional run's predicted-against-true scatter, one panel per target."""
        return self.plots_dir / f"{corpus}_scatter.png"

    @property
    def curves_plot(self) -> Path:
        return self.plots_dir / "curves.png"

    def audit_json(self, corpus: str) -> Path:
        return self.audit_dir / f"{corpus}.json"

    def audit_md(self, corpus: str) -> Path:
        return self.audit_dir / f"{corpus}.md"

    def audit_plot(self, corpus: str, grouping: str, kind: str) -> Path:
        """``kind``: "bars" or "confusion"."""
        return self.audit_dir / f"{corpus}_{grouping}_{kind}.png"

    def compare_json(self, other: str, corpus: str) -> Path:
        """This run compared with run ``other`` (its folder name) on ``corpus``."""
        return self.compare_dir / f"{other}_{corpus}.json"

    def metrics_corpora(self) -> list[str]:
        """Corpora with a metrics file, sorted (their perturbed metrics, ``<corpus>@<spec>.json``, aside)."""
        if not self.metrics_dir.is_dir():
            return []
        return sorted(p.stem for p in self.metrics_dir.glob("*.json") if PERTURBED not in p.stem)

    # -- training -------------------------------------------------------------------------------------
    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / "last.ckpt"

    @property
    def best_weights(self) -> Path:
        return self.checkpoints / "best.safetensors"

    def teacher_logits(self, key: str) -> Path:
        return self.path / "teacher_logits" / f"{key}.npy"

    # -- state ----------------------------------------------------------------------------------------
    def is_complete(self) -> bool:
        if not (self.done.is_file() and self.model_json.is_file()):
            return False
        return self.weights.is_file() or self.is_ensemble()

    def is_ensemble(self) -> bool:
        """A pooled cross-validation run: model.json lists the fold runs it averages (``members``)."""
        try:
            return self.info().is_ensemble
        except RunError:
            return False

    def fold(self, i: int) -> Path:
        return self.path / "folds" / str(i)

    @property
    def seeds_dir(self) -> Path:
        return self.path / "seeds"

    def seed(self, s: int) -> Path:
        """Seed ``s`` of a repeated-training run (``training.seeds``): a complete run directory of its own."""
        return self.seeds_dir / str(s)

    def seed_dirs(self) -> list[RunDir]:
        """The seed runs a repeated-training run pools, in its config's order (``[]`` for a one-seed run).
        Read from RUN/seeds.json (written when the seeds are pooled), else the seed folders present."""
        listed = _read_object(self.seeds_json).get("seeds") if self.seeds_json.is_file() else None
        if isinstance(listed, list) and all(isinstance(s, int) for s in listed):
            return [RunDir.of(self.seed(s)) for s in listed]
        if not self.seeds_dir.is_dir():
            return []
        return [RunDir.of(p) for p in sorted(self.seeds_dir.iterdir(), key=_seed_order) if p.name.isdigit()]

    @property
    def seeds_json(self) -> Path:
        """``{"seeds": [0, 1, 2]}``: which seed folders the pooled files of a repeated-training run hold."""
        return self.path / "seeds.json"

    def is_multi_seed(self) -> bool:
        """A repeated-training run: its metrics and predictions pool the runs under RUN/seeds/."""
        return bool(self.seed_dirs())

    def done_info(self) -> dict[str, Any]:
        """done.json ({} while the run is unfinished)."""
        return _read_object(self.done) if self.done.is_file() else {}

    def info_if_present(self) -> ModelRecord | None:
        """model.json, or None when the run has none (yet); RunError (one line) when it is broken."""
        return self.info() if self.model_json.is_file() else None

    def info(self) -> ModelRecord:
        """model.json (:class:`~emoshift.core.record.ModelRecord`); RunError (one line) when it is missing, not
        JSON or breaks the schema."""
        try:
            return ModelRecord.read(self.model_json)
        except RecordError as e:
            raise RunError(str(e)) from None


def _seed_order(path: Path) -> int:
    return int(path.name) if path.name.isdigit() else -1


def _read_object(path: Path) -> dict[str, Any]:
    data = read_json(path, RunError)
    if not isinstance(data, dict):
        raise RunError(f"{path} must hold a JSON object")
    return data


def write_model_json(run: RunDir, record: ModelRecord | dict[str, Any]) -> None:
    """Write model.json (a dict is checked against the schema first: RunError, one line)."""
    if not isinstance(record, ModelRecord):
        try:
            record = ModelRecord.parse(record)
        except RecordError as e:
            raise RunError(str(e)) from None
    record.write(run.model_json)
