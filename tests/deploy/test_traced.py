"""Traced graphs kept by structure (emoshift.deploy.traced): a run whose network has the structure of one already
exported gets that graph with its own weights put in, and the file is the one a fresh trace writes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from safetensors.numpy import load_file, save_file
from torch import nn

from emoshift.deploy import traced


def _retrained(run: Path, out: Path) -> Path:
    """A copy of ``run`` with other weights and another temperature: a run of the same structure."""
    shutil.copytree(run, out)
    for f in [out / "model.safetensors", *out.glob("folds/*/model.safetensors")]:
        weights = load_file(f)
        rng = np.random.default_rng(1)
        save_file({k: (v * (1 + 0.2 * rng.standard_normal(v.shape))).astype(v.dtype) if "convolution.weight" in k
                   else v for k, v in weights.items()}, f)
    record = json.loads((out / "model.json").read_text())
    record["temperature"] = 1.37
    (out / "model.json").write_text(json.dumps(record))
    return out


def _graph(path: Path) -> tuple[list[str], list[np.ndarray]]:
    proto = onnx.load(str(path))
    return [n.op_type for n in proto.graph.node], [numpy_helper.to_array(t) for t in proto.graph.initializer]


def test_a_run_of_the_same_structure_gets_the_kept_graph_with_its_own_weights(
    exported: tuple[Path, dict], tmp_path: Path
) -> None:
    from emoshift.deploy.export import export_runs

    run = _retrained(exported[0], tmp_path / "run")  # other weights, another temperature
    report = export_runs([run], tmp_path / "reused.onnx", max_files=4)
    # reused, and its own weights and temperature went in: else its parity with torch would fail
    assert report["graph"] == "reused" and report["parity"]["ok"] and report["parity"]["max_abs_diff"] <= 1e-4
    (ops_a, w_a), (ops_b, w_b) = _graph(tmp_path / "reused.onnx"), _graph(exported[0] / "model.onnx")
    assert ops_a == ops_b and not all(np.array_equal(x, y) for x, y in zip(w_a, w_b, strict=True))


def test_a_kept_graph_that_fails_the_self_check_is_traced_afresh_and_reuse_writes_what_a_trace_writes(
    exported: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from emoshift.deploy.export import export_runs
    from emoshift.deploy.graph import build_serving_model

    run = _retrained(exported[0], tmp_path / "run")
    stale, _ = build_serving_model([exported[0]])  # the other run's weights: a graph that computes something else
    load = traced.load
    monkeypatch.setattr(traced, "load", lambda key, model: load(key, stale))
    report = export_runs([run], tmp_path / "traced.onnx", max_files=4)
    assert report["graph"] == "traced" and report["parity"]["ok"]
    monkeypatch.undo()
    # the fresh trace was kept: the same run again reuses it, and the file is the traced one, op for op and
    # weight for weight
    again = export_runs([run], tmp_path / "reused.onnx", max_files=4)
    assert again["graph"] == "reused"
    (ops_a, w_a), (ops_b, w_b) = _graph(tmp_path / "reused.onnx"), _graph(tmp_path / "traced.onnx")
    assert ops_a == ops_b and len(w_a) == len(w_b) and all(np.array_equal(x, y) for x, y in zip(w_a, w_b, strict=True))


class _Net(nn.Module):
    def __init__(self, width: int = 4, scale: float = 2.0) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, width, 3)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * self.scale


def test_the_key_is_the_structure_not_the_weights() -> None:
    a, b = _Net(), _Net()
    assert not torch.equal(a.conv.weight, b.conv.weight)
    key = traced.structure_key(a, "sig")
    assert key is not None and key == traced.structure_key(b, "sig")
    assert key != traced.structure_key(a, "other inputs")
    assert key != traced.structure_key(_Net(width=5), "sig")  # another shape
    assert key != traced.structure_key(_Net(scale=3.0), "sig")  # another constant in the graph
    odd = _Net()
    odd.offset = torch.ones(1)  # a tensor that is no buffer: traced as a constant the key cannot see
    assert traced.structure_key(odd, "sig") is None
    hooked = _Net()
    hooked.conv.register_forward_hook(lambda m, i, o: o * 2)
    assert traced.structure_key(hooked, "sig") is None


def test_an_unwritable_cache_leaves_the_export_as_it_was(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("EMOSHIFT_CACHE", str(blocker))
    graph = SimpleNamespace(model=SimpleNamespace(graph=SimpleNamespace(initializers={})))  # what keep() reads first
    assert traced.keep("k", graph, _Net()) is False
    assert traced.load("k", _Net()) is None
