"""Behaviour every corpus loader shares, checked for each name in list_corpora() on its fake tree."""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import pytest

from emoshift.core import audio
from emoshift.corpora import (
    EMOTIONS,
    LABEL_POLICIES,
    CorpusError,
    canonical_name,
    get_corpus,
    list_corpora,
    scan,
)

from .fakes import BUILDERS, SECONDS, FakeCorpus


def test_every_registered_corpus_has_a_fake_builder() -> None:
    assert sorted(BUILDERS) == sorted(list_corpora())


def test_loader_module_contract(corpus_name: str) -> None:
    module = get_corpus(corpus_name)
    assert corpus_name == module.NAME
    assert module.LABEL_MAP, "LABEL_MAP must map native codes to canonical emotions"
    assert set(module.LABEL_MAP.values()) <= set(EMOTIONS)
    doc = inspect.getdoc(module) or ""
    for topic in ("Size", "Speakers", "Labels", "Licence", "Layout", "Quirks"):
        assert f"- {topic}" in doc, f"{corpus_name} docstring lacks the {topic} entry"
    params = inspect.signature(module.scan).parameters
    assert list(params)[:2] == ["root", "labels"]
    assert params["labels"].default == "six"
    for name in ("workers", "progress"):
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY


def test_quirks_are_skipped_with_reasons_and_strays_ignored(fake_corpus: FakeCorpus) -> None:
    result = scan(fake_corpus.name, str(fake_corpus.root), labels="native")

    assert {u.id for u in result.utterances} == set(fake_corpus.kept("native"))
    by_name = {Path(s.path).name: s.reason for s in result.skipped}
    assert {n: r.split(":", 1)[0] for n, r in by_name.items()} == fake_corpus.bad
    assert result.skipped_by_reason() == fake_corpus.skipped_by_reason()
    reasons = sorted(by_name.values())
    assert audio.LFS_REASON in reasons
    assert any(r.startswith("silent") for r in reasons)
    assert any(r.startswith("truncated") for r in reasons)
    seen = {u.path for u in result.utterances} | {s.path for s in result.skipped}
    assert not seen & {str(p) for p in fake_corpus.ignored}, "stray files must be ignored, not reported"
    assert all(not Path(p).name.startswith(".") for p in seen)


def test_utterance_fields(fake_corpus: FakeCorpus) -> None:
    module = get_corpus(fake_corpus.name)
    result = module.scan(fake_corpus.root, labels="native")
    assert result.corpus == fake_corpus.name
    assert result.root == str(fake_corpus.root.resolve())
    assert result.utterances == sorted(result.utterances, key=lambda u: u.id)
    for u in result.utterances:
        assert u.id == f"{fake_corpus.name}/{u.id.split('/', 1)[1]}"
        assert os.path.isabs(u.path) and Path(u.path).is_file()
        assert u.corpus == fake_corpus.name
        assert u.speaker.startswith(f"{fake_corpus.name}/")
        assert u.gender in ("male", "female")
        assert u.native_label in module.LABEL_MAP
        assert u.emotion == module.LABEL_MAP[u.native_label]
        assert u.duration_s == pytest.approx(SECONDS, abs=1e-3)


@pytest.mark.parametrize("policy", LABEL_POLICIES)
def test_label_policies(fake_corpus: FakeCorpus, policy: str) -> None:
    result = scan(fake_corpus.name, str(fake_corpus.root), labels=policy)
    assert {u.id: u.emotion for u in result.utterances} == fake_corpus.kept(policy)
    assert result.left_out == fake_corpus.left_out(policy)
    assert result.labels == policy


def test_unknown_policy_is_refused(corpus_name: str, tmp_path: Path) -> None:
    fake = BUILDERS[corpus_name](tmp_path / corpus_name)
    with pytest.raises(ValueError, match="unknown label policy 'seven'"):
        scan(corpus_name, str(fake.root), labels="seven")


def test_missing_or_empty_root_is_a_corpus_error(corpus_name: str, tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="does not exist"):
        scan(corpus_name, str(tmp_path / "nowhere"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CorpusError) as err:
        scan(corpus_name, str(empty))
    assert "\n" not in str(err.value) and corpus_name in str(err.value)


def test_another_corpus_tree_is_a_corpus_error(corpus_name: str, tmp_path: Path) -> None:
    for other in sorted(set(BUILDERS) - {corpus_name}):
        fake = BUILDERS[other](tmp_path / other)
        with pytest.raises(CorpusError, match=corpus_name):
            scan(corpus_name, str(fake.root))


def test_workers_and_progress_do_not_change_the_result(
    fake_corpus: FakeCorpus, capsys: pytest.CaptureFixture[str]
) -> None:
    module = get_corpus(fake_corpus.name)
    serial = module.scan(fake_corpus.root, workers=1)
    threaded = module.scan(fake_corpus.root, workers=4, progress=True)
    assert serial.utterances == threaded.utterances
    assert serial.skipped == threaded.skipped
    assert serial.left_out == threaded.left_out
    capsys.readouterr()
    with pytest.raises(ValueError, match="workers"):
        module.scan(fake_corpus.root, workers=0)


def test_a_file_that_vanishes_is_skipped_not_fatal(corpus_name: str, tmp_path: Path) -> None:
    """A dangling symlink with an audio name: unreadable, reported, and the scan goes on."""
    fake = BUILDERS[corpus_name](tmp_path / corpus_name)
    kept = scan(corpus_name, str(fake.root), labels="native").utterances
    victim = Path(kept[0].path)
    victim.unlink()
    victim.symlink_to(tmp_path / "gone.wav")
    result = scan(corpus_name, str(fake.root), labels="native")
    assert [s.path for s in result.skipped] == [str(victim)]
    assert result.skipped[0].reason.startswith("unreadable")
    assert len(result.utterances) == len(kept) - 1


def test_aliases_resolve() -> None:
    assert canonical_name("CREMA-D") == "crema-d"
    assert canonical_name("cremad") == "crema-d"
    assert canonical_name(" RAVDESS ") == "ravdess"
    with pytest.raises(KeyError, match="unknown corpus"):
        canonical_name("nosuch")
