"""Every field of the experiment config (and of the study file) given badly, through the commands that read
configs: each is refused with exactly one line on stderr that names the key by its dotted path, exit code 2,
no traceback, and before any heavy work (the whole table runs in-process in seconds).

The table is built by walking the pydantic models, so a field added later is covered without editing it:
for every leaf field a value of the wrong type, a value just outside each bound (``ge``/``gt``/``le``/``lt``),
a value outside a ``Literal``'s choices, and its key with one letter changed (a typo). Fixed cases add the
unknown corpus and model, a malformed YAML file (line and column named), a list instead of a mapping, an empty
file, a missing file and a run's hand-edited ``config.yaml`` (``emoshift evaluate``).
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import annotated_types
import pytest
import yaml
from pydantic import BaseModel
from typer.testing import CliRunner

from emoshift.cli import app
from emoshift.config import ExperimentConfig
from emoshift.study.spec import StudyFile

STUDY = Path(__file__).resolve().parents[2] / "configs" / "study.yaml"


# ------------------------------------------------------------------------------------------------ the table
@dataclass(frozen=True)
class Bad:
    """One bad setting: ``path`` (the dotted key), the raw ``value`` (None: delete nothing, see ``typo``) and
    ``key``, the dotted key the error must name."""

    id: str
    path: tuple[str, ...]
    value: Any
    key: str
    extra: dict[str, Any] = field(default_factory=dict)  # other settings the case needs to reach its field


def _models_in(ann: Any) -> list[type[BaseModel]]:
    return [a for a in _bare(ann) if isinstance(a, type) and issubclass(a, BaseModel)]


def _is_list_of_models(ann: Any) -> type[BaseModel] | None:
    for a in _bare(ann):
        if typing.get_origin(a) is list:
            inner = _models_in(typing.get_args(a)[0])
            if inner:
                return inner[0]
    return None


def _bare(ann: Any) -> list[Any]:
    """The non-None members of an annotation (``int | None`` -> [int])."""
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(ann) if a is not type(None)]
    return [ann]


def _wrong_type(ann: Any) -> Any:
    """A value no member of ``ann`` accepts."""
    members = _bare(ann)
    if all(m in (int, float) for m in members):
        return "abc"
    if members == [bool]:
        return "maybe"
    return [[1]]  # a nested list: not a str, number, bool, Literal, mapping, tuple of floats or list of str


def _out_of_range(info: Any) -> list[tuple[str, Any]]:
    """(bound, value) just outside each numeric bound of a field."""
    is_int = int in _bare(info.annotation) and float not in _bare(info.annotation)
    step = 1 if is_int else 0.5
    out = []
    for m in info.metadata:
        if isinstance(m, annotated_types.Ge):
            out.append((f"ge{m.ge}", m.ge - step))
        elif isinstance(m, annotated_types.Gt):
            out.append((f"gt{m.gt}", m.gt))
        elif isinstance(m, annotated_types.Le):
            out.append((f"le{m.le}", m.le + step))
        elif isinstance(m, annotated_types.Lt):
            out.append((f"lt{m.lt}", m.lt))
    return out


def _literal_choices(ann: Any) -> list[Any] | None:
    for m in _bare(ann):
        if typing.get_origin(m) is Literal:
            return list(typing.get_args(m))
    return None


def _typo(name: str) -> str:
    """``name`` with one letter changed (the last letter that can be: 'epochs' -> 'epochz')."""
    for i in range(len(name) - 1, -1, -1):
        if name[i].isalpha():
            return name[:i] + ("z" if name[i] != "z" else "q") + name[i + 1 :]
    return name + "z"


def _valid_item(model: type[BaseModel]) -> dict[str, Any]:
    """A minimal item of a list-of-models field: its required fields filled with the first valid value."""
    item: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if not info.is_required():
            continue
        choices = _literal_choices(info.annotation)
        lower = [m.ge for m in info.metadata if isinstance(m, annotated_types.Ge)]
        item[name] = choices[0] if choices else (lower[0] if lower else "x")
    return item


def cases_of(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[Bad]:
    """Every bad setting of every field of ``model``, recursively (sub-models and lists of sub-models)."""
    for name, info in model.model_fields.items():
        path = (*prefix, name)
        dotted = ".".join(path)
        typo = (*prefix, _typo(name))
        yield Bad(f"{dotted}:typo", typo, 1, ".".join(typo))
        yield Bad(f"{dotted}:type", path, _wrong_type(info.annotation), dotted)
        for bound, value in _out_of_range(info):
            yield Bad(f"{dotted}:{bound}", path, value, dotted)
        if _literal_choices(info.annotation):
            yield Bad(f"{dotted}:choice", path, "no-such-choice", dotted)
        subs = _models_in(info.annotation)
        if subs:
            yield from cases_of(subs[0], path)
        item_model = _is_list_of_models(info.annotation)
        if item_model is not None:
            for bad in cases_of(item_model, ()):
                item = _valid_item(item_model)
                if len(bad.path) == 1 and bad.path[0] in item and bad.id.endswith(":typo"):
                    item.pop(bad.path[0])  # a typo'd required key: the typo is the unknown key
                yield Bad(f"{dotted}[0].{bad.id}", path, [_nest(item, bad.path, bad.value)],
                          f"{dotted}.0.{bad.key}")


def _nest(base: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out = dict(base)
    node = out
    for k in path[:-1]:
        node = node.setdefault(k, {})
    node[path[-1]] = value
    return out


EXPERIMENT = list(cases_of(ExperimentConfig))
FIXED = [
    Bad("unknown-corpus", ("data", "corpora"), ["no-such-corpus"], "data.corpora"),
    Bad("unknown-eval-corpus", ("evaluation", "corpora"), ["no-such-corpus"], "evaluation.corpora"),
    Bad("unknown-model", ("model", "name"), "resnet19", "model.name"),
    Bad("unknown-mode", ("model", "mode"), "frozn", "model.mode"),
    Bad("unknown-preset", ("model", "preset"), "huge", "model.preset"),
    Bad("unknown-family-option", ("model", "pooling"), "attentive", "model.pooling",
        extra={"model": {"name": "hubert", "mode": "frozen", "preset": "tiny"}}),
]


def _config_text(bad: Bad) -> str:
    data = _nest(bad.extra, bad.path, bad.value) if bad.extra else _nest({}, bad.path, bad.value)
    if bad.extra:
        data = _deep_merge(bad.extra, data)
    return yaml.safe_dump(data)


def _deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# ------------------------------------------------------------------------------------------------ checks
runner = CliRunner()


def one_line_naming(result: Any, *names: str) -> str:
    """The check every case makes: exit 2, nothing on stdout, one ``error:`` line on stderr naming ``names``."""
    err = result.stderr
    assert result.exit_code == 2, (result.exit_code, err, result.exception)
    assert "Traceback" not in err and "Traceback" not in result.stdout
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    for name in names:
        assert re.search(rf"(?<![\w.]){re.escape(name)}(?![\w])", lines[0]), f"{name!r} not named in: {err}"
    return lines[0]


def test_the_table_covers_every_field() -> None:
    """Walking the models finds every leaf field, also the nested ones (a new field joins by itself)."""
    keys = {b.key for b in EXPERIMENT if b.id.endswith(":type")}
    for must in ("training.epochs", "training.augment.noise_snr_db", "data.split.k", "features.n_mels",
                 "model.dropout", "trainer.devices", "evaluation.n_bootstrap", "training.stages.0.top_k"):
        assert must in keys
    assert len(EXPERIMENT) > 150


@pytest.mark.parametrize("bad", EXPERIMENT + FIXED, ids=lambda b: b.id)
def test_train_refuses_a_bad_config_file(bad: Bad, tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(_config_text(bad))
    one_line_naming(runner.invoke(app, ["train", str(cfg), "-o", str(tmp_path / "run")]), bad.key)
    assert not (tmp_path / "run").exists()


def _set_item(bad: Bad) -> list[str]:
    value = yaml.safe_dump(bad.value, default_flow_style=True).strip().removesuffix("...").strip()
    items = [f"{'.'.join(bad.path)}={value}"]
    for k, v in _flatten(bad.extra):
        items.insert(0, f"{k}={v}")
    return items


def _flatten(d: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flatten(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


# The study sets each experiment's name (its id) and data.roots (from --corpus) itself.
STUDY_SETS = {"name", "data.roots"}
SET_CASES = [b for b in EXPERIMENT + FIXED if b.id.endswith(":type") and b.key not in STUDY_SETS] + FIXED


@pytest.mark.parametrize("bad", SET_CASES, ids=lambda b: b.id)
def test_study_refuses_a_bad_set_for_every_experiment(bad: Bad, tmp_path: Path) -> None:
    """Through ``--set`` (one wrong-typed value per field: the file table above already tries each bound and
    typo through the same validation)."""
    args = ["study", str(STUDY), "--profile", "demo", "-o", str(tmp_path / "out"),
            "--corpus", f"ravdess={tmp_path}", "--corpus", f"crema-d={tmp_path}"]
    for item in _set_item(bad):
        args += ["--set", item]
    one_line_naming(runner.invoke(app, args), bad.key)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------ the study file
STUDY_CASES = list(cases_of(StudyFile))


def _minimal_study() -> dict[str, Any]:
    return {"experiments": [{"id": "A", "title": "a", "architecture": "ResNet18", "data_strategy": "x",
                             "config": {"model": {"name": "resnet18"}}}]}


@pytest.mark.parametrize("bad", STUDY_CASES, ids=lambda b: b.id)
def test_study_refuses_a_bad_study_file(bad: Bad, tmp_path: Path) -> None:
    data = _minimal_study()
    if bad.id.startswith("experiments[0]."):  # an item's field: the item carries it, its other fields valid
        data["experiments"] = [_deep_merge(data["experiments"][0], bad.value[0])]
    else:
        data = _deep_merge(data, _nest({}, bad.path, bad.value))
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    one_line_naming(runner.invoke(app, ["study", str(path), "-o", str(tmp_path / "out")]), bad.key)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------ malformed files
FILES: list[tuple[str, bytes, tuple[str, ...]]] = [
    ("unclosed-list", b"training:\n  epochs: [1\n", ("line 3, column 1", "line 2, column 11")),
    ("bad-indent", b"training:\n  epochs: 3\n lr: 0.1\n", ("line 3, column 2",)),
    ("tab", b"training:\n\tepochs: 3\n", ("line 2, column 1",)),
    ("list", b"- a\n- b\n", ("mapping", "list")),
    ("scalar", b"just text\n", ("mapping", "str")),
    ("not-utf8", b"name: \xff\xfe\n", ("UTF-8",)),
]


@pytest.mark.parametrize("command", ["train", "study"])
@pytest.mark.parametrize(("kind", "text", "words"), FILES, ids=[f[0] for f in FILES])
def test_a_malformed_file_is_one_line(command: str, kind: str, text: bytes, words: tuple[str, ...],
                                      tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(text)
    line = one_line_naming(runner.invoke(app, [command, str(path), "-o", str(tmp_path / "out")]), str(path))
    for w in words:
        assert w in line


@pytest.mark.parametrize("command", ["train", "study"])
def test_a_missing_file_or_a_folder_is_one_line(command: str, tmp_path: Path) -> None:
    for path in (tmp_path / "missing.yaml", tmp_path):
        line = one_line_naming(runner.invoke(app, [command, str(path), "-o", str(tmp_path / "out")]), str(path))
        assert "not found" in line


def test_an_empty_file_is_the_defaults(tmp_path: Path) -> None:
    """An empty experiment file is an empty mapping: the defaults, whose corpus then needs its root (one line);
    an empty study file lacks its experiments (one line, naming the key)."""
    path = tmp_path / "empty.yaml"
    path.write_text("")
    one_line_naming(runner.invoke(app, ["study", str(path), "-o", str(tmp_path / "out")]), "experiments")
    line = one_line_naming(runner.invoke(app, ["train", str(path), "-o", str(tmp_path / "out")]), "ravdess")
    assert "--corpus ravdess=" in line


# ------------------------------------------------------------------------------------------------ a run's config
@pytest.mark.parametrize(("edit", "key"), [("training:\n  epochs: many\n", "training.epochs"),
                                           ("model: [1\n", "line 1"), ("trainng: {}\n", "trainng")])
def test_evaluate_refuses_a_hand_edited_run_config(edit: str, key: str, cnn_run: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(cnn_run, run)
    (run / "config.yaml").write_text(edit)
    line = one_line_naming(runner.invoke(app, ["evaluate", str(run), "--on", f"ravdess={tmp_path}"]), key)
    assert "config.yaml" in line
