"""Few-shot target adaptation (``emoshift adapt --labelled-speakers K``, :mod:`emoshift.training.fewshot`): the K
speakers are chosen by seed and gender-balanced; only their labels are read to adapt (instrumented); only the
target's other speakers are scored; the adapted run is a normal run directory that names its adaptation."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from emoshift.core.io import read_csv
from emoshift.corpora.base import Utterance
from emoshift.training import fewshot
from emoshift.training.fewshot import AdaptError, adapt_few_shot, check_k, speaker_order

SLOT = Utterance.__dict__["emotion"]  # the label's slot, read through the spy below


class LabelSpy(Utterance):
    """An utterance that records whose label is read (``emotion``), into the class-level ``reads``."""

    __slots__ = ()
    reads: list[tuple[str, str]] = []  # (phase, speaker)  # noqa: RUF012
    phase = "adapt"

    @property  # type: ignore[override]
    def emotion(self) -> str:
        LabelSpy.reads.append((LabelSpy.phase, self.speaker))
        return str(SLOT.__get__(self, Utterance))

    @emotion.setter
    def emotion(self, value: str) -> None:
        SLOT.__set__(self, value)


def spied(u: Utterance) -> LabelSpy:
    return LabelSpy(**{f.name: SLOT.__get__(u, Utterance) if f.name == "emotion" else getattr(u, f.name)
                       for f in dataclasses.fields(u)})


# ------------------------------------------------------------------------------------------------ choosing


def test_speaker_order_is_deterministic_per_seed_and_gender_balanced() -> None:
    genders = {f"c/{i}": ("male" if i < 4 else "female") for i in range(8)}
    orders = {seed: speaker_order(genders, seed) for seed in range(6)}
    assert all(speaker_order(genders, s) == o for s, o in orders.items())  # the same seed, the same speakers
    assert len({tuple(o) for o in orders.values()}) > 1  # another seed, other speakers
    for order in orders.values():
        assert sorted(order) == sorted(genders)
        for k in range(1, 9):  # every K: as many women as men, one apart
            men = sum(genders[s] == "male" for s in order[:k])
            assert abs(men - (k - men)) <= 1, (k, order)
    uneven = {**{f"c/m{i}": "male" for i in range(6)}, "c/f0": "female", "c/f1": "female"}
    first4 = speaker_order(uneven, 1)[:4]
    assert sum(uneven[s] == "female" for s in first4) == 2  # balanced as far as the corpus allows
    unknown = {f"c/{i}": None for i in range(5)}
    assert sorted(speaker_order(unknown, 0)) == sorted(unknown)  # no gender: one group


def test_k_must_leave_two_speakers_to_score() -> None:
    check_k(6, 8, "crema-d")
    with pytest.raises(AdaptError, match="between 1 and 6") as e:
        check_k(7, 8, "crema-d")
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------------------------------------ adapting


@pytest.fixture(scope="module")
def adapted(cnn_run: Path, synth_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The tiny CNN run adapted to crema-d on K=2 speakers (1 epoch), every label read of crema-d recorded with
    the phase it was read in (adapting, or scoring)."""
    out = tmp_path_factory.mktemp("fewshot") / "adapted"
    scan_for_run, evaluate_run = fewshot.scan_for_run, fewshot.evaluate_run

    def spy_scan(*a: Any, **k: Any) -> Any:
        sc = scan_for_run(*a, **k)
        return dataclasses.replace(sc, utterances=[spied(u) for u in sc.utterances])

    def scoring(*a: Any, **k: Any) -> Any:
        LabelSpy.phase = "score"
        return evaluate_run(*a, **k)

    LabelSpy.reads, LabelSpy.phase = [], "adapt"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fewshot, "scan_for_run", spy_scan)
        mp.setattr(fewshot, "evaluate_run", scoring)
        adapt_few_shot(cnn_run, "crema-d", str(synth_tiny / "crema-d"), 2, out, seed=3, epochs=1, progress=False,
                       sources=False)
    info = json.loads((out / "model.json").read_text())
    return {"out": out, "reads": list(LabelSpy.reads), "info": info, "chosen": set(info["adaptation"]["speakers"])}


def test_reads_no_label_beyond_the_k_speakers_and_scores_only_the_others(adapted: dict[str, Any]) -> None:
    out, chosen, reads = adapted["out"], adapted["chosen"], adapted["reads"]
    split = read_csv(out / "splits" / "crema-d.csv")
    held = {r["speaker"] for r in split if r["split"] == "test"}
    assert {r["speaker"] for r in split if r["split"] == "train"} == chosen and len(chosen) == 2
    assert len(held) == 6 and not held & chosen
    adapting = {spk for phase, spk in reads if phase == "adapt"}
    assert adapting == chosen  # the recorder saw the labels the fine-tuning read: those of the K speakers only
    assert not {spk for phase, spk in reads if phase == "score"} & chosen  # scoring never reads an adapted-on one
    scored = {r["speaker"] for r in read_csv(out / "predictions" / "crema-d.csv")}
    assert scored == held
    metrics = json.loads((out / "metrics" / "crema-d.json").read_text())
    assert (metrics["split"], metrics["speakers"], metrics["leaky"]) == ("test", 6, False)


def test_the_adapted_run_names_its_adaptation(adapted: dict[str, Any], cnn_run: Path, synth_tiny: Path) -> None:
    from emoshift.deploy.predict import Predictor

    out, info = adapted["out"], adapted["info"]
    genders = {r["speaker"]: r["gender"] for r in read_csv(out / "predictions" / "crema-d.csv")}
    a = info["adaptation"]
    assert (a["method"], a["corpus"], a["k"], a["seed"], a["held_back"], a["epochs"]) == ("few-shot", "crema-d", 2, 3,
                                                                                         6, 1)
    assert a["from_run"] == str(cnn_run.resolve()) and "temperature" not in info  # fitted for the unadapted model
    assert info["train_corpora"] == ["ravdess", "crema-d"] and adapted["chosen"] <= set(info["training_speakers"])
    assert not adapted["chosen"] & set(genders)
    card = (out / "README.md").read_text()
    assert "Adapted (few-shot) to crema-d" in card and all(s in card for s in adapted["chosen"])
    assert "| crema-d | test" in card
    wav = sorted((synth_tiny / "crema-d").rglob("*.wav"))[0]
    assert Predictor(out).predict_file(wav).label in info["labels"]  # a normal run: predict uses it


def test_the_same_seed_chooses_the_same_speakers_and_a_finished_run_is_kept(
    adapted: dict[str, Any], cnn_run: Path, synth_tiny: Path
) -> None:
    out = adapted["out"]
    stamp = (out / "done.json").stat().st_mtime_ns
    adapt_few_shot(cnn_run, "crema-d", str(synth_tiny / "crema-d"), 2, out, seed=3, epochs=1, progress=False,
                   sources=False)
    assert (out / "done.json").stat().st_mtime_ns == stamp  # the same adaptation: nothing done again
    with pytest.raises(AdaptError, match="not empty"):  # another one is refused, not mixed in
        adapt_few_shot(cnn_run, "crema-d", str(synth_tiny / "crema-d"), 1, out, seed=3, progress=False)
