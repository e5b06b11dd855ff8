"""Where a corpus comes from: the *corpus source* that ``--corpus NAME=ROOT`` names.

ROOT is one of:

- a folder: a built-in corpus as distributed (``ravdess=/data/RAVDESS``), read by its loader module;
- a ``.csv`` / ``.jsonl`` table: a corpus of your own (:mod:`emoshift.corpora.table`);
- ``hf:PATH``: a Hugging Face dataset on disk, a ``save_to_disk`` folder or parquet/arrow files
  (:mod:`emoshift.corpora.from_hf`; needs ``pip install 'emoshift[hf]'``);
- ``lhotse:PATH``: lhotse recordings + supervisions manifests (:mod:`emoshift.corpora.from_lhotse`;
  ``pip install 'emoshift[lhotse]'``);
- ``audformat:PATH``: an audformat database folder, ``db.yaml`` plus tables
  (:mod:`emoshift.corpora.from_audformat`; ``pip install 'emoshift[audformat]'``).

Every source but a folder is a corpus of your own: its NAME is yours (never a built-in corpus's), and its rows
go through the same reader as a table (:func:`emoshift.corpora.table.scan_rows`): the column map
(``data.manifest.columns``), the label map (``data.label_map``), a speaker column or a refusal (unless
``data.split.allow_leak``), bad audio skipped with its reason, and every other column kept in ``meta``.
Code that must treat these corpora differently asks the :class:`CorpusSource` (``source_of(root)``), never
the suffix or prefix of ROOT.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Literal, cast

from emoshift.core.extras import MissingExtraError
from emoshift.corpora.base import CorpusError, Scan

SourceKind = Literal["folder", "table", "hf", "lhotse", "audformat"]
# ROOT prefix -> (kind, loader module, the extra that installs its library, the library's import name)
PREFIXES: dict[str, tuple[SourceKind, str, str, str]] = {
    "hf": ("hf", "from_hf", "hf", "datasets"),
    "lhotse": ("lhotse", "from_lhotse", "lhotse", "lhotse"),
    "audformat": ("audformat", "from_audformat", "audformat", "audformat"),
}


class MissingLibraryError(MissingExtraError, CorpusError):
    """A corpus source whose library is not installed; the message names the ``pip install`` that fixes it (the
    one missing-extra error of :mod:`emoshift.core.extras`, and a corpus error)."""


@dataclass(frozen=True)
class CorpusSource:
    """One ROOT of ``--corpus NAME=ROOT``: what kind of source it is and where it lies."""

    kind: SourceKind
    path: Path  # the location, ``~`` expanded (the prefix removed)
    spec: str  # ROOT as written

    @property
    def own(self) -> bool:
        """A corpus of your own (a table or an ecosystem source): NAME is the user's, not a registry name."""
        return self.kind != "folder"

    @property
    def module(self) -> str:
        """The loader module of an own source (``emoshift.corpora.<module>``)."""
        return "table" if self.kind == "table" else PREFIXES[self.kind][1]

    def missing(self) -> str | None:
        """Why ROOT cannot be read as this source before any library is imported (None: it is there)."""
        if self.kind == "table":
            return None if self.path.is_file() else "manifest table not found"
        if self.kind in ("folder", "audformat"):
            return None if self.path.is_dir() else "folder not found"
        return None if self.path.exists() else f"{self.kind} source not found"

    def loader(self, name: str) -> Callable[..., Scan]:
        """The ``scan`` function that reads this source as corpus ``name`` (a built-in loader for a folder)."""
        if self.kind == "folder":
            from emoshift.corpora import get_corpus

            return cast("Callable[..., Scan]", get_corpus(name).scan)
        return cast("Callable[..., Scan]", importlib.import_module(f"emoshift.corpora.{self.module}").scan)


def source_of(root: str | os.PathLike[str]) -> CorpusSource:
    """The corpus source ROOT names (see the module docstring for the forms)."""
    text = os.fspath(root)
    prefix, sep, rest = text.partition(":")
    if sep and prefix.strip().lower() in PREFIXES:
        if not rest.strip():
            raise CorpusError(f"{text!r}: {prefix}: needs a path after the colon, e.g. {prefix}:/data/mine")
        kind = PREFIXES[prefix.strip().lower()][0]
        return CorpusSource(kind, Path(rest.strip()).expanduser(), text)
    from emoshift.corpora.table import is_table

    path = Path(text).expanduser()
    return CorpusSource("table" if is_table(path) else "folder", path, text)


def require(kind: SourceKind) -> ModuleType:
    """The library a source needs, imported; MissingLibraryError (one line, the fix) when it is not installed."""
    _, _, extra, library = PREFIXES[kind]
    try:
        return importlib.import_module(library)
    except ModuleNotFoundError as e:
        if e.name is None or e.name.split(".")[0] != library:
            raise  # the library is there but broken: a traceback helps more than a hint
        raise MissingLibraryError(extra, library, f"a {kind} corpus source") from None
