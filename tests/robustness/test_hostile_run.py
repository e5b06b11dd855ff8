"""A corrupt or hostile model.json is refused with one line (a RunError), before anything is built from it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from emoshift.core.errors import EmoshiftError

CHANGES: list[tuple[str, Any]] = [
    ("format", "9"),
    ("format", 99),
    ("model", 42),
    ("model", "no-such-model"),
    ("model", None),
    ("labels", "angry,sad"),
    ("labels", []),
    ("labels", [1, 2]),
    ("labels", ["angry", "angry"]),
    ("n_mels", "many"),
    ("n_mels", -1),
    ("crop_s", "long"),
]


@pytest.fixture(scope="module")
def good_info(cnn_run: Path) -> dict[str, Any]:
    return json.loads((cnn_run / "model.json").read_text())


@pytest.mark.parametrize(("key", "value"), CHANGES, ids=[f"{k}={v!r}" for k, v in CHANGES])
def test_a_hostile_model_json_is_one_line(key: str, value: Any, cnn_run: Path, good_info: dict[str, Any],
                                          tmp_path: Path) -> None:
    from emoshift.models.weights import load_model

    if key not in good_info and key not in ("format", "model", "labels"):
        pytest.skip(f"this family's model.json has no {key!r}")
    run = tmp_path / "run"
    shutil.copytree(cnn_run, run)
    (run / "model.json").write_text(json.dumps({**good_info, key: value}))
    with pytest.raises(EmoshiftError) as e:
        load_model(run)
    assert "\n" not in str(e.value) and "model.json" in str(e.value)


@pytest.mark.parametrize("text", ["", "[1, 2]", "{not json", '"a string"', "{\"model\": " + "[" * 5000 + "]" * 5000 + "}"])
def test_a_model_json_that_is_not_an_object_is_one_line(text: str, cnn_run: Path, tmp_path: Path) -> None:
    from emoshift.models.weights import load_model

    run = tmp_path / "run"
    shutil.copytree(cnn_run, run)
    (run / "model.json").write_text(text)
    with pytest.raises(EmoshiftError) as e:
        load_model(run)
    assert "\n" not in str(e.value)
