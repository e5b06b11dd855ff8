"""RUN/model.json, typed: :class:`ModelRecord`, the one schema of a saved model, read and written here only.

What a trained model is (its registry name, input kind, task, output names, feature config), what it saw
(training corpora and speakers) and, for its family, how to rebuild it without a download (``backbone_config``,
``encoder_config``, ...). A pooled cross-validation run's record also lists its fold runs (``members``).

    {"format": 1, "model": "resnet18", "input_kind": "spectrogram", "task": "categorical",
     "labels": ["angry", ...], "features": {...}, "train_corpora": ["ravdess"], ...}

Every key is optional except ``model`` (a model.json older than a key reads with its default: no ``task`` is
categorical, no ``speaker_norm`` is off); a key this version does not know is kept and written back. A file that
breaks the schema is refused in one line (:class:`RecordError`) before anything is built from it. Torch-free.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError, model_validator

from emoshift.core.errors import EmoshiftError
from emoshift.core.io import atomic_write_json, read_json
from emoshift.core.task import TASKS, Task, TaskError, task_named

MODEL_FORMAT = 1
RATED = ("arousal", "valence", "dominance")  # the dimensions a rated model may predict


class RecordError(EmoshiftError, ValueError):
    """model.json is missing, unreadable or breaks the schema (one line, naming the file)."""


class ModelRecord(BaseModel):
    """model.json; see the module docstring. ``extra="allow"``: keys of a newer version or a plug-in family
    are kept as they are."""

    model_config = ConfigDict(extra="allow", validate_assignment=False)

    format: StrictInt = MODEL_FORMAT
    model: StrictStr
    input_kind: str | None = None  # "spectrogram" | "waveform" | "functionals"
    task: str | None = None  # a name of emoshift.task.TASKS; None (older runs): categorical
    targets: list[str] | None = None  # dimensional: the rated dimensions, in output order
    target_range: list[float] | None = None  # dimensional: [low, high], the scale of the outputs
    labels: list[str] = Field(default_factory=list)  # categorical: the classes, in output order
    label_policy: str | None = None
    features: dict[str, Any] = Field(default_factory=dict)  # FeatureConfig as JSON
    train_corpora: list[str] = Field(default_factory=list)
    training_speakers: list[str] = Field(default_factory=list)
    leaky_split: bool = False
    distill_teacher: str | None = None
    # training.dann: {"weight", "schedule", "domains": [...], "unlabelled": {name: utterances}}; the corpus
    # classifier it trained is not part of the saved model
    dann: dict[str, Any] | None = None
    architecture: str | None = None  # one line for people
    config_fingerprint: str | None = None
    window_s: float | None = None  # a family's own serving window (default: features.crop_s)
    # categorical, evaluation.calibrate: temperature: logits are divided by it before the softmax (fitted on the
    # run's validation speakers; a fold ensemble's members each carry their own)
    temperature: float | None = None
    temperature_fit: dict[str, Any] | None = None  # {"val_nll_before", "val_nll_after", "val_utterances"[, "note"]}
    # a pooled cross-validation run (emoshift.training.folds)
    members: list[str] | None = None  # fold run folders, relative to the run
    ensemble: str | None = None  # how they are combined, in words (Task.ensemble)
    # family keys: what the family needs to rebuild the net (emoshift.models.families)
    mode: str | None = None  # SSL: finetune | frozen
    dropout: float | None = None
    speaker_norm: bool | None = None
    domain_norm: str | None = None  # "corpus": inputs standardised per corpus (None, older runs: "none")
    # emoshift adapt: what the model was adapted on, {"method", "corpus", "root", "clips", "from"} (None: not adapted)
    adapted: dict[str, Any] | None = None
    backbone_config: dict[str, Any] | None = None  # CNN: the transformers backbone config
    encoder_config: dict[str, Any] | None = None  # SSL: the transformers encoder config
    pooling: str | None = None
    layer_sum: bool | None = None
    head_hidden: int | None = None
    pretrained: str | None = None
    preset: str | None = None
    head: str | None = None  # acoustic: svm | logreg | ridge
    functionals: dict[str, Any] | None = None  # acoustic: FunctionalsConfig as JSON
    acoustic: dict[str, Any] | None = None  # acoustic: the head's metadata

    @model_validator(mode="before")
    @classmethod
    def _checked(cls, data: Any) -> Any:
        if isinstance(data, dict):
            check(data)
        return data

    # -- the task -------------------------------------------------------------------------------------
    @property
    def task_kind(self) -> Task:
        return task_named(self.task)

    @property
    def outputs(self) -> list[str]:
        """The names of the model's output columns: its labels, or a rated model's targets."""
        return self.task_kind.output_names(self.labels, self.targets or [])

    @property
    def num_outputs(self) -> int:
        return len(self.outputs)

    @property
    def is_ensemble(self) -> bool:
        return bool(self.members)

    def values(self, raw: Any, *, calibrated: bool = True) -> Any:
        """Raw outputs ``(N, K)`` -> values (:meth:`Task.values`), a categorical model's logits divided by its
        ``temperature`` first (``calibrated=False``: as the network gives them). Every path from outputs to
        probabilities goes through here (the exported graph divides the same way, emoshift.deploy.graph)."""
        if calibrated and self.temperature is not None and not self.task_kind.rated:
            raw = raw / self.temperature
        return self.task_kind.values(raw)

    @property
    def corpus_normalised(self) -> bool:
        """Whether the model standardises each corpus's inputs with that corpus's statistics (model.domain_norm)."""
        return self.domain_norm == "corpus"

    def required(self, key: str) -> Any:
        """A family key its family cannot rebuild without; KeyError (the caller's one line) when it is absent."""
        value = getattr(self, key, None) if key in type(self).model_fields else self.extra(key)
        if value is None:
            raise KeyError(key)
        return value

    def extra(self, key: str, default: Any = None) -> Any:
        """A key this schema does not declare (a plug-in family's), or ``default``."""
        return (self.model_extra or {}).get(key, default)

    # -- reading and writing ----------------------------------------------------------------------------
    @classmethod
    def parse(cls, data: Any, source: str = "model.json") -> ModelRecord:
        if not isinstance(data, dict):
            raise RecordError(f"{source} must hold a JSON object")
        try:
            return cls.model_validate(data)
        except RecordError as e:
            raise RecordError(f"{source}: {e}") from None
        except ValidationError as e:
            err = e.errors()[0]
            if isinstance(err.get("ctx", {}).get("error"), RecordError):
                raise RecordError(f"{source}: {err['ctx']['error']}") from None
            where = ".".join(str(p) for p in err["loc"])
            raise RecordError(f"{source}: {where!r} {err['msg'].lower()}, got {err.get('input')!r:.40}") from None

    @classmethod
    def read(cls, path: Path) -> ModelRecord:
        """RUN/model.json; RecordError (one line) when it is missing, not JSON or breaks the schema."""
        if not path.is_file():
            raise RecordError(f"{path.parent} is not a finished run directory: {path.name} is missing")
        return cls.parse(read_json(path, RecordError), str(path))

    def to_json(self) -> dict[str, Any]:
        """The keys this record was given (and ``format``), as model.json holds them."""
        return {"format": self.format, **self.model_dump(mode="json", exclude_unset=True, exclude={"format"})}

    def write(self, path: Path) -> None:
        atomic_write_json(path, self.to_json())


def check(info: dict[str, Any]) -> None:
    """The rules a type cannot say: model name, format, task and its outputs (RecordError, one line)."""
    if "model" not in info:
        raise RecordError("names no model (its 'model' key is missing)")
    if not isinstance(info["model"], str):
        raise RecordError(f"'model' must be a model name, got {info['model']!r:.40}")
    fmt = info.get("format", MODEL_FORMAT)
    if not isinstance(fmt, int) or isinstance(fmt, bool):
        raise RecordError(f"'format' must be an integer, got {fmt!r:.40}")
    try:
        task = task_named(info.get("task"))
    except TaskError:
        raise RecordError(f"'task' must be {' or '.join(TASKS)}, got {info.get('task')!r:.40}") from None
    if task.rated:
        targets = info.get("targets")
        if (not isinstance(targets, list) or not targets or len(set(targets)) != len(targets)
                or not all(t in RATED for t in targets)):
            raise RecordError(f"'targets' must list distinct {'/'.join(RATED)}, got {targets!r:.60}")
        rng = info.get("target_range")
        if not (isinstance(rng, list) and len(rng) == 2 and all(isinstance(v, int | float) for v in rng)):
            raise RecordError(f"'target_range' must be [low, high], got {rng!r:.40}")
        return
    temperature = info.get("temperature")
    if temperature is not None and not (isinstance(temperature, int | float) and 0 < temperature < float("inf")):
        raise RecordError(f"'temperature' must be a positive number, got {temperature!r:.40}")
    labels = info.get("labels")
    if (not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels)
            or len(set(labels)) != len(labels)):
        raise RecordError(f"'labels' must be a list of distinct label names, got {labels!r:.60}")


__all__ = ["MODEL_FORMAT", "ModelRecord", "RecordError", "check"]
