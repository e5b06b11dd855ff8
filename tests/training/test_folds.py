"""Speaker cross-validation in one ``train``: pooled out-of-fold predictions, fold metrics, the fold ensemble,
resume per fold, corpus-defined folds, one fold only; on the acoustic family (seconds) and once on the CNN."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from emoshift.config import load_config
from emoshift.core.io import read_csv
from emoshift.deploy.predict import Predictor
from emoshift.training.pipeline import TrainError
from emoshift.training.train import train
from tests.conftest import tiny_overrides

K = 4  # the tiny synthetic RAVDESS has 8 actors: 2 test speakers per fold


def _acoustic(synth: Path, cache: Path, *extra: str) -> list[str]:
    return [
        *tiny_overrides(synth, cache),
        "model.name=egemaps",
        "model.head=logreg",
        "evaluation.corpora=[crema-d]",
        *extra,
    ]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One feature cache for the module: functionals are extracted once per corpus, as for the folds."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def cv_run(synth_tiny: Path, cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Temperature-scaled: each fold model fits its own on its validation speakers (the acoustic family's
    log-probabilities), so every test below also checks that the calibrated paths agree."""
    cfg = load_config(overrides=_acoustic(synth_tiny, cache, "data.split.method=kfold", f"data.split.k={K}",
                                          "evaluation.calibrate=temperature", "evaluation.figures=true"))
    return train(cfg, tmp_path_factory.mktemp("cv") / "run", progress=False)


def _metrics(run: Path, corpus: str) -> dict:
    return json.loads((run / "metrics" / f"{corpus}.json").read_text())


def _test_speakers(fold_run: Path) -> set[str]:
    return {r["speaker"] for r in read_csv(fold_run / "splits/ravdess.csv") if r["split"] == "test"}


def test_every_speaker_is_scored_once_by_a_fold_that_never_saw_it(cv_run: Path, synth_tiny: Path) -> None:
    from emoshift.corpora import scan

    rows = read_csv(cv_run / "predictions/ravdess.csv")
    utts = scan("ravdess", str(synth_tiny / "ravdess")).utterances
    assert sorted(r["id"] for r in rows) == sorted(u.id for u in utts)  # every utterance, exactly once
    by_speaker: dict[str, set[str]] = {}
    for r in rows:
        by_speaker.setdefault(r["speaker"], set()).add(r["fold"])
    assert set(by_speaker) == {u.speaker for u in utts} and all(len(f) == 1 for f in by_speaker.values())
    for i in range(K):
        fold_run = cv_run / "folds" / str(i)
        scored = {s for s, f in by_speaker.items() if f == {str(i)}}
        assert scored == _test_speakers(fold_run)
        seen = set(json.loads((fold_run / "model.json").read_text())["training_speakers"])
        assert not scored & seen
        assert (fold_run / "done.json").is_file()  # each fold is a normal, complete run
    info = json.loads((cv_run / "model.json").read_text())
    assert info["members"] == [f"folds/{i}" for i in range(K)]


def test_the_pooled_run_draws_the_figures_and_no_fold_does(cv_run: Path) -> None:
    """A fold writes its metrics and predictions but no figure: RUN/plots/ draws every fold's out-of-fold
    predictions at once (core.rundir.RunDir.draws_figures)."""
    names = {p.name for p in (cv_run / "plots").iterdir()}
    for corpus in ("ravdess", "crema-d"):
        assert {f"confusion_{corpus}.png", f"reliability_{corpus}.png", f"risk_coverage_{corpus}.png"} <= names
    assert ("curves.png" in names) == (cv_run / "log.csv").is_file()  # the closed-form head logs no epochs
    for i in range(K):
        fold_run = cv_run / "folds" / str(i)
        assert (fold_run / "metrics" / "ravdess.json").is_file() and (fold_run / "predictions" / "ravdess.csv").is_file()
        assert not (fold_run / "plots").exists()


