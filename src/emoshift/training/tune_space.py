"""The search space of ``emoshift tune``: ``space.yaml`` read, checked against the experiment config, sampled.

``space.yaml`` maps config keys (dotted paths, as ``--set`` takes them) to a range or a list of choices::

    training.lr: {low: 1.0e-4, high: 1.0e-2, log: true}     # float (log scale)
    training.batch_size: {low: 8, high: 64, step: 8}        # int: low and high are ints (step optional)
    model.dropout: {low: 0.0, high: 0.5}                    # float (uniform)
    training.schedule: {choices: [cosine, onecycle]}        # categorical (str, int, float, bool or null)

:func:`load_space` checks the file before any trial: every key must be one the config accepts, with every
value the space can give (both ends of a range, each choice) set through the same override machinery as
``--set``, so a key the config rejects is named in one line (:class:`SpaceError`, exit 2). No torch here.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from emoshift.core.errors import EmoshiftError
from emoshift.core.overrides import ConfigError, apply_overrides

RANGE_KEYS = frozenset({"low", "high", "log", "step"})
SCALARS = (str, int, float, bool, type(None))


class SpaceError(EmoshiftError, ValueError):
    """A bad search space (one line naming the key)."""


@dataclass(frozen=True)
class Param:
    """One dimension of the space: a config key and its range (``low``/``high``) or ``choices``."""

    key: str
    kind: str  # "float" | "int" | "categorical"
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()

    def probes(self) -> list[Any]:
        """The values checked against the config before any trial: both ends, or every choice."""
        return list(self.choices) if self.kind == "categorical" else [self.low, self.high]

    def suggest(self, trial: Any) -> Any:
        """This parameter's value for an Optuna trial (``trial.suggest_*``)."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)  # type: ignore[arg-type]
        return trial.suggest_float(self.key, float(self.low), float(self.high), step=self.step, log=self.log)  # type: ignore[arg-type]


def as_overrides(params: Mapping[str, Any]) -> list[str]:
    """``{"training.lr": 0.001}`` -> ``["training.lr=0.001"]`` (JSON is YAML, so each value reads back as itself)."""
    return [f"{key}={json.dumps(value)}" for key, value in params.items()]


def apply_params(data: dict[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """A config dict with a trial's parameters set (a deep copy)."""
    return apply_overrides(data, as_overrides(params))


def load_space(
    path: str | os.PathLike[str], base: dict[str, Any], check: Callable[[dict[str, Any]], Any]
) -> list[Param]:
    """Read ``path`` and check every parameter: ``check(config dict)`` must accept ``base`` with each value the
    parameter can take (it raises a ConfigError naming what it rejects)."""
    p = Path(path)
    if not p.is_file():
        raise SpaceError(f"search space {str(p)!r} not found")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise SpaceError(f"{p}: not valid YAML ({e})") from None
    if not isinstance(raw, dict) or not raw:
        raise SpaceError(f"{p}: expected a mapping of config keys to ranges or choices, e.g. "
                         "'training.lr: {low: 1.0e-4, high: 1.0e-2, log: true}'")
    space = [parse_param(str(key), spec) for key, spec in raw.items()]
    for param in space:
        for value in param.probes():
            try:
                check(apply_params(base, {param.key: value}))
            except ConfigError as e:
                raise SpaceError(f"space key {param.key!r} = {value!r}: {e}") from None
    return space


def parse_param(key: str, spec: Any) -> Param:
    """One ``key: spec`` entry as a :class:`Param`; SpaceError naming ``key`` when the spec is malformed."""
    where = f"space key {key!r}"
    if not key or any(not part for part in key.split(".")):
        raise SpaceError(f"{where}: expected a dotted config key such as training.lr")
    if not isinstance(spec, dict):
        raise SpaceError(f"{where}: expected {{low: .., high: ..}} or {{choices: [..]}}, got {spec!r}")
    if "choices" in spec:
        return _categorical(key, spec, where)
    unknown = sorted(set(spec) - RANGE_KEYS)
    if unknown or "low" not in spec or "high" not in spec:
        what = f"unknown field(s) {', '.join(map(repr, unknown))}" if unknown else "needs both low and high"
        raise SpaceError(f"{where}: {what} (a range takes low, high, log, step; a list takes choices)")
    return _range(key, spec, where)


def _categorical(key: str, spec: dict[str, Any], where: str) -> Param:
    if set(spec) != {"choices"}:
        raise SpaceError(f"{where}: choices cannot be combined with {', '.join(sorted(set(spec) - {'choices'}))}")
    choices = spec["choices"]
    if not isinstance(choices, list) or not choices:
        raise SpaceError(f"{where}: choices must be a non-empty list, got {choices!r}")
    bad = [c for c in choices if not isinstance(c, SCALARS)]
    if bad:
        raise SpaceError(f"{where}: each choice must be a string, number, boolean or null, got {bad[0]!r}")
    if len({json.dumps(c) for c in choices}) != len(choices):
        raise SpaceError(f"{where}: choices repeat a value ({choices!r})")
    return Param(key, "categorical", choices=tuple(choices))


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _range(key: str, spec: dict[str, Any], where: str) -> Param:
    low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
    if not _number(low) or not _number(high):
        raise SpaceError(f"{where}: low and high must be numbers, got low={low!r}, high={high!r}")
    if not low < high:
        raise SpaceError(f"{where}: low must be below high (got low={low!r}, high={high!r})")
    if not isinstance(log, bool):
        raise SpaceError(f"{where}: log must be true or false, got {log!r}")
    if log and low <= 0:
        raise SpaceError(f"{where}: a log range needs low > 0 (got low={low!r})")
    if step is not None and (not _number(step) or step <= 0):
        raise SpaceError(f"{where}: step must be a positive number, got {step!r}")
    if step is not None and log:
        raise SpaceError(f"{where}: step and log cannot be combined")
    is_int = isinstance(low, int) and isinstance(high, int) and (step is None or isinstance(step, int))
    if step is not None and step > high - low:
        raise SpaceError(f"{where}: step {step!r} is wider than the range {low!r}..{high!r}")
    return Param(key, "int" if is_int else "float", low=low, high=high, log=log, step=step)
