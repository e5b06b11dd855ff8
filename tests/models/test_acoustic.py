"""Acoustic baselines: the stored arrays reproduce scikit-learn's probabilities, a reloaded model gives identical
ones, nothing is pickled, per-speaker normalisation does what it says, the family describes itself."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.metrics import balanced_accuracy_score

from emoshift.models import CONFIG_CHECKS, family_of
from emoshift.models.acoustic import AcousticBaseline, AcousticError, HeadConfig

LABELS = ["angry", "happy", "neutral", "sad"]


def _data(seed: int = 0, n_speakers: int = 8, per_class: int = 6, dim: int = 12, offset_sd: float = 3.0):
    """Class means in feature space, plus a per-speaker offset (voice/channel) that per-speaker z-scoring removes."""
    means = np.random.default_rng(1234).normal(0, 1.0, (len(LABELS), dim))  # the same classes in every set
    rng = np.random.default_rng(seed)
    x, y, spk = [], [], []
    for s in range(n_speakers):
        offset = rng.normal(0, offset_sd, dim)
        for c, label in enumerate(LABELS):
            x.append(means[c] + offset + rng.normal(0, 0.8, (per_class, dim)))
            y += [label] * per_class
            spk += [f"spk{s:02d}"] * per_class
    return np.concatenate(x).astype(np.float32), y, spk


@pytest.mark.parametrize("head", ["svm", "logreg"])
@pytest.mark.parametrize("normalise", ["global", "speaker"])
def test_probabilities_equal_sklearn_and_survive_save_and_load(tmp_path, head, normalise):
    x, y, spk = _data()
    labels = ["sad", "neutral", "happy", "angry", "calm"]  # the model's order; "calm" never seen in training
    model = AcousticBaseline(HeadConfig(head=head, normalise=normalise), labels=labels).fit(x, y, spk)
    xt, yt, st = _data(seed=1, n_speakers=3)
    proba = model.predict_proba(xt, st)
    assert proba.shape == (len(xt), 5) and np.allclose(proba.sum(axis=1), 1.0)
    assert np.all(proba[:, labels.index("calm")] == 0.0)

    ref = model._estimator.predict_proba(model.standardise(xt, st))  # sklearn's own, columns = sorted classes
    assert list(model._estimator.classes_) == sorted(LABELS)
    cols = [labels.index(c) for c in model._estimator.classes_]
    np.testing.assert_allclose(proba[:, cols], ref, rtol=0, atol=1e-9)
    if head == "svm":
        assert isinstance(model._estimator, CalibratedClassifierCV)
        assert len(model._estimator.calibrated_classifiers_) == 3

    model.save(tmp_path / "m")
    back = AcousticBaseline.load(tmp_path / "m")
    np.testing.assert_array_equal(back.predict_proba(xt, st), proba)  # identical, not merely close
    np.testing.assert_array_equal(back.predict_proba(xt), model.predict_proba(xt))
    assert back.labels == labels and back.config == model.config
    meta = json.loads((tmp_path / "m" / "acoustic.json").read_text())
    assert meta["feature_set"] == "egemaps" and meta["config"]["head"] == head
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["acoustic.json", "acoustic.safetensors"]
    blob = (tmp_path / "m" / "acoustic.safetensors").read_bytes()  # safetensors: u64 header size + JSON header
    header = json.loads(blob[8 : 8 + int.from_bytes(blob[:8], "little")])
    assert header["scaler.mean"]["dtype"] == "F64" and header["scaler.mean"]["shape"] == [12]


def test_binary_problems_are_stored_exactly(tmp_path):
    x, y, spk = _data(seed=3)
    keep = [i for i, label in enumerate(y) if label in ("angry", "sad")]
    xb, yb, sb = x[keep], [y[i] for i in keep], [spk[i] for i in keep]
    for head in ("svm", "logreg"):
        model = AcousticBaseline(HeadConfig(head=head)).fit(xb, yb, sb)
        ref = model._estimator.predict_proba(model.standardise(xb))
        np.testing.assert_allclose(model.predict_proba(xb), ref, rtol=0, atol=1e-9)
        model.save(tmp_path / head)
        np.testing.assert_array_equal(AcousticBaseline.load(tmp_path / head).predict_proba(xb), model.predict_proba(xb))


def test_per_speaker_normalisation_removes_speaker_offsets():
    x, y, spk = _data(seed=5, offset_sd=6.0)
    xt, yt, st = _data(seed=6, n_speakers=4, offset_sd=6.0)
    scores = {}
    for normalise in ("global", "speaker"):
        model = AcousticBaseline(HeadConfig(head="logreg", normalise=normalise)).fit(x, y, spk)
        scores[normalise] = balanced_accuracy_score(yt, model.predict(xt, st))
    assert scores["speaker"] > scores["global"] + 0.1, scores
    model = AcousticBaseline(HeadConfig(normalise="speaker")).fit(x, y, spk)
    z = model.standardise(xt, st)
    first = np.array(st) == st[0]
    np.testing.assert_allclose(z[first].mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(z[first].std(axis=0), 1.0, atol=1e-9)
    # without speaker ids: the training statistics
    raw = np.asarray(xt, dtype=np.float64)
    scale = np.asarray(x, dtype=np.float64).std(axis=0)
    np.testing.assert_allclose(model.standardise(xt), (raw - np.asarray(x, np.float64).mean(axis=0)) / scale)


def test_bad_input_is_one_clear_error(tmp_path):
    x, y, spk = _data()
    with pytest.raises(AcousticError, match="not fitted"):
        AcousticBaseline().predict_proba(x)
    with pytest.raises(AcousticError, match="at least two labels"):
        AcousticBaseline().fit(x, ["angry"] * len(x), spk)
    with pytest.raises(AcousticError, match="rows but y has"):
        AcousticBaseline().fit(x, y[:-1], spk)
    model = AcousticBaseline(HeadConfig(head="logreg")).fit(x, y, spk)
    with pytest.raises(AcousticError, match="columns but the model was fitted on 12"):
        model.predict_proba(x[:, :5])
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(AcousticError, match="NaN"):
        model.predict_proba(bad)
    with pytest.raises(AcousticError, match="not found"):
        AcousticBaseline.load(tmp_path / "nothing")
    with pytest.raises(AcousticError, match="not among the model's labels"):
        AcousticBaseline(labels=["angry", "sad"]).fit(x, y, spk)


def test_registered_models_build_their_heads_and_features():
    from emoshift.config import load_config
    from emoshift.models import get_model, get_spec

    assert {get_spec(n).input_kind for n in ("egemaps", "compare")} == {"functionals"}
    assert get_model("compare", num_labels=3).functionals.dim == 6373
    built = get_model("egemaps", num_labels=3, speaker_norm=True)
    assert built.functionals.dim == 88 and built.baseline.feature_set == "egemaps"
    assert built.baseline.config.head == "svm" and built.baseline.config.normalise == "speaker"
    assert get_model("compare", num_labels=3, head="logreg").baseline.config.head == "logreg"
    cfg = load_config(overrides=["model.name=egemaps", "model.head=logreg"])
    family = family_of(cfg.model.name, cfg.model.mode)
    assert family.name == "acoustic" and family.builder_kwargs(cfg.model) == {"head": "logreg", "speaker_norm": False,
                                                                                  "domain_norm": False}
    with pytest.raises(Exception, match="model.head"):
        load_config(overrides=["model.name=egemaps", "model.head=mlp"])
    with pytest.raises(Exception, match="teacher"):
        load_config(overrides=["model.name=egemaps", "training.distill.teacher=/nowhere"], checks=CONFIG_CHECKS)


def test_corpus_normalisation_standardises_each_corpus_with_its_own_statistics(tmp_path) -> None:
    """normalise: corpus (model.domain_norm: corpus): each named corpus z-scored with its own statistics, the
    scaler the training corpora's pooled ones (each corpus weighing the same), set_scaler what adapt sets."""
    from emoshift.features.domain_norm import row_moments

    x, y, spk = _data(n_speakers=4)
    x = x.astype(np.float64)
    shifted = x * 2.0 + 10.0  # a second corpus: another recording chain
    xs, ys, ss = np.concatenate([x, shifted]), y + y, spk + [f"b/{s}" for s in spk]
    doms = ["a"] * len(x) + ["b"] * len(x)
    model = AcousticBaseline(HeadConfig(head="logreg", normalise="corpus")).fit(xs, ys, ss, domains=doms)
    a, b = row_moments(x), row_moments(shifted)
    z = model.standardise(xs, None, domains=doms)
    np.testing.assert_allclose(z[: len(x)], (x - a.mean) / a.std, rtol=1e-9)
    np.testing.assert_allclose(z[len(x):], z[: len(x)], atol=1e-9)  # the chain is gone
    arrays, _ = model.state()
    np.testing.assert_allclose(arrays["scaler.mean"], (a.mean + b.mean) / 2)
    # a corpus scored with its own statistics, then the same rows through the scaler set to them: equal
    own = model.predict_proba(shifted, None, domains=["c"] * len(x))
    model.set_scaler(b.mean, b.std)
    np.testing.assert_allclose(model.predict_proba(shifted), own, rtol=1e-9)
    with pytest.raises(AcousticError, match="domains"):
        AcousticBaseline(HeadConfig(normalise="corpus")).fit(xs, ys, ss)
