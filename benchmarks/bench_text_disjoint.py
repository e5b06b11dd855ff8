"""What a text-disjoint split costs on the real corpora's layouts, and how much text a speaker split repeats.

    python benchmarks/bench_text_disjoint.py              # every layout, speaker split, 5-fold and LOSO
    python benchmarks/bench_text_disjoint.py --seeds 5    # the cost averaged over 5 split seeds

No audio is read: each corpus is rebuilt as the utterance list its documented layout gives (speakers, genders,
texts, takes; labels are irrelevant to a split), and ``emoshift.data.splits.make_split`` / ``make_folds`` run on
it exactly as training runs them. Per corpus and split method it prints

* ``overlap``: with ``disjoint: [speaker]`` (the default), the share of test utterances whose text a training or
  validation utterance says (``text_overlap`` before any model is trained);
* with ``disjoint: [speaker, text]``: the share of utterances the split keeps (train+val and test), the test
  utterances kept, and the refusal where the corpus cannot be split so.

The layouts (file counts as the corpora document them):

* RAVDESS speech: 24 actors (12 m, 12 f) x 60: 2 statements x 2 repetitions x (neutral; 7 emotions x 2 intensities).
* CREMA-D: 91 actors (48 m, 43 f) x 82: IEO at 3 levels for 5 emotions and XX for neutral, 11 sentences x 6
  emotions at XX (the real corpus lacks 20 of these 7,462 takes).
* EmoDB: 10 speakers (5 m, 5 f) x 10 texts x 7 emotions (700; the real corpus keeps 535 of them).
* TESS: 2 speakers (f) x 200 words x 7 emotions; the carrier phrase is the same in every file.
* SAVEE: 4 speakers (m) x 120 takes (15 sentence codes per emotion, 30 neutral).
* ESD: 20 speakers (10 Mandarin, 10 English; 5 f, 5 m each) x 5 emotions x 350 sentences of their language.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np

from emoshift.config.split import SplitConfig
from emoshift.corpora.base import Utterance
from emoshift.data.splits import Split, make_folds, make_split
from emoshift.data.texts import TextSplitError


def _u(corpus: str, speaker: str, gender: str, take: str, text: str) -> Utterance:
    return Utterance(id=f"{corpus}/{speaker}_{take}", path="", corpus=corpus, speaker=f"{corpus}/{speaker}",
                     gender=gender, emotion="neutral", native_label="", sentence=text)


def ravdess() -> list[Utterance]:
    out = []
    for a in range(1, 25):
        g = "male" if a % 2 else "female"
        for e in range(1, 9):
            for i in (1,) if e == 1 else (1, 2):
                for s in (1, 2):
                    for r in (1, 2):
                        out.append(_u("ravdess", f"{a:02d}", g, f"{e}{i}{s}{r}", f"statement {s}"))
    return out


def cremad() -> list[Utterance]:
    sentences = ["IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI"]
    out = []
    for a in range(91):
        g = "male" if a < 48 else "female"
        takes = [("IEO", e, lv) for e in ("ANG", "DIS", "FEA", "HAP", "SAD") for lv in ("LO", "MD", "HI")]
        takes += [("IEO", "NEU", "XX")] + [(s, e, "XX") for s in sentences[1:]
                                             for e in ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")]
        out += [_u("crema-d", str(1001 + a), g, f"{s}_{e}_{lv}", s) for s, e, lv in takes]
    return out


def emodb() -> list[Utterance]:
    texts = ["a01", "a02", "a04", "a05", "a07", "b01", "b02", "b03", "b09", "b10"]
    return [_u("emodb", f"{s:02d}", "male" if k < 5 else "female", f"{t}{e}", t)
            for k, s in enumerate((3, 10, 11, 12, 15, 8, 9, 13, 14, 16)) for t in texts for e in "WLEAFTN"]


def tess() -> list[Utterance]:
    return [_u("tess", s, "female", f"{w}_{e}", f"word {w}") for s in ("OAF", "YAF") for w in range(200)
            for e in range(7)]


def savee() -> list[Utterance]:
    codes = [(c, n) for c in ("a", "d", "f", "h", "sa", "su") for n in range(1, 16)] + [("n", n) for n in range(1, 31)]
    return [_u("savee", s, "male", f"{c}{n:02d}", f"SAVEE {c}{n:02d}") for s in ("DC", "JE", "JK", "KL")
            for c, n in codes]


def esd() -> list[Utterance]:
    out = []
    for k in range(20):
        lang, g = ("zh" if k < 10 else "en"), ("female" if k % 10 < 5 else "male")
        out += [_u("esd", f"{k + 1:04d}", g, f"{e}_{t}", f"{lang} sentence {t}") for e in range(5) for t in range(350)]
    return out


LAYOUTS: dict[str, Callable[[], list[Utterance]]] = {
    "ravdess": ravdess, "crema-d": cremad, "emodb": emodb, "tess": tess, "savee": savee, "esd": esd,
}
METHODS: dict[str, dict[str, object]] = {
    "speaker 70/15/15": {"method": "speaker"},
    "5-fold": {"method": "kfold", "k": 5},  # fewer where the corpus has fewer speakers
    "LOSO": {"method": "loso"},
}


def _splits(utts: list[Utterance], cfg: SplitConfig) -> list[Split]:
    return make_folds(utts, cfg) if cfg.method in ("kfold", "loso") else [make_split(utts, cfg)]


def _overlap(utts: list[Utterance], splits: list[Split]) -> float:
    said = {u.id: u.sentence for u in utts}
    hits = total = 0
    for s in splits:
        training = {said[i] for i, p in s.assignment.items() if p != "test"}
        tested = s.ids("test")
        hits, total = hits + sum(said[i] in training for i in tested), total + len(tested)
    return hits / total


def measure(name: str, method: str, seeds: int) -> list[str]:
    utts = LAYOUTS[name]()
    opts = dict(METHODS[method])
    if opts.get("k"):  # at most one fold per speaker (TESS: 2, SAVEE: 4)
        opts["k"] = min(int(opts["k"]), len({u.speaker for u in utts}))  # type: ignore[call-overload]
        method = f"{opts['k']}-fold"
    overlap, kept, test_kept = [], [], []
    for seed in range(seeds):
        plain = _splits(utts, SplitConfig(seed=seed, **opts))  # type: ignore[arg-type]
        overlap.append(_overlap(utts, plain))
        try:
            text = _splits(utts, SplitConfig(seed=seed, disjoint=["speaker", "text"], **opts))  # type: ignore[arg-type]
        except TextSplitError as e:
            return [name, method, f"{np.mean(overlap):.0%}", f"refused: {e}", "", ""]
        kept.append(np.mean([len(s.assignment) / len(utts) for s in text]))
        test_kept.append(sum(len(s.ids("test")) for s in text) / sum(len(s.ids("test")) for s in plain))
    return [name, method, f"{np.mean(overlap):.0%}", f"{np.mean(kept):.0%}", f"{np.mean(test_kept):.0%}",
            str(len(utts))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=1, help="split seeds to average over")
    parser.add_argument("--corpora", nargs="*", default=list(LAYOUTS))
    args = parser.parse_args()
    head = ["corpus", "split", "text overlap [speaker]", "kept [speaker, text]", "test kept", "utterances"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name in args.corpora:
        for method in METHODS:
            if name == "esd" and method == "LOSO":  # 20 x 1,750 takes: as 5-fold, only slower
                continue
            print("| " + " | ".join(measure(name, method, args.seeds)) + " |", flush=True)


if __name__ == "__main__":
    main()
