"""The one config-override parser and the one pydantic-error formatter.

* :func:`parse_override` - ``"training.lr=3e-4"`` -> ``(["training", "lr"], 0.0003)`` (values read as YAML);
* :func:`apply_overrides` - apply such items to a nested dict (what ``--set`` does to a YAML config);
* :func:`explain` - a ValidationError as one line that names each offending key and, for an unknown one, the
  closest valid key: ``unknown config key 'training.lr_schedule'; did you mean 'training.schedule'? (...)``.

The experiment config (:mod:`emoshift.config`), the study file and the feature settings of ``emoshift
features --set`` all go through these, and all raise :class:`ConfigError`.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Callable, Sequence
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ValidationError

from emoshift.core.errors import EmoshiftError


class ConfigError(EmoshiftError, ValueError):
    """A config problem, explained in one message for the user."""


def yaml_value(raw: str) -> Any:
    """A ``--set`` value as YAML reads it (``64`` -> int, ``[a, b]`` -> list, ``true`` -> bool); empty -> None;
    text YAML cannot parse stays text."""
    try:
        return yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        return raw


def parse_override(
    item: str, *, form: str = "key.path=value", value: Callable[[str], Any] = yaml_value
) -> tuple[list[str], Any]:
    """``"training.lr=3e-4"`` -> (["training", "lr"], value("3e-4")); ConfigError naming ``form`` otherwise."""
    key, sep, raw = item.partition("=")
    path = [k for k in key.strip().split(".") if k]
    if not sep or not path:
        raise ConfigError(f"--set expects {form}, got {item!r}")
    return path, value(raw)


def apply_overrides(data: dict[str, Any], overrides: Sequence[str] | None) -> dict[str, Any]:
    """A deep copy of ``data`` with each ``key.path=value`` set (missing sections are created)."""
    out = copy.deepcopy(data)
    for item in overrides or []:
        path, value = parse_override(item)
        node = out
        for k in path[:-1]:
            nxt = node.get(k)
            if nxt is None:
                nxt = node[k] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"--set {item}: {k!r} is a value, not a section")
            node = nxt
        node[path[-1]] = value
    return out


def unknown_key(
    name: str,
    valid: Sequence[str],
    *,
    parent: Sequence[str] = (),
    noun: str = "config key",
    listing: str = "valid here",
) -> str:
    """``unknown config key 'training.lr_schedule'; did you mean 'training.schedule'? (valid here: ...)``."""
    close = difflib.get_close_matches(name, list(valid), n=1)
    hint = f"; did you mean {'.'.join([*parent, close[0]])!r}?" if close else ""
    return f"unknown {noun} {'.'.join([*parent, name])!r}{hint} ({listing}: {', '.join(valid)})"


def fields_at(model: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    """The field names of the sub-model of ``model`` at ``loc`` (the deepest one reachable)."""
    cls: Any = model
    for part in loc:
        field = cls.model_fields.get(part) if isinstance(part, str) and hasattr(cls, "model_fields") else None
        if field is None:
            break
        ann = field.annotation
        args = getattr(ann, "__args__", (ann,))
        sub = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if sub is None:
            break
        cls = sub
    return list(getattr(cls, "model_fields", {}))


def explain(
    err: ValidationError, model: type[BaseModel], *, values: Literal["after", "inline"] = "after"
) -> str:
    """One line for all of ``err``'s problems, ``; ``-separated.

    An unknown key names the closest valid one (:func:`unknown_key`); a bad value names its key and the input,
    after the message (``training.epochs: Input should be ... (got 'x')``) or, with ``values="inline"``, as
    the setting was written (``n_mels='abc': Input should be ...``). A check across fields gives its message.
    """
    lines = []
    for e in err.errors():
        loc = tuple(e["loc"])
        key = ".".join(str(p) for p in loc)
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden" and loc:
            parent = [str(p) for p in loc[:-1]]
            lines.append(unknown_key(str(loc[-1]), fields_at(model, loc[:-1]), parent=parent))
        elif not key:
            lines.append(msg)
        elif values == "inline":
            lines.append(f"{key}={e.get('input')!r}: {msg}")
        else:
            lines.append(f"{key}: {msg} (got {e.get('input')!r})")
    return "; ".join(lines)
