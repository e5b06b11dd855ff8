"""Fixtures over every registered corpus: a fake tree with all the quirks, built fresh in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from emoshift.corpora import list_corpora

from .fakes import BUILDERS, FakeCorpus


@pytest.fixture(params=list_corpora())
def corpus_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fake_corpus(corpus_name: str, tmp_path: Path) -> FakeCorpus:
    """The corpus's fake tree with every quirk (bad files, strays) added."""
    if corpus_name not in BUILDERS:
        pytest.fail(f"tests/corpora/fakes.py has no builder for registered corpus {corpus_name!r}")
    return BUILDERS[corpus_name](tmp_path / corpus_name, quirks=True)
