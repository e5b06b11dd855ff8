"""Nothing the user did not create is unpickled or evaluated: the source is checked by its syntax tree."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "emoshift"
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader"}


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def unsafe_uses(source: str) -> list[str]:
    """``line: what`` for every unpickling, eval/exec or unsafe YAML/numpy/torch load in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"{node.lineno}: import {n}" for n in names if n.split(".")[0] in UNSAFE_MODULES]
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        if name in ("eval", "exec", "builtins.eval", "builtins.exec", "__import__"):
            found.append(f"{node.lineno}: {name}(")
        elif name == "torch.load":
            w = _kw(node, "weights_only")
            if not (isinstance(w, ast.Constant) and w.value is True):
                found.append(f"{node.lineno}: torch.load without weights_only=True")
        elif name in ("yaml.load", "yaml.load_all"):
            loader = _kw(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
            if loader is None or _dotted(loader).split(".")[-1] not in SAFE_YAML_LOADERS:
                found.append(f"{node.lineno}: {name} without a safe loader")
        elif name in ("yaml.unsafe_load", "yaml.full_load", "yaml.unsafe_load_all", "yaml.full_load_all"):
            found.append(f"{node.lineno}: {name}")
        elif name.split(".")[-1] == "load" and name.split(".")[0] in ("np", "numpy"):
            a = _kw(node, "allow_pickle")
            if a is not None and not (isinstance(a, ast.Constant) and a.value is False):
                found.append(f"{node.lineno}: np.load with allow_pickle")
    return found


def test_the_source_unpickles_and_evaluates_nothing() -> None:
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 50
    problems = [f"{p.relative_to(SRC)}:{u}" for p in files for u in unsafe_uses(p.read_text(encoding="utf-8"))]
    assert problems == []


@pytest.mark.parametrize(
    "snippet",
    [
        "import pickle",
        "from joblib import load",
        "import dill.settings",
        "x = eval(s)",
        "exec(code)",
        "torch.load(p)",
        "torch.load(p, weights_only=False)",
        "yaml.load(f)",
        "yaml.load(f, Loader=yaml.FullLoader)",
        "yaml.unsafe_load(f)",
        "np.load(p, allow_pickle=True)",
        "numpy.load(p, allow_pickle=flag)",
    ],
)
def test_the_check_catches_each_unsafe_use(snippet: str) -> None:
    assert unsafe_uses(snippet), snippet


@pytest.mark.parametrize(
    "snippet",
    ["model.eval()", "torch.load(p, weights_only=True)", "yaml.safe_load(f)", "yaml.load(f, Loader=yaml.SafeLoader)",
     "np.load(p, mmap_mode='r')", "np.load(p, allow_pickle=False)", "# import pickle"],
)
def test_the_check_lets_safe_uses_through(snippet: str) -> None:
    assert unsafe_uses(snippet) == []
