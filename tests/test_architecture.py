"""The layering in docs/architecture.md, checked on every import the code makes: at module level, inside
functions and under ``if TYPE_CHECKING:`` alike (a relative import resolved; ``import a.b.c`` also runs the
packages ``a`` and ``a.b``). No module imports a layer below it, no two modules import each other through any
chain (a registry package's ``__init__`` and its plug-in modules aside, each named below), no private name
crosses a module, the torch-free modules the page lists stay torch-free, and no module or function outgrows
its limit."""

from __future__ import annotations

import ast
import re
import sys
from functools import cache
from pathlib import Path

import pytest

from tests.imports import heavy_loaded

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "emoshift"
DOC = ROOT / "docs" / "architecture.md"

# rank of each top-level part of the package: a module may import only parts of equal or lower rank
LAYERS = {
    "core": 0,
    "corpora": 1,
    "config": 2,
    "synth": 2,  # needs only core and corpora
    "data": 3,
    "features": 4,
    "models": 5,
    "evaluation": 6,
    "training": 7,
    "deploy": 8,
    "study": 8,
    "cli": 9,
}
# A registry package's __init__ loads its plug-in modules, which look it up (get_model) or register into it:
# the plug-in -> registry edge, and only that, does not make a circle.
REGISTRIES: dict[str, tuple[str, ...]] = {
    "emoshift.models": (
        "emoshift.models.cnn_nets",
        "emoshift.models.ssl",
        "emoshift.models.ssl_registry",
        "emoshift.models.families",
        "emoshift.models.families.acoustic",
        "emoshift.models.families.base",
        "emoshift.models.families.cnn",
        "emoshift.models.families.ssl",
    ),
    "emoshift.models.families": (
        "emoshift.models.families.acoustic",
        "emoshift.models.families.base",
        "emoshift.models.families.cnn",
        "emoshift.models.families.ssl",
    ),
}
# A circle another change removes, listed so that this test passes meanwhile and fails on any other circle, and
# on that one once it is gone (none now: issue 19 moved the Trainer and the LightningModule to training/).
PENDING_CIRCLES: set[frozenset[str]] = set()
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80  # decorators included


