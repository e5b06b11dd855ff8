"""Corpus registry: every loader is a module ``emoshift.corpora.<name>`` with ``scan(root, labels) -> Scan``.

The CLI, the feature cache, training and the tests all enumerate :func:`list_corpora`. A corpus of your own
comes from a corpus source (:mod:`emoshift.corpora.sources`): a manifest table, a Hugging Face dataset, lhotse
manifests or an audformat database; :func:`scan_source` reads any of them.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
from types import ModuleType

from emoshift.corpora.base import (
    EMOTIONS,
    LABEL_POLICIES,
    UTTERANCE_FIELDS,
    CorpusError,
    Scan,
    ScanValidationError,
    Skipped,
    UnknownCorpusError,
    Utterance,
    validate,
)
from emoshift.corpora.sources import CorpusSource, MissingLibraryError, source_of

# registry name -> module name. Aliases accepted on input are in _ALIASES.
_CORPORA: dict[str, str] = {
    "ravdess": "ravdess",
    "crema-d": "cremad",
    "emodb": "emodb",
    "tess": "tess",
    "savee": "savee",
    "iemocap": "iemocap",
    "msp-podcast": "msppodcast",
    "esd": "esd",
}
_ALIASES: dict[str, str] = {
    "cremad": "crema-d",
    "crema_d": "crema-d",
    "emo-db": "emodb",
    "msppodcast": "msp-podcast",
    "msp_podcast": "msp-podcast",
}

__all__ = [
    "EMOTIONS",
    "LABEL_POLICIES",
    "UTTERANCE_FIELDS",
    "CorpusError",
    "CorpusSource",
    "MissingLibraryError",
    "Scan",
    "ScanValidationError",
    "Skipped",
    "UnknownCorpusError",
    "Utterance",
    "canonical_name",
    "get_corpus",
    "list_corpora",
    "is_table",
    "resolve_name",
    "scan",
    "scan_source",
    "source_of",
    "validate",
]


def list_corpora() -> list[str]:
    return list(_CORPORA)


def canonical_name(name: str) -> str:
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _CORPORA:
        raise UnknownCorpusError(f"unknown corpus {name!r}; known corpora: {', '.join(_CORPORA)}")
    return key


def get_corpus(name: str) -> ModuleType:
    """The loader module for ``name`` (exposes ``scan``, ``LABEL_MAP``, ``NAME``)."""
    return importlib.import_module(f"emoshift.corpora.{_CORPORA[canonical_name(name)]}")


def scan(name: str, root: str, labels: str = "six", **kwargs: object) -> Scan:
    """Scan ``root`` as corpus ``name`` under label policy ``labels``; validated."""
    return _logged(get_corpus(name).scan(root, labels=labels, **kwargs))


def _logged(sc: Scan) -> Scan:
    """Each skipped file and its reason, at INFO on ``emoshift.corpora`` (``--verbose`` shows them)."""
    log = logging.getLogger("emoshift.corpora")
    for s in sc.skipped:
        log.info("skipped %s: %s", s.path, s.reason)
    return sc


def is_table(root: str | os.PathLike[str]) -> bool:
    """Whether ``root`` is a manifest table (``.csv`` / ``.jsonl``) rather than a corpus folder."""
    from emoshift.corpora.table import is_table as _is_table

    return _is_table(root)


def resolve_name(name: str, root: str | os.PathLike[str] | None = None) -> str:
    """The registry name of ``name``; a name outside the registry is accepted when ``root`` is a corpus of your
    own (a manifest table, ``hf:``, ``lhotse:`` or ``audformat:`` source).

    ``--corpus mydata=/data/mine.csv`` registers ``mydata`` from its manifest. KeyError (the known corpora
    listed) for an unknown name without such a source; TableError for one named like a built-in corpus.
    """
    try:
        return canonical_name(name)
    except KeyError:
        if root is not None and source_of(root).own:
            from emoshift.corpora.table import check_name

            return check_name(name)
        raise


def scan_source(name: str, root: str | os.PathLike[str], labels: str = "six", **options: object) -> Scan:
    """Scan corpus ``name`` at ``root``: a built-in loader for a folder, else the loader of its corpus source
    (a .csv/.jsonl manifest table, ``hf:PATH``, ``lhotse:PATH``, ``audformat:PATH``).

    ``options`` may hold every data option at once (``include_song``, ``labels_from``, ``columns``,
    ``label_map``, ``allow_leak``, ``cache_dir``, ``workers``, ``progress``, ...): each loader receives the ones
    its ``scan`` takes and the rest are ignored, so a caller can pass the whole data config for every corpus.
    """
    source = source_of(root)
    loader = source.loader(name)
    kwargs: dict[str, object] = {}
    if source.own:
        kwargs["name"] = resolve_name(name, root)
    accepted = inspect.signature(loader).parameters
    kwargs.update({k: v for k, v in options.items() if k in accepted and k not in ("root", "labels", "name")})
    return _logged(loader(source.path if source.kind != "folder" else root, labels=labels, **kwargs))
