"""The docs site builds strict (what `make docs` runs), its API reference covers the public API, and the strict build
fails on what it is there to catch: a public name that no longer exists and a broken link. CITATION.cff and the
package agree on the version."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import emoshift

ROOT = Path(__file__).resolve().parents[1]


def _build(root: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """`mkdocs build --strict` as `make docs` runs it (from the repository root: the snippets resolve there)."""
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)], cwd=root,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


def test_docs_build_strict_with_every_public_name(tmp_path: Path) -> None:
    res = _build(ROOT, tmp_path / "site")
    assert res.returncode == 0, res.stdout + res.stderr
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    for name in emoshift.__all__:
        module = emoshift._API[name]
        assert f'id="{module}.{name}"' in api, f"{name} has no entry on the API page"
    assert not re.search(r":(mod|class|func|meth):`", api), "a Sphinx role reached the page unconverted"
    guide = (tmp_path / "site" / "index.html").read_text()
    assert "Quick start" in guide and "Changelog" in (tmp_path / "site" / "changelog" / "index.html").read_text()


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("mkdocs.yml", "README.md", "CHANGELOG.md"):
        shutil.copy(ROOT / name, root / name)
    shutil.copytree(ROOT / "docs", root / "docs")
    shutil.copytree(ROOT / "src" / "emoshift", root / "src" / "emoshift", ignore=shutil.ignore_patterns("__pycache__"))
    return root


@pytest.mark.parametrize("breakage", ["stale API name", "broken link"])
def test_strict_build_fails_on(breakage: str, tmp_path: Path) -> None:
    root = _copy(tmp_path)
    if breakage == "stale API name":  # listed as public, defined nowhere
        init = root / "src" / "emoshift" / "__init__.py"
        text = init.read_text()
        text = text.replace('    "scan": "emoshift.corpora",', '    "scan": "emoshift.corpora",\n    "scan_all": "emoshift.corpora",')
        init.write_text(text.replace('    "scan",\n', '    "scan",\n    "scan_all",\n'))
        expected = "emoshift.corpora.scan_all"
    else:
        page = root / "docs" / "architecture.md"
        page.write_text(page.read_text() + "\nSee [the old page](layers.md).\n")
        expected = "layers.md"
    res = _build(root, tmp_path / "site")
    assert res.returncode != 0 and expected in res.stdout + res.stderr, res.stdout + res.stderr


def test_citation_is_cff_1_2_with_the_package_version() -> None:
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    assert {"message", "title", "authors"} <= set(cff) and cff["authors"]
    assert str(cff["version"]) == emoshift.__version__