def test_evaluation_figures_false_writes_every_file_but_the_figures(
    cv_run: Path, synth_tiny: Path, cache: Path, tmp_path: Path
) -> None:
    """``evaluation.figures: false`` (as the tests' tiny overrides set it): the same files as the run above, RUN/plots/
    aside; and the setting is not part of what the run trained (the same fingerprint)."""
    sets = _acoustic(synth_tiny, cache, "data.split.method=kfold", f"data.split.k={K}", "evaluation.calibrate=temperature")
    cfg = load_config(overrides=sets)
    assert cfg.evaluation.figures is False
    run = train(cfg, tmp_path / "run", progress=False)
    drawn = {p.relative_to(cv_run).as_posix() for p in cv_run.rglob("*") if p.is_file()}
    got = {p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()}
    assert got == {p for p in drawn if not p.startswith("plots/")} and not (run / "plots").exists()
    assert load_config(overrides=[*sets, "evaluation.figures=true"]).fingerprint() == cfg.fingerprint()
    assert json.loads((run / "done.json").read_text())["fingerprint"] == json.loads((cv_run / "done.json").read_text())["fingerprint"]


def test_pooled_and_fold_metrics_equal_sklearn(cv_run: Path) -> None:
    rows = read_csv(cv_run / "predictions/ravdess.csv")
    m = _metrics(cv_run, "ravdess")
    true, pred = [r["true"] for r in rows], [r["pred"] for r in rows]
    assert m["accuracy"] == pytest.approx(accuracy_score(true, pred), abs=1e-12)
    assert m["uar"] == pytest.approx(balanced_accuracy_score(true, pred), abs=1e-12)
    assert m["macro_f1"] == pytest.approx(f1_score(true, pred, average="macro"), abs=1e-12)
    assert m["speakers"] == 8 and m["ci95"] is not None and m["ci95_reason"] is None  # a bootstrap over 8
    assert [f["fold"] for f in m["folds"]] == list(range(K))
    for f in m["folds"]:
        part = [r for r in rows if r["fold"] == str(f["fold"])]
        t, p = [r["true"] for r in part], [r["pred"] for r in part]
        assert f["n"] == len(part) and f["speakers"] == len({r["speaker"] for r in part})
        assert f["accuracy"] == pytest.approx(accuracy_score(t, p), abs=1e-12)
        assert f["uar"] == pytest.approx(balanced_accuracy_score(t, p), abs=1e-12)
        assert f["macro_f1"] == pytest.approx(f1_score(t, p, average="macro"), abs=1e-12)
    uars = [f["uar"] for f in m["folds"]]
    assert m["fold_mean"]["uar"] == pytest.approx(np.mean(uars)) and m["fold_sd"]["uar"] == pytest.approx(np.std(uars, ddof=1))


def test_a_fold_with_two_test_speakers_has_no_interval(cv_run: Path) -> None:
    m = _metrics(cv_run / "folds" / "0", "ravdess")
    assert m["speakers"] == 2 and m["ci95"] is None
    assert m["ci95_reason"] == "2 test speakers: too few for a speaker bootstrap"


def test_other_corpora_are_scored_by_the_fold_ensemble(cv_run: Path) -> None:
    rows = {r["id"]: r for r in read_csv(cv_run / "predictions/crema-d.csv")}
    members = [{r["id"]: r for r in read_csv(cv_run / "folds" / str(i) / "predictions/crema-d.csv")} for i in range(K)]
    m = _metrics(cv_run, "crema-d")
    assert m["split"] == "all" and m["scored_by"].startswith("fold ensemble") and len(m["folds"]) == K
    labels = m["labels"]
    for uid, row in rows.items():
        mean = np.mean([[float(mem[uid][f"p_{lab}"]) for lab in labels] for mem in members], axis=0)
        np.testing.assert_allclose([float(row[f"p_{lab}"]) for lab in labels], mean, atol=2e-6)
    for f, i in zip(m["folds"], range(K), strict=True):  # each fold's own score on the corpus, beside the ensemble
        assert f["uar"] == pytest.approx(_metrics(cv_run / "folds" / str(i), "crema-d")["uar"], abs=1e-12)


