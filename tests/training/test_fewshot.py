"""Few-shot target adaptation (``emoshift adapt --labelled-speakers K``, :mod:`emoshift.training.fewshot`): the K
speakers are chosen by seed and gender-balanced; only their labels are read to adapt (instrumented); only the
target's other speakers are scored; the adapted run is a normal run directory that names its adaptation."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from emoshift.cli import app
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
    return {"out": out, "reads": list(LabelSpy.reads), "info": info, "chosen": set(info["adapted"]["speakers"])}


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
    a = info["adapted"]
    assert (a["method"], a["corpus"], a["k"], a["seed"], a["held_back"], a["epochs"]) == ("few-shot", "crema-d", 2, 3,
                                                                                         6, 1)
    assert a["from"] == str(cnn_run.resolve()) and "temperature" not in info  # fitted for the unadapted model
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


# ------------------------------------------------------------------------------------------------ the acoustic family, the curve


@pytest.fixture(scope="module")
def curve(synth_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny eGeMAPS run on ravdess and its few-shot curve on crema-d (K 0 and 2; seeds 0 and 1), every head fit
    recorded with the speakers it was given."""
    from emoshift.config import load_config
    from emoshift.models.acoustic import AcousticBaseline
    from emoshift.training.train import train
    from tests.conftest import tiny_overrides

    tmp = tmp_path_factory.mktemp("fewshot-curve")
    cfg = load_config(overrides=[*tiny_overrides(synth_tiny, tmp / "cache"), "model.name=egemaps", "model.head=logreg"])
    run = train(cfg, tmp / "egemaps", progress=False)
    fits: list[list[str]] = []
    fit = AcousticBaseline.fit

    def recording_fit(head: Any, x: Any, y: Any, speakers: Any, **kw: Any) -> Any:
        fits.append(list(speakers))
        return fit(head, x, y, speakers, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(AcousticBaseline, "fit", recording_fit)
        res = CliRunner().invoke(app, ["adapt", str(run), "--on", f"crema-d={synth_tiny / 'crema-d'}", "--learning-curve",
                                       "2,0", "--seeds", "0,1", "-o", str(tmp / "curve"), "-q"])
    assert res.exit_code == 0, res.output
    result = json.loads((tmp / "curve" / "curve.json").read_text())
    return {"run": run, "out": tmp / "curve", "result": result, "fits": fits, "output": res.output}


def test_acoustic_head_refits_on_training_speakers_plus_the_k(curve: dict[str, Any]) -> None:
    run_speakers = set(json.loads((Path(curve["run"]) / "model.json").read_text())["training_speakers"])
    points = {p["k"]: p for p in curve["result"]["points"]}
    assert len(curve["fits"]) == 2  # K = 2, two seeds; K = 0 refits nothing
    wanted = [set(points[2]["adapted_on"][str(s)]) for s in (0, 1)]
    for speakers, k_speakers in zip(curve["fits"], wanted, strict=True):
        target = {s for s in speakers if s.startswith("crema-d/")}
        assert target == k_speakers  # the K speakers, and no held-back one
        assert set(speakers) - target == run_speakers  # with the run's training and validation speakers
    info = json.loads((curve["out"] / "runs" / "k2_s1" / "model.json").read_text())
    assert info["adapted"]["fit"].startswith("head refitted") and "epochs" not in info["adapted"]


def test_curve_scores_the_same_held_back_speakers_for_every_k(curve: dict[str, Any]) -> None:
    result, out = curve["result"], curve["out"]
    held = set(result["held_back"])
    assert len(held) == 6 and len(result["pool"]) == 2 and not held & set(result["pool"])
    assert [p["k"] for p in result["points"]] == [0, 2]
    for p in result["points"]:
        for path in p["runs"]:
            assert {r["speaker"] for r in read_csv(Path(path) / "predictions" / "crema-d.csv")} == held
        for chosen in p["adapted_on"].values():
            assert len(chosen) == p["k"] and set(chosen) <= set(result["pool"])
        assert p["speakers"] == 6 and p["ci95"] is not None and p["ci95"][0] <= p["uar"] <= p["ci95"][1]
        assert p["uar"] == pytest.approx(sum(p["per_seed"]) / len(p["per_seed"]))
    assert len(result["points"][0]["per_seed"]) == 1 and len(result["points"][1]["per_seed"]) == 2
    rows = read_csv(out / "curve.csv")
    assert [r["k"] for r in rows] == ["0", "2"] and list(rows[0])[:4] == ["k", "uar", "ci95_lo", "ci95_hi"]
    assert json.loads((out / "curve.json").read_text())["held_back"] == result["held_back"]
    assert (out / "curve.png").stat().st_size > 5000
    m0 = json.loads((out / "runs" / "k0" / "metrics" / "crema-d.json").read_text())
    assert m0["speakers"] == 6  # K = 0: the unadapted model on the same held-back speakers
    assert "K=0: UAR" in curve["output"] and "K=2: UAR" in curve["output"]


@pytest.mark.parametrize(("args", "message"), [
    (["--labelled-speakers", "7"], "crema-d has 8 speakers and at least 2 are held back to score, so K must be between 1 and 6"),
    (["--learning-curve", "0,1,7"], "K must be between 1 and 6"),
    (["--labelled-speakers", "0"], "--labelled-speakers must be at least 1"),
    (["--labelled-speakers", "2", "--learning-curve", "0,1"], "give one of --labelled-speakers K"),
    (["--method", "adabn", "--labelled-speakers", "2"], "give one or the other"),
    (["--learning-curve", "0,x"], "--learning-curve expects whole numbers"),
])
def test_bad_input_is_one_line_exit_2(cnn_run: Path, synth_tiny: Path, tmp_path: Path, args: list[str],
                                      message: str) -> None:
    res = CliRunner().invoke(app, ["adapt", str(cnn_run), "--on", f"crema-d={synth_tiny / 'crema-d'}",
                                   "-o", str(tmp_path / "out"), "-q", *args])
    assert res.exit_code == 2 and message in res.output and len(res.output.strip().splitlines()) == 1, res.output
    assert not (tmp_path / "out").exists()  # nothing written


def test_an_unknown_run_is_one_line_exit_2(synth_tiny: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["adapt", str(tmp_path / "nowhere"), "--on", f"crema-d={synth_tiny / 'crema-d'}",
                                   "--labelled-speakers", "2", "-o", str(tmp_path / "out")])
    assert res.exit_code == 2 and "is not a finished run directory" in res.output, res.output
