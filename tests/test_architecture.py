"""The layering in docs/architecture.md, checked: imports point one way, no module imports a layer below it
(lazy imports inside functions count too), no import circles, and the torch-free modules stay torch-free."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "emoshift"

# rank of each top-level part of the package: a module may import only parts of equal or lower rank
LAYERS = {
    "core": 0,
    "corpora": 1,
    "synth": 2,  # needs only core and corpora
    "data": 2,
    "features": 3,
    "models": 4,
    "config": 5,
    "evaluation": 6,
    "training": 7,
    "deploy": 8,
    "study": 8,
    "cli": 9,
}
TORCH_FREE = [
    "emoshift",
    "emoshift.core.rundir",
    "emoshift.core.io",
    "emoshift.core.progress",
    "emoshift.evaluation.audit",
    "emoshift.evaluation.compare",
    "emoshift.study.report",
    "emoshift.study.launch",
]


def _modules() -> dict[str, Path]:
    out = {}
    for p in SRC.rglob("*.py"):
        rel = p.relative_to(SRC.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODULES = _modules()


def _imports(path: Path, *, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.If) and top_level_only:  # `if TYPE_CHECKING:` blocks are not run
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("emoshift"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("emoshift"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES)
    return {m for m in found if m in MODULES}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def _type_checking_only(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in ast.walk(node):
                if isinstance(sub, ast.ImportFrom) and sub.module:
                    out.add(sub.module)
    return out


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m) is not None))
def test_imports_point_down(module: str) -> None:
    path = MODULES[module]
    own = _layer(module)
    assert own is not None
    typing_only = _type_checking_only(path)
    upward = sorted(
        m
        for m in _imports(path, top_level_only=False)
        if m not in typing_only and (_layer(m) or 0) > own
    )
    assert not upward, f"{module} (layer {own}) imports higher layers: {upward}"


def test_no_import_circles() -> None:
    graph = {m: _imports(p, top_level_only=True) - {m} for m, p in MODULES.items()}
    # a package's __init__ importing its own submodules is not a circle of concern; edges into a package
    # mean "its __init__ runs", so they stay
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if n.startswith(m + "."):  # package importing its own submodule
                continue
            if state.get(n) == 1:
                cycle = stack[stack.index(n) :] + [n]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


@pytest.mark.parametrize("module", TORCH_FREE)
def test_torch_free_modules(module: str) -> None:
    code = f"import sys, {module}; print(sorted(m for m in ('torch', 'transformers', 'lightning') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"importing {module} loads {out.strip()}"
