"""Corpus registry: every loader is a module ``emoshift.corpora.<name>`` with ``scan(root, labels) -> Scan``.

The CLI, the feature cache, training and the tests all enumerate :func:`list_corpora`.
"""

from __future__ import annotations

import importlib
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

# registry name -> module name. Aliases accepted on input are in _ALIASES.
_CORPORA: dict[str, str] = {
    "ravdess": "ravdess",
    "crema-d": "cremad",
    "emodb": "emodb",
    "tess": "tess",
    "savee": "savee",
}
_ALIASES: dict[str, str] = {"cremad": "crema-d", "crema_d": "crema-d", "emo-db": "emodb"}

__all__ = [
    "EMOTIONS",
    "LABEL_POLICIES",
    "UTTERANCE_FIELDS",
    "CorpusError",
    "Scan",
    "ScanValidationError",
    "Skipped",
    "UnknownCorpusError",
    "Utterance",
    "canonical_name",
    "get_corpus",
    "list_corpora",
    "scan",
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
    return get_corpus(name).scan(root, labels=labels, **kwargs)
