"""mkdocs hook (mkdocs.yml `hooks:`): the pages generated on every build.

- ``index.md`` (the guide) is README.md and ``changelog.md`` is CHANGELOG.md, one source each, their
  repository-relative links (``docs/recipes.md``, ``CHANGELOG.md``) turned into the site's (``recipes.md``); a link
  to anything else that is not a site page stays as it is, so the strict build fails on it.
- ``api.md`` from the public API table in ``src/emoshift/__init__.py``. The page has one ``::: module.name`` entry per public name (mkdocstrings renders its docstring and signature), grouped
by the package layer that defines it. The table is read with ``ast``, so building the docs imports nothing from
emoshift. A name the table lists that its module no longer defines fails the strict build (mkdocstrings cannot
collect it); a name in ``__all__`` that is missing from the table (or the reverse) fails it here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
INIT = ROOT / "src" / "emoshift" / "__init__.py"
PAGES = {"index.md": "README.md", "changelog.md": "CHANGELOG.md"}  # site page -> the repository file it shows
LINK = re.compile(r"(\]\()(?!https?:|mailto:|#)([^)\s]+)(\))")  # a Markdown link's target, not a URL or an anchor

# the layer a module belongs to -> its heading on the page (order of first appearance in the table)
HEADINGS = {
    "corpora": "Corpora",
    "features": "Features",
    "data": "Data and splits",
    "models": "Models",
    "config": "Configuration",
    "training": "Training",
    "evaluation": "Evaluation",
    "deploy": "Deployment",
    "study": "The study",
    "core": "Errors",
}


def public_api(init: Path = INIT) -> dict[str, str]:
    """``_API`` (public name -> defining module) from emoshift/__init__.py, checked against ``__all__``."""
    tree = ast.parse(init.read_text(encoding="utf-8"))
    api: dict[str, str] | None = None
    exported: list[str] | None = None
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else (node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id == "_API" and node.value is not None:
            api = ast.literal_eval(node.value)
        elif isinstance(target, ast.Name) and target.id == "__all__" and node.value is not None:
            exported = ast.literal_eval(node.value)
    if api is None or exported is None:
        raise PluginError(f"{init}: no _API table or no __all__ list to build the API reference from")
    if set(api) != set(exported):
        raise PluginError(f"{init}: __all__ and _API differ: {sorted(set(api) ^ set(exported))}")
    return api


def api_markdown(api: dict[str, str]) -> str:
    lines = [
        "# API reference",
        "",
        "The public API: every name `emoshift/__init__.py` exports. `import emoshift` loads nothing heavy; each name",
        "is imported on first use (`emoshift.train`, `emoshift.Predictor`, ...) and is also importable from the module",
        "that defines it, shown under each entry. This page is generated from the docstrings on every `make docs`.",
    ]
    current = None
    for name, module in api.items():
        layer = module.split(".")[1]
        heading = HEADINGS.get(layer, layer)
        if heading != current:
            lines += ["", f"## {heading}"]
            current = heading
        lines += ["", f"::: {module}.{name}", "", f"`from {module} import {name}`"]
    return "\n".join(lines) + "\n"


def site_link(target: str) -> str:
    """A repository-relative link in README/CHANGELOG as the site page it names: docs/x.md -> x.md."""
    path, sep, anchor = target.partition("#")
    pages = {repo: page for page, repo in PAGES.items()}
    path = pages.get(path, path.removeprefix("docs/"))
    return path + sep + anchor


def on_files(files: Files, config: Any) -> Files:
    for page, source in PAGES.items():
        text = (ROOT / source).read_text(encoding="utf-8")
        text = LINK.sub(lambda m: m.group(1) + site_link(m.group(2)) + m.group(3), text)
        files.append(File.generated(config, page, content=text))
    files.append(File.generated(config, "api.md", content=api_markdown(public_api())))
    return files