def test_predict_with_the_ensemble_is_the_mean_of_its_members(cv_run: Path, synth_tiny: Path) -> None:
    clip = next((synth_tiny / "crema-d" / "AudioWAV").glob("*.wav"))
    got = Predictor(cv_run).predict_file(clip)
    each = [Predictor(cv_run / "folds" / str(i)).predict_file(clip).probabilities for i in range(K)]
    assert got.error is None and list(got.probabilities) == list(each[0])
    np.testing.assert_allclose(
        list(got.probabilities.values()), np.mean([list(p.values()) for p in each], axis=0), rtol=0, atol=1e-12
    )


def test_each_fold_model_is_calibrated_and_the_ensemble_averages_them(cv_run: Path) -> None:
    """Each member carries its own temperature (the pooled record none); the ensemble's probabilities on another
    corpus are the mean of the members' calibrated ones, and its uncalibrated scores those of the mean of the
    members' own probabilities."""
    from emoshift.core.rundir import RunDir
    from emoshift.core.task import softmax
    from emoshift.evaluation.calibration import calibration_scores

    temps = [RunDir.of(cv_run / "folds" / str(i)).info().temperature for i in range(K)]
    assert all(t is not None and t > 0 for t in temps) and RunDir.of(cv_run).info().temperature is None
    m = _metrics(cv_run, "crema-d")
    labels = m["labels"]
    members = [read_csv(cv_run / "folds" / str(i) / "predictions/crema-d.csv") for i in range(K)]
    own = np.mean([softmax(t * np.log(np.maximum([[float(r[f"p_{lab}"]) for lab in labels] for r in rows], 1e-300)))
                   for t, rows in zip(temps, members, strict=True)], axis=0)
    y = np.array([labels.index(r["true"]) for r in members[0]])
    want = calibration_scores(own, y)  # from the CSVs' 6 decimals: a clip on a bin edge may change bins
    got = m["calibration"]["uncalibrated"]
    assert got["brier"] == pytest.approx(want["brier"], abs=1e-3)
    assert got["nll"] == pytest.approx(want["nll"], rel=1e-2)  # a probability rounded to 1e-6 moves its log
    assert got["ece"] == pytest.approx(want["ece"], abs=2e-2)
    assert m["calibration"]["temperature"] is None and m["ece"] is not None
    assert _metrics(cv_run, "ravdess")["calibration"]["uncalibrated"] is not None  # out of fold: each its own


def test_resume_skips_complete_folds_and_gives_the_same_pooled_metrics(
    cv_run: Path, synth_tiny: Path, cache: Path, tmp_path: Path
) -> None:
    run = tmp_path / "copy"
    shutil.copytree(cv_run, run)
    before = _metrics(run, "ravdess")
    # killed between folds: fold 3 never started, nothing pooled yet
    shutil.rmtree(run / "folds" / "3")
    for p in (run / "done.json", run / "model.json", run / "metrics" / "ravdess.json"):
        p.unlink()
    stamps = {i: os.stat(run / "folds" / str(i) / "done.json").st_mtime_ns for i in range(3)}
    cfg = load_config(overrides=_acoustic(synth_tiny, cache, "data.split.method=kfold", f"data.split.k={K}",
                                          "evaluation.calibrate=temperature"))  # cv_run's config
    train(cfg, run, progress=False)
    assert {i: os.stat(run / "folds" / str(i) / "done.json").st_mtime_ns for i in range(3)} == stamps  # skipped
    after = _metrics(run, "ravdess")
    for key in ("accuracy", "uar", "macro_f1", "ci95", "folds", "fold_mean", "fold_sd", "confusion"):
        assert after[key] == before[key], key


