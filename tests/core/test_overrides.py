"""core.overrides: the --set parser, applying overrides, and the one-line explanation of a ValidationError."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from emoshift.core.errors import EmoshiftError
from emoshift.core.overrides import (
    ConfigError,
    apply_overrides,
    explain,
    fields_at,
    parse_override,
    unknown_key,
)


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lr: float = 1e-3
    schedule: Literal["cosine", "constant"] = "cosine"


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "x"
    training: Inner = Inner()
    maybe: Inner | None = None


@pytest.mark.parametrize(
    ("item", "path", "value"),
    [
        ("training.lr=0.5", ["training", "lr"], 0.5),
        ("training.epochs=3", ["training", "epochs"], 3),
        ("flag=true", ["flag"], True),
        ("data.corpora=[ravdess, crema-d]", ["data", "corpora"], ["ravdess", "crema-d"]),
        ("model.pretrained=", ["model", "pretrained"], None),
        ("a.b=x=y", ["a", "b"], "x=y"),  # the first '=' splits
        (" name = hello ", ["name"], "hello"),
        ("x=[unclosed", ["x"], "[unclosed"),  # not YAML: kept as text
    ],
)
def test_parse_override(item: str, path: list[str], value: object) -> None:
    assert parse_override(item) == (path, value)


@pytest.mark.parametrize("item", ["training", "=3", ".=1", ""])
def test_parse_override_refuses_a_malformed_item(item: str) -> None:
    with pytest.raises(ConfigError, match=r"^--set expects key\.path=value, got "):
        parse_override(item)
    with pytest.raises(ConfigError, match=r"^--set expects key=value \(e\.g\. n=1\), got "):
        parse_override(item, form="key=value (e.g. n=1)")


def test_parse_override_value_reader() -> None:
    assert parse_override("n=64", value=str.strip) == (["n"], "64")


def test_apply_overrides_copies_creates_sections_and_refuses_a_value_as_section() -> None:
    data = {"training": {"lr": 1.0}, "name": "x"}
    out = apply_overrides(data, ["training.lr=0.5", "data.roots.ravdess=/r"])
    assert out == {"training": {"lr": 0.5}, "name": "x", "data": {"roots": {"ravdess": "/r"}}}
    assert data == {"training": {"lr": 1.0}, "name": "x"}, "the input is not modified"
    assert apply_overrides(data, None) == data
    with pytest.raises(ConfigError, match=r"--set name\.first=a: 'name' is a value, not a section"):
        apply_overrides(data, ["name.first=a"])


def test_config_error_is_a_user_error() -> None:
    assert issubclass(ConfigError, EmoshiftError) and issubclass(ConfigError, ValueError)


def test_unknown_key_names_the_closest_valid_one() -> None:
    assert unknown_key("lr_schedule", ["lr", "schedule"], parent=["training"]) == (
        "unknown config key 'training.lr_schedule'; did you mean 'training.schedule'? (valid here: lr, schedule)"
    )
    assert unknown_key("zzz", ["lr"], noun="feature setting", listing="known") == (
        "unknown feature setting 'zzz' (known: lr)"
    )


def test_fields_at_walks_into_sub_models_and_optionals() -> None:
    assert fields_at(Outer, ()) == ["name", "training", "maybe"]
    assert fields_at(Outer, ("training",)) == ["lr", "schedule"]
    assert fields_at(Outer, ("maybe",)) == ["lr", "schedule"]
    assert fields_at(Outer, ("name",)) == ["name", "training", "maybe"]  # a value: stays at the model


def _error(data: dict) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        Outer.model_validate(data)
    return info.value


def test_explain_unknown_key_and_bad_values() -> None:
    err = _error({"training": {"lr_schedule": "x"}})
    assert explain(err, Outer) == (
        "unknown config key 'training.lr_schedule'; did you mean 'training.schedule'? (valid here: lr, schedule)"
    )
    err = _error({"training": {"lr": "fast", "schedule": "linear"}})
    text = explain(err, Outer)
    assert text.startswith("training.lr: Input should be a valid number") and "(got 'fast')" in text
    assert "; training.schedule: Input should be 'cosine' or 'constant' (got 'linear')" in text
    inline = explain(err, Outer, values="inline")
    assert inline.startswith("training.lr='fast': Input should be a valid number")
    assert "\n" not in text + inline
