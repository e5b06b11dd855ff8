"""Traced graphs kept by structure, so that a network is traced once and not at every export.

``torch.onnx.export`` traces the network (``torch.export``, then its decompositions into core ATen ops, then the
translation to ONNX): about 10 s of CPU for the tiny ResNet of the tests, minutes for a speech transformer. Two
networks of one structure (the same modules with the same hyper-parameters, parameters and buffers of the same
names, shapes and dtypes) trace to the same graph and differ only in their weights: the folds and seeds of a
run, a run trained again with another learning rate or for more epochs, a run adapted with AdaBN. So the first
export keeps its graph, unoptimised, under ``$EMOSHIFT_CACHE/graphs/<key>.onnx`` (default
``~/.cache/emoshift``), and a later network of that structure gets a copy with its own weights put in
(``ONNXProgram.apply_weights``, the exporter's own way to swap weights), then optimised and saved as a fresh
trace is. ``emoshift export --retrace`` (``reuse_graph=False``) traces afresh and keeps the new graph.

- The key (:func:`structure_key`) hashes every module's class and attributes, every parameter's and buffer's
  name, shape and dtype, the input and output names and dynamic axes, the opset and the versions of torch,
  onnxscript and emoshift. A module attribute the key cannot write down exactly (a tensor that is not a
  registered buffer, an object without a stable repr) or a hook on a module makes the network one that is
  never kept: its graph could hold what the key does not see.
- A graph is kept only when each of its initializers is one of the network's parameters or buffers, so that
  putting in the new weights replaces every one of them (a constant computed while tracing would not be).
- The export's self-check (:mod:`emoshift.deploy.export`) holds every graph to the same parity with torch, kept
  or traced; a kept graph that fails it is traced afresh before the export refuses.
- The files are ONNX protobuf (data: nothing executes on load), written atomically; at most :data:`KEEP` are
  kept, the least recently used removed first.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import os
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from emoshift.core.io import atomic_open

KEEP = 16  # graphs kept in the cache folder
_MODULE_STATE = frozenset({  # nn.Module's own bookkeeping: what the key reads from it instead is below
    "training", "_parameters", "_buffers", "_non_persistent_buffers_set", "_modules", "_state_dict_hooks",
    "_state_dict_pre_hooks", "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks", "_compiled_call_impl",
})
_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
          "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks_with_kwargs",
          "_is_full_backward_hook")


class _Unkeyable(Exception):
    """An attribute the key cannot write down exactly."""


def cache_dir() -> Path:
    """Where graphs are kept: ``$EMOSHIFT_CACHE/graphs`` (the cache folder of features and embeddings)."""
    from emoshift.config.experiment import default_cache_dir

    return Path(default_cache_dir()) / "graphs"


def _plain(value: Any) -> str:
    """``value`` written down exactly and the same in every process (no addresses), or _Unkeyable."""
    if value is None or isinstance(value, (bool, int, float, str, bytes, enum.Enum)):
        return repr(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(map(_plain, value)) if isinstance(value, (set, frozenset)) else map(_plain, value)
        return f"{type(value).__name__}({', '.join(items)})"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_plain(k)}: {_plain(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType, type)):
        return f"{value.__module__}.{value.__qualname__}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = (f"{f.name}={_plain(getattr(value, f.name))}" for f in dataclasses.fields(value))
        return f"{type(value).__qualname__}({', '.join(fields)})"
    if hasattr(value, "model_dump_json"):  # a pydantic model (a config)
        return f"{type(value).__qualname__}({value.model_dump_json()})"
    if hasattr(value, "to_json_string"):  # a transformers PretrainedConfig (the SSL encoders')
        return f"{type(value).__qualname__}({value.to_json_string(use_diff=False)})"
    import torch

    if isinstance(value, (torch.dtype, torch.device, torch.Size)):
        return str(value)
    raise _Unkeyable(type(value).__qualname__)


def structure_key(model: Any, signature: str) -> str | None:
    """The hash of ``model``'s structure and ``signature`` (inputs, outputs, axes, opset), or None where the
    structure cannot be written down exactly (see the module docstring)."""
    import onnxscript
    import torch

    import emoshift

    parts = [signature, torch.__version__, onnxscript.__version__, emoshift.__version__]
    try:
        for name, module in model.named_modules():
            if any(getattr(module, h, None) for h in _HOOKS):
                return None
            attrs = sorted((k, _plain(v)) for k, v in vars(module).items() if k not in _MODULE_STATE and k not in _HOOKS)
            parts.append(f"{name}|{type(module).__module__}.{type(module).__qualname__}|{attrs}")
    except _Unkeyable:
        return None
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        parts.append(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def weights(model: Any) -> dict[str, Any]:
    """Every parameter and buffer of ``model`` by name (non-persistent buffers too: the graph holds them)."""
    return {**dict(model.named_parameters()), **dict(model.named_buffers())}


def load(key: str, model: Any) -> Any | None:
    """The kept graph of ``key`` with ``model``'s weights put in (a ``torch.onnx.ONNXProgram``), or None."""
    path = cache_dir() / f"{key}.onnx"
    if not path.is_file():
        return None
    import onnx_ir
    import torch

    try:
        graph = onnx_ir.load(str(path))
    except Exception:  # a file left by another version or a full disk: trace afresh, the new graph replaces it
        return None
    named = weights(model)
    if set(graph.graph.initializers) - set(named):
        return None
    os.utime(path)  # recently used
    program = torch.onnx.ONNXProgram(graph, None)
    program.apply_weights({k: named[k] for k in graph.graph.initializers})
    return program


def keep(key: str, program: Any, model: Any) -> bool:
    """Keep ``program``'s unoptimised graph under ``key`` when every initializer is one of ``model``'s weights;
    returns whether it was kept. A folder that cannot be written leaves the export as it was."""
    if set(program.model.graph.initializers) - set(weights(model)):
        return False
    import onnx_ir

    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_open(folder / f"{key}.onnx", "wb") as f:
            f.write(onnx_ir.to_proto(program.model).SerializeToString())
        for old in sorted(folder.glob("*.onnx"), key=lambda p: p.stat().st_mtime)[:-KEEP]:
            old.unlink(missing_ok=True)
    except (OSError, ValueError):  # a folder that cannot be written; a graph over protobuf's 2 GB
        return False
    return True
