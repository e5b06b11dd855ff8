"""Every registered corpus that records what its utterances say exposes it as ``sentence``, and text-disjoint
folds (``data.split.disjoint: [speaker, text]``) leave no test text in training on every one of them."""

from __future__ import annotations

from emoshift.config.split import SplitConfig
from emoshift.corpora import scan
from emoshift.data.splits import make_folds, make_split
from emoshift.data.texts import text_key

from .fakes import FakeCorpus


def test_corpus_exposes_its_texts(fake_corpus: FakeCorpus) -> None:
    sc = scan(fake_corpus.name, str(fake_corpus.root), labels="native")
    said = {u.id: u.sentence for u in sc.utterances}
    assert fake_corpus.texts, f"{fake_corpus.name}: the fake declares no texts"
    assert {uid: said[uid] for uid in fake_corpus.texts if uid in said} == {
        uid: t for uid, t in fake_corpus.texts.items() if uid in said
    }
    assert len(set(fake_corpus.texts) & set(said)) >= len(fake_corpus.texts) // 2
    # a text recurs across speakers: the overlap a speaker split cannot remove
    speakers_of: dict[str, set[str]] = {}
    for u in sc.utterances:
        if u.sentence:
            speakers_of.setdefault(u.sentence, set()).add(u.speaker)
    assert any(len(s) > 1 for s in speakers_of.values()), f"{fake_corpus.name}: no text said by two speakers"


def test_text_disjoint_folds_leave_no_test_text_in_training(fake_corpus: FakeCorpus) -> None:
    sc = scan(fake_corpus.name, str(fake_corpus.root), labels="native")
    by_id = {u.id: u for u in sc.utterances}
    cfg = SplitConfig(method="kfold", k=2, val_fraction=0.0, disjoint=["speaker", "text"])
    splits = [*make_folds(sc.utterances, cfg, corpus=fake_corpus.name),
              make_split(sc.utterances, SplitConfig(ratios=(0.5, 0.0, 0.5), stratify=None, disjoint=["speaker", "text"]))]
    for split in splits:
        test = {text_key(by_id[i].sentence) for i in split.ids("test")}
        training = {text_key(by_id[i].sentence) for i in (*split.ids("train"), *split.ids("val"))}
        assert split.ids("test") and split.ids("train")
        assert None not in test and not test & training, fake_corpus.name
        assert not set(split.speakers_of("test")) & set(split.speakers_of("train"))
        assert split.text_cost is not None
        assert split.text_cost.before - split.text_cost.total == len(split.assignment)