def test_one_fold_only_is_a_normal_run(synth_tiny: Path, cache: Path, tmp_path: Path) -> None:
    from emoshift.corpora import scan
    from emoshift.data.splits import kfold_speaker_splits

    cfg = load_config(overrides=_acoustic(synth_tiny, cache, "data.split.method=kfold", f"data.split.k={K}",
                                          "data.split.fold=2"))
    run = train(cfg, tmp_path / "run", progress=False)
    assert not (run / "folds").exists() and (run / "model.safetensors").is_file()
    utts = scan("ravdess", str(synth_tiny / "ravdess")).utterances
    assert _test_speakers(run) == set(kfold_speaker_splits(utts, k=K)[2].speakers_of("test"))
    # the acoustic family through train -> evaluate -> predict: predict gives the evaluated probabilities
    rows = read_csv(run / "predictions/ravdess.csv")
    got = Predictor(run).predict_file(rows[0]["path"])
    np.testing.assert_allclose(
        [got.probabilities[k[2:]] for k in rows[0] if k.startswith("p_")],
        [float(rows[0][k]) for k in rows[0] if k.startswith("p_")],
        atol=2e-6,
    )


# ------------------------------------------------------------------------------------------------ per-corpus k


def test_unequal_k_per_corpus_scores_every_speaker_once(synth_tiny: Path, cache: Path, tmp_path: Path) -> None:
    """k: {ravdess: 4, crema-d: 2}: 4 fold runs; CREMA-D is tested in runs 0-1 and only trains in runs 2-3."""
    from emoshift.corpora import scan

    sets = [*tiny_overrides(synth_tiny, cache, corpora=("ravdess", "crema-d")), "model.name=egemaps",
            "model.head=logreg", "data.split.method=kfold", "data.split.k={ravdess: 4, crema-d: 2}"]
    run = train(load_config(overrides=sets), tmp_path / "run", progress=False)
    info = json.loads((run / "model.json").read_text())
    assert info["members"] == [f"folds/{i}" for i in range(4)]
    for corpus, k in (("ravdess", 4), ("crema-d", 2)):
        utts = scan(corpus, str(synth_tiny / corpus)).utterances
        rows = read_csv(run / f"predictions/{corpus}.csv")
        assert sorted(r["id"] for r in rows) == sorted(u.id for u in utts)  # every utterance, exactly once
        fold_of: dict[str, set[str]] = {}
        for r in rows:
            fold_of.setdefault(r["speaker"], set()).add(r["fold"])
        assert set(fold_of) == {u.speaker for u in utts} and all(len(f) == 1 for f in fold_of.values())
        assert {f for fs in fold_of.values() for f in fs} == {str(i) for i in range(k)}
        for i in range(4):
            member = run / "folds" / str(i)
            seen = set(json.loads((member / "model.json").read_text())["training_speakers"])
            scored = {s for s, f in fold_of.items() if f == {str(i)}}
            assert not scored & seen  # scored by a model that never saw them
            tested = {r["speaker"] for r in read_csv(member / f"splits/{corpus}.csv") if r["split"] == "test"}
            assert tested == scored
            if i >= k:  # training-only: every speaker of the corpus trained (or validated) this fold's model
                assert {u.speaker for u in utts} <= seen and not (member / f"metrics/{corpus}.json").exists()
        assert [f["fold"] for f in _metrics(run, corpus)["folds"]] == list(range(k))


def test_per_corpus_k_must_cover_the_training_corpora(synth_tiny: Path, cache: Path, tmp_path: Path) -> None:
    from emoshift.config import ConfigError

    base = [*tiny_overrides(synth_tiny, cache, corpora=("ravdess", "crema-d")), "data.split.method=kfold"]
    with pytest.raises(ConfigError, match="no fold count for training corpus 'crema-d'"):
        load_config(overrides=[*base, "data.split.k={ravdess: 4}"])
    with pytest.raises(ConfigError, match="data.split.k names 'ravdes'"):
        load_config(overrides=[*base, "data.split.k={ravdes: 4, crema-d: 2}"])
    with pytest.raises(TrainError, match="data.split.k.crema-d is 9 but the corpus has 8 speakers"):
        train(load_config(overrides=[*base, "model.name=egemaps", "data.split.k={ravdess: 4, crema-d: 9}"]),
              tmp_path / "run", progress=False)


