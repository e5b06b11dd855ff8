"""What a run learns: emotion classes (:data:`CATEGORICAL`) or ratings of arousal, valence and dominance
(:data:`DIMENSIONAL`). The one place that answers every question whose answer depends on that.

The config's ``task`` and model.json's ``task`` name one of these (:func:`task_named`; a model.json without a
``task``, written before dimensional runs existed, is categorical); nothing else compares task names.

=========================== ============================= =====================================
question                    :class:`Categorical`          :class:`Dimensional`
=========================== ============================= =====================================
output names                the run's labels              the run's targets (arousal, ...)
member output -> value      softmax: probabilities        the outputs as they are: ratings
members combined by         mean probability              mean output
validation monitor          ``val_uar``                   ``val_ccc``
headline metric             ``uar``                       ``ccc``
graph outputs (ONNX)        ``logits``, ``probabilities`` ``values``
label policy of a scan      the run's (``data.labels``)   ``native``
=========================== ============================= =====================================

The loss and the validation metrics in torch are the training layer's objective for the task
(:mod:`emoshift.training.objective`). Torch-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from emoshift.core.errors import EmoshiftError

__all__ = ["CATEGORICAL", "DIMENSIONAL", "TASKS", "Categorical", "Dimensional", "Task", "TaskError", "task_named"]


class TaskError(EmoshiftError, ValueError):
    """A task name that is neither categorical nor dimensional (one line)."""


@dataclass(frozen=True)
class Task:
    """One kind of run; the module docstring's table. Instances are the singletons below."""

    name: ClassVar[str]
    rated: ClassVar[bool]  # outputs are ratings on a scale (True) or scores over classes (False)
    monitor: ClassVar[str]  # the validation score that selects weights (higher is better)
    headline: ClassVar[str]  # the metric a table or report leads with
    ensemble: ClassVar[str]  # how fold/ensemble members are combined, in words (model.json "ensemble")
    output: ClassVar[str]  # the graph output a backend returns
    graph_outputs: ClassVar[tuple[str, ...]]  # the exported graph's outputs, the returned one last

    def output_names(self, labels: Sequence[str], targets: Sequence[str]) -> list[str]:
        """The columns of the model's output: its labels, or its targets."""
        raise NotImplementedError

    def values(self, raw: np.ndarray) -> np.ndarray:
        """A member's raw outputs ``(N, K)`` -> the values members are combined by: probabilities or ratings."""
        raise NotImplementedError

    def raw(self, values: np.ndarray) -> np.ndarray:
        """Back from combined values to raw outputs: what an ensemble gives where one model gives its own."""
        raise NotImplementedError

    def combine(self, members: Sequence[np.ndarray]) -> np.ndarray:
        """Members' values, each ``(N, K)`` -> the ensemble's ``(N, K)``: their mean (probability or output)."""
        return np.mean(np.stack(list(members)), axis=0)

    def scan_policy(self, labels: str) -> str:
        """The label policy a corpus is scanned with for this task, given the run's ``labels``."""
        return labels

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Categorical(Task):
    name: ClassVar[str] = "categorical"
    rated: ClassVar[bool] = False
    monitor: ClassVar[str] = "val_uar"
    headline: ClassVar[str] = "uar"
    ensemble: ClassVar[str] = "mean probability"
    output: ClassVar[str] = "probabilities"
    graph_outputs: ClassVar[tuple[str, ...]] = ("logits", "probabilities")

    def output_names(self, labels: Sequence[str], targets: Sequence[str]) -> list[str]:
        return list(labels)

    def values(self, raw: np.ndarray) -> np.ndarray:
        return softmax(raw)

    def raw(self, values: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):  # a label no member predicts: probability 0, logit -inf
            return np.log(values)  # softmax gives the probabilities back


@dataclass(frozen=True)
class Dimensional(Task):
    name: ClassVar[str] = "dimensional"
    rated: ClassVar[bool] = True
    monitor: ClassVar[str] = "val_ccc"
    headline: ClassVar[str] = "ccc"
    ensemble: ClassVar[str] = "mean output"
    output: ClassVar[str] = "values"
    graph_outputs: ClassVar[tuple[str, ...]] = ("values",)

    def output_names(self, labels: Sequence[str], targets: Sequence[str]) -> list[str]:
        return list(targets)

    def values(self, raw: np.ndarray) -> np.ndarray:
        return raw  # the outputs are the ratings, on the run's target_range

    def raw(self, values: np.ndarray) -> np.ndarray:
        return values

    def scan_policy(self, labels: str) -> str:
        return "native"  # ratings are read beside the corpus's own labels


CATEGORICAL = Categorical()
DIMENSIONAL = Dimensional()
TASKS: dict[str, Task] = {t.name: t for t in (CATEGORICAL, DIMENSIONAL)}


def task_named(name: str | None) -> Task:
    """The task called ``name``; None or "" (a model.json older than dimensional runs) is categorical."""
    if not name:
        return CATEGORICAL
    if name not in TASKS:
        raise TaskError(f"task must be {' or '.join(TASKS)}, got {name!r:.40}")
    return TASKS[name]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax ``(N, C)``; a logit of -inf (probability 0) stays 0."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