def _modules() -> dict[str, Path]:
    out = {}
    for p in SRC.rglob("*.py"):
        parts = list(p.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODULES = _modules()


def _target(module: str, node: ast.ImportFrom) -> str | None:
    """The absolute module an ``from X import ...`` names (a relative import resolved against ``module``)."""
    if not node.level:
        return node.module
    base = module.split(".")
    if MODULES[module].name != "__init__.py":
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _known(name: str) -> str | None:
    """``name`` or the nearest enclosing module of it that exists (``emoshift.x.y.Name`` -> ``emoshift.x.y``)."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name if name in MODULES else None


@cache
def imports(module: str) -> frozenset[str]:
    """Every emoshift module ``module`` imports anywhere (module level, functions, TYPE_CHECKING), with the
    packages each import runs first (``emoshift.a.b`` runs ``emoshift.a``), its own ancestors left out."""
    direct: set[str] = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            direct.update(k for a in node.names if a.name.startswith("emoshift") and (k := _known(a.name)))
        elif isinstance(node, ast.ImportFrom):
            target = _target(module, node)
            if not target or not target.startswith("emoshift"):
                continue
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
            direct.update(subs)
            if (target in MODULES or not subs) and (k := _known(target)) is not None:
                direct.add(k)
    out: set[str] = set()
    for name in direct:
        parts = name.split(".")
        for i in range(2, len(parts) + 1):
            runs = ".".join(parts[:i])
            if runs in MODULES and runs != module and not module.startswith(runs + "."):
                out.add(runs)
    return frozenset(out)


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def _registry_edge(a: str, b: str) -> bool:
    """A plug-in looking up (or registering into) its registry: ``a`` a plug-in module of registry ``b``."""
    return a in REGISTRIES.get(b, ())


def import_circles() -> set[frozenset[str]]:
    """The strongly connected components (more than one module) of the import graph, registry edges aside."""
    graph = {m: sorted(n for n in imports(m) if not _registry_edge(m, n)) for m in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[frozenset[str]] = set()
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.add(frozenset(component))

    for m in sorted(graph):
        if m not in index:
            visit(m)
    return found


# ------------------------------------------------------------------------------------------------ the graph
def test_the_graph_sees_lazy_and_type_checking_imports() -> None:
    assert "emoshift.training.folds" in imports("emoshift.training.train")  # module level
    assert "emoshift.evaluation.evaluate" in imports("emoshift.study.plan")  # inside a function
    assert "emoshift.config" in imports("emoshift.data.augment")  # only under TYPE_CHECKING
    assert "emoshift.corpora" in imports("emoshift.config.split")  # a package's __init__ runs first


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m) is not None))
def test_imports_point_down(module: str) -> None:
    own = _layer(module)
    assert own is not None
    upward = sorted(m for m in imports(module) if (_layer(m) or 0) > own)
    assert not upward, f"{module} (layer {own}) imports higher layers, even if only for typing: {upward}"


def test_no_import_circles() -> None:
    found = import_circles()
    new = sorted(sorted(c) for c in found - PENDING_CIRCLES)
    assert not new, "import circles (function-level and TYPE_CHECKING imports count): " + "; ".join(
        " <-> ".join(c) for c in new
    )
    gone = sorted(sorted(c) for c in PENDING_CIRCLES - found)
    assert not gone, f"circles no longer there: remove them from PENDING_CIRCLES: {gone}"


def test_no_private_name_crosses_a_module() -> None:
    """``from a import _x`` (a name, not a module) between two modules; a package's private modules (its
    ``_scanning``) are imported inside that package only."""
    crossing = []
    for module, path in sorted(MODULES.items()):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or not (target := _target(module, node)):
                continue
            if not target.startswith("emoshift"):
                continue
            for a in node.names:
                name = f"{target}.{a.name}"
                if a.name.startswith("_") and not a.name.startswith("__") and name not in MODULES:
                    crossing.append(f"{module}: from {target} import {a.name}")
                elif a.name.startswith("_") and not module.startswith(target + "."):
                    crossing.append(f"{module}: private module {name} from outside its package")
    assert not crossing, crossing


# ------------------------------------------------------------------------------------------------ torch-free
def documented_torch_free() -> list[str]:
    """The modules docs/architecture.md lists under "Torch-free modules"."""
    text = DOC.read_text(encoding="utf-8")
    section = re.search(r"^## Torch-free modules\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert section, "docs/architecture.md has no '## Torch-free modules' section"
    return re.findall(r"^- `(emoshift[\w.]*)`", section.group(1), re.M)


TORCH_FREE = documented_torch_free()


def test_the_documented_list_names_the_modules_that_must_be_torch_free() -> None:
    must = {"emoshift", "emoshift.config", "emoshift.study.spec", "emoshift.evaluation.audit", "emoshift.study.report",
            "emoshift.core.rundir"}
    assert must <= set(TORCH_FREE), sorted(must - set(TORCH_FREE))
    assert all(m in MODULES for m in TORCH_FREE), [m for m in TORCH_FREE if m not in MODULES]


@pytest.mark.parametrize("module", TORCH_FREE)
def test_torch_free_modules(module: str) -> None:
    """Imported alone in a fresh interpreter, the module loads none of torch, transformers, lightning (the
    documented list is checked in one interpreter first: tests/imports.py)."""
    loaded = heavy_loaded(module, together=tuple(TORCH_FREE))
    assert loaded == [], f"importing {module} loads {loaded}"


# ------------------------------------------------------------------------------------------------ sizes
def test_no_module_or_function_outgrows_its_limit() -> None:
    too_long = []
    for module, path in sorted(MODULES.items()):
        text = path.read_text(encoding="utf-8")
        if (n := len(text.splitlines())) > MAX_MODULE_LINES:
            too_long.append(f"{module}: {n} lines (max {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                if (n := (node.end_lineno or start) - start + 1) > MAX_FUNCTION_LINES:
                    too_long.append(f"{module}.{node.name}: {n} lines (max {MAX_FUNCTION_LINES})")
    assert not too_long, too_long