# ------------------------------------------------------------------------------------------------ corpus folds


def _manifest(synth: Path, path: Path, fold_of) -> Path:  # type: ignore[no-untyped-def]
    """A manifest of the synthetic RAVDESS files with a ``fold`` column from ``fold_of(actor, index)``."""
    from emoshift.corpora import scan

    utts = scan("ravdess", str(synth / "ravdess")).utterances
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "emotion", "speaker", "gender", "fold"])
        for i, u in enumerate(utts):
            actor = int(u.speaker.rsplit("/", 1)[-1])
            w.writerow([u.path, u.emotion, f"spk{actor:02d}", u.gender or "", fold_of(actor, i)])
    return path


def _table_run(cache: Path, tmp: Path, table: Path, *extra: str) -> Path:
    sets = [
        "data.corpora=[mine]",
        f"data.roots.mine={table}",
        f"data.cache_dir={cache}",
        "model.name=egemaps",
        "model.head=logreg",
        "evaluation.n_bootstrap=100",
        "trainer.progress=false",
        *extra,
    ]
    return train(load_config(overrides=sets), tmp / "run", progress=False)


def test_corpus_folds_from_a_manifest_like_iemocap_sessions(synth_tiny: Path, cache: Path, tmp_path: Path) -> None:
    table = _manifest(synth_tiny, tmp_path / "m.csv", lambda actor, i: f"Session{(actor + 1) // 2}")
    run = _table_run(cache, tmp_path, table, "data.split.method=corpus")
    m = _metrics(run, "mine")
    assert len(m["folds"]) == 4 and m["leaky"] is False and m["n"] == 96
    rows = read_csv(run / "predictions/mine.csv")
    assert len({r["id"] for r in rows}) == 96
    for i in range(4):  # fold i tests Session i+1: its two speakers, unseen by fold i's model
        tested = {r["speaker"] for r in rows if r["fold"] == str(i)}
        assert tested == {f"mine/spk{2 * i + 1:02d}", f"mine/spk{2 * i + 2:02d}"}
        seen = json.loads((run / "folds" / str(i) / "model.json").read_text())["training_speakers"]
        assert not tested & set(seen)


def test_corpus_folds_that_share_speakers_are_labelled_leaky(synth_tiny: Path, cache: Path, tmp_path: Path) -> None:
    table = _manifest(synth_tiny, tmp_path / "m.csv", lambda actor, i: ["train", "test"][i % 2])  # ESD-like
    run = _table_run(cache, tmp_path, table, "data.split.method=corpus")
    assert _metrics(run, "mine")["leaky"] is True
    assert json.loads((run / "model.json").read_text())["leaky_split"] is True


def test_corpus_split_without_folds_is_one_clear_line(synth_tiny: Path, cache: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainError, match="defines no folds") as err:
        _table_run(cache, tmp_path, _manifest(synth_tiny, tmp_path / "m.csv", lambda a, i: ""),
                   "data.split.method=corpus")
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------------------------------------ a neural family


def test_cnn_folds_pool_and_predict(synth_tiny: Path, tmp_path: Path) -> None:
    cfg = load_config(overrides=[*tiny_overrides(synth_tiny, tmp_path / "cache"), "training.epochs=1",
                                 "data.split.method=kfold", "data.split.k=2"])
    run = train(cfg, tmp_path / "run", progress=False)
    rows = read_csv(run / "predictions/ravdess.csv")
    assert len(rows) == 96 and {r["fold"] for r in rows} == {"0", "1"}
    clip = rows[0]["path"]
    each = [Predictor(run / "folds" / str(i)).predict_file(clip).probabilities for i in range(2)]
    got = Predictor(run).predict_file(clip).probabilities
    np.testing.assert_allclose(list(got.values()), np.mean([list(p.values()) for p in each], axis=0), atol=1e-9)



