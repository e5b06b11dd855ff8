"""The one config-override parser and the one pydantic-error formatter.

* :func:`parse_override` - ``"training.lr=3e-4"`` -> ``(["training", "lr"], 0.0003)`` (values read as YAML);
* :func:`apply_overrides` - apply such items to a nested dict (what ``--set`` does to a YAML config);
* :func:`read_yaml` - a YAML file's top-level mapping, or a ConfigError naming the line and column;
* :func:`explain` - a ValidationError as one line that names each offending key and, for an unknown one, the
  closest valid key: ``unknown config key 'training.lr_schedule'; did you mean 'training.schedule'? (...)``.

The experiment config (:mod:`emoshift.config`), the study file and the feature settings of ``emoshift
features --set`` all go through these, and all raise :class:`ConfigError`.
"""

from __future__ import annotations

import copy
import difflib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ValidationError

# PyYAML's safe loader in C (libyaml, in PyYAML's wheels) where it is built: the same documents and errors (with
# their line and column) as the pure-Python one, ten times faster. A study file took 0.1 s to parse, and every
# experiment of a study and every run's config.yaml is read through read_yaml.
try:
    from yaml import CSafeLoader as SafeLoader
except ImportError:  # a PyYAML built without libyaml
    from yaml import SafeLoader  # type: ignore[assignment]

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


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A YAML file's top-level mapping (an empty file is ``{}``); ConfigError in one line otherwise, naming
    the line and column of a syntax error."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} not found" + (" (it is a folder)" if p.is_dir() else ""))
    try:
        data = yaml.load(p.read_text(encoding="utf-8"), Loader=SafeLoader) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML{_yaml_where(e)}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not a text file (byte {e.start} is not UTF-8)") from None
    except OSError as e:
        raise ConfigError(f"{p}: cannot be read ({e.strerror or e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level (key: value lines), got a {type(data).__name__}")
    return data


def _yaml_where(e: yaml.YAMLError) -> str:
    """`` at line 2, column 11: expected ',' or ']', but got '<stream end>'`` (1-based) from a YAML error."""
    mark = getattr(e, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(e, "problem", None) or str(e)
    context, cmark = getattr(e, "context", None), getattr(e, "context_mark", None)
    if context and cmark is not None and (mark is None or cmark.line != mark.line):
        context = f"{context} begun at line {cmark.line + 1}, column {cmark.column + 1}"
    text = f"{problem} ({context})" if context else problem
    return f"{where}: {' '.join(str(text).split())}"