def test_each_fold_model_scores_each_utterance_once(
    synth_tiny: Path, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fold's evaluation (its test speakers, the other corpora) and the pooled one after the folds share one
    memo: every fold model runs on each utterance once, not once per evaluation (issue 24)."""
    from emoshift.evaluation import inference

    seen: list[tuple[int, str]] = []
    real = inference.raw_outputs

    def counting(model: object, info: object, utterances: list, **kwargs: object) -> object:
        seen.extend((id(model), u.id) for u in utterances)
        return real(model, info, utterances, **kwargs)

    monkeypatch.setattr(inference, "raw_outputs", counting)
    k = 2
    cfg = load_config(overrides=_acoustic(synth_tiny, cache, "data.split.method=kfold", f"data.split.k={k}"))
    run = train(cfg, tmp_path / "run", progress=False)
    tested = len(read_csv(run / "predictions/ravdess.csv"))  # every speaker once, out of fold
    others = len(read_csv(run / "predictions/crema-d.csv"))  # each fold model on every utterance
    assert len(seen) == tested + k * others
    # and the pooled metrics are those of the memoised outputs: the same as scoring the folds afresh
    before = _metrics(run, "ravdess")["uar"], _metrics(run, "crema-d")["uar"]
    monkeypatch.setattr(inference, "raw_outputs", real)
    from emoshift.evaluation.evaluate import evaluate_run

    evaluate_run(run, {"ravdess": str(synth_tiny / "ravdess"), "crema-d": str(synth_tiny / "crema-d")},
                 progress=False, cache_dir=str(cache))
    assert (_metrics(run, "ravdess")["uar"], _metrics(run, "crema-d")["uar"]) == before


def _fold_parts(fold_run: Path) -> dict[str, str]:
    return {r["id"]: r["split"] for r in read_csv(fold_run / "splits/ravdess.csv")}


def test_text_overlap_is_counted_per_fold_against_its_own_training_texts(cv_run: Path, synth_tiny: Path) -> None:
    """The pooled ``text_overlap`` by hand: each fold's test utterances against that fold's train/val texts."""
    from emoshift.corpora import scan

    said = {u.id: u.sentence for u in scan("ravdess", str(synth_tiny / "ravdess")).utterances}
    hits = total = 0
    for i in range(K):
        parts = _fold_parts(cv_run / "folds" / str(i))
        training = {said[u] for u, p in parts.items() if p != "test"}
        tested = [u for u, p in parts.items() if p == "test"]
        hits, total = hits + sum(said[u] in training for u in tested), total + len(tested)
    assert _metrics(cv_run, "ravdess")["text_overlap"] == pytest.approx(hits / total)
    assert hits == total  # both RAVDESS statements are said by every actor: a speaker split repeats them all
    assert _metrics(cv_run, "crema-d")["text_overlap"] == 0.0  # sentence codes no RAVDESS actor says


def test_text_disjoint_folds_score_no_training_text(synth_tiny: Path, cache: Path, tmp_path: Path) -> None:
    from emoshift.corpora import scan

    cfg = load_config(overrides=_acoustic(synth_tiny, cache, "data.split.method=kfold", f"data.split.k={K}",
                                          "data.split.disjoint=[speaker, text]"))
    run = train(cfg, tmp_path / "run", progress=False)
    said = {u.id: u.sentence for u in scan("ravdess", str(synth_tiny / "ravdess")).utterances}
    m = _metrics(run, "ravdess")
    assert m["text_overlap"] == 0.0 and m["n"] < len(said)  # the price: utterances that would cross are left out
    for i in range(K):
        parts = _fold_parts(run / "folds" / str(i))
        test = {said[u] for u, p in parts.items() if p == "test"}
        assert test and not test & {said[u] for u, p in parts.items() if p != "test"}
        cost = json.loads((run / "folds" / str(i) / "done.json").read_text())["text_disjoint"]["ravdess"]
        assert cost["of"] - sum(cost["left_out"].values()) == len(parts) and cost["test_texts"] == 1
