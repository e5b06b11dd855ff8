"""Soft-label training (``training.targets: soft``, issue 22 §4): the loss, the targets, the refusals, and a tiny
run on the synthetic CREMA-D-like corpus whose vote files are drawn around the rendered emotion."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from emoshift.cli import app
from emoshift.config import ConfigError, load_config
from emoshift.corpora import cremad
from emoshift.corpora.base import Utterance
from emoshift.data.targets import soft_target
from emoshift.evaluation.agreement import agreement_scores
from emoshift.models import CONFIG_CHECKS
from emoshift.training.objective import soft_cross_entropy
from tests.conftest import tiny_overrides


def _utt(emotion: str, votes: tuple[tuple[str, float], ...] | None) -> Utterance:
    return Utterance(id=f"x/{emotion}{votes}", path="/a.wav", corpus="x", speaker="x/1", gender=None,
                     emotion=emotion, native_label=emotion, votes=votes)


def test_soft_loss_equals_a_hand_computation() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 1.0]])
    q = torch.tensor([[0.7, 0.2, 0.1], [0.0, 0.25, 0.75]])
    w = torch.tensor([1.0, 2.0, 0.5])
    # by hand: log-softmax of each row, then -sum_c w_c q_c log p_c, averaged over the two rows
    rows = []
    for z, t in zip(logits.tolist(), q.tolist(), strict=True):
        log_norm = math.log(sum(math.exp(v) for v in z))
        rows.append(-sum(wc * tc * (zc - log_norm) for wc, tc, zc in zip(w.tolist(), t, z, strict=True)))
    assert float(soft_cross_entropy(logits, q, weight=w)) == pytest.approx(sum(rows) / 2, rel=1e-6)
    # label smoothing e: the target becomes (1 - e) q + e / C
    smoothed = 0.9 * q + 0.1 / 3
    assert float(soft_cross_entropy(logits, q, label_smoothing=0.1)) == pytest.approx(
        float(-(smoothed * torch.log_softmax(logits, -1)).sum(-1).mean()), rel=1e-6)


def test_soft_target_mixes_votes_with_the_label() -> None:
    labels = ["angry", "neutral", "sad"]
    u = _utt("angry", (("angry", 2.0), ("neutral", 6.0), ("happy", 2.0)))  # happy: not a label, dropped
    assert soft_target(u, labels, 0.0) == pytest.approx([0.25, 0.75, 0.0])
    assert soft_target(u, labels, 0.5) == pytest.approx([0.625, 0.375, 0.0])
    assert soft_target(_utt("sad", None), labels, 0.0) == [0.0, 0.0, 1.0]  # no votes: the one-hot label


def test_agreement_scores_against_an_independent_computation() -> None:
    from scipy.spatial.distance import jensenshannon
    from sklearn.metrics import balanced_accuracy_score

    labels = ["angry", "neutral", "sad"]
    votes = [(("angry", 9.0), ("neutral", 1.0)), (("neutral", 5.0), ("sad", 5.0)), (("sad", 8.0), ("angry", 2.0)),
             (("neutral", 4.0), ("angry", 3.0), ("sad", 3.0)), None]
    utts = [_utt(e, v) for e, v in zip(["angry", "neutral", "sad", "angry", "sad"], votes, strict=True)]
    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.5, 0.3], [0.6, 0.0, 0.4], [0.1, 0.6, 0.3], [0.3, 0.3, 0.4]])
    a = agreement_scores(utts, probs, labels)
    assert a is not None and (a["n"], a["without_votes"]) == (4, 1)
    r = np.array([[0.9, 0.1, 0.0], [0.0, 0.5, 0.5], [0.2, 0.0, 0.8], [0.3, 0.4, 0.3]])
    p = np.clip(probs[:4], 1e-12, None)
    assert a["cross_entropy"] == pytest.approx(np.mean([-(r[i] * np.log(p[i])).sum() for i in range(4)]))
    assert a["js_distance"] == pytest.approx(np.mean([jensenshannon(r[i], p[i], base=2) for i in range(4)]))
    # agreement 0.9, 0.5, 0.8, 0.4: median 0.65; high = clips 0 and 2 (both right), low = 1 (right) and 3 (wrong)
    assert (a["median_agreement"], a["n_high"], a["n_low"]) == (pytest.approx(0.65), 2, 2)
    assert a["uar_high"] == pytest.approx(balanced_accuracy_score(["angry", "sad"], ["angry", "angry"]))
    assert a["uar_low"] == pytest.approx(balanced_accuracy_score(["neutral", "angry"], ["neutral", "neutral"]))
    assert agreement_scores(utts[4:], probs[4:], labels) is None


def test_soft_targets_are_refused_where_they_cannot_apply(synth_tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="training.soft_mix mixes the hard label"):
        load_config(overrides=["training.soft_mix=0.3"])
    with pytest.raises(ConfigError, match="scikit-learn head: it trains on hard labels only"):
        load_config(overrides=["model.name=egemaps", "training.targets=soft"], checks=CONFIG_CHECKS)
    clips = sorted((synth_tiny / "crema-d" / "AudioWAV").glob("100[12]_*_[AS]*.wav"))[:6]  # no votes column
    rows = [f"{p},{cremad.LABEL_MAP[p.stem.split('_')[2]]},{p.stem[:4]}" for p in clips]
    (tmp_path / "t.csv").write_text("path,emotion,speaker\n" + "\n".join(rows) + "\n")
    res = CliRunner().invoke(app, ["train", "-c", f"mine={tmp_path / 't.csv'}", "-q", "-o", str(tmp_path / "r"),
                                   "--set", "training.targets=soft", "--set", f"data.cache_dir={tmp_path / 'c'}"])
    assert res.exit_code == 2, res.output
    assert "corpus 'mine' has no raters' votes: training.targets=soft needs them" in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_synthetic_crema_d_votes_are_drawn_around_the_rendered_emotion(synth_tiny: Path) -> None:
    utts = cremad.scan(synth_tiny / "crema-d").utterances
    assert all(u.votes is not None for u in utts)
    agreement = [max(c for _, c in u.votes or ()) / sum(c for _, c in u.votes or ()) for u in utts]
    majority = [max(u.votes or (), key=lambda v: v[1])[0] for u in utts]
    assert 0.55 < float(np.mean(agreement)) < 0.75  # CREMA-D-like: raters often disagree
    assert 0.7 < float(np.mean([m == u.emotion for m, u in zip(majority, utts, strict=True)])) < 0.97
    assert cremad.scan(synth_tiny / "crema-d").utterances == utts  # seeded: the same votes every time


def test_a_tiny_soft_label_run_trains_evaluates_and_reports_agreement(synth_tiny: Path, tmp_path: Path) -> None:
    from emoshift.training.train import train

    cfg = load_config(overrides=[*tiny_overrides(synth_tiny, tmp_path / "cache", corpora=("crema-d",)),
                                 "training.epochs=1", "training.targets=soft", "training.soft_mix=0.2",
                                 "evaluation.n_bootstrap=0"])
    run = train(cfg, tmp_path / "run", progress=False)
    metrics = json.loads((run / "metrics" / "crema-d.json").read_text())
    a = metrics["agreement"]
    assert a["n"] == metrics["n"] and a["without_votes"] == 0 and a["n_high"] + a["n_low"] == a["n"]
    assert 0.0 < a["js_distance"] < 1.0 and a["cross_entropy"] > 0.0
    done = json.loads((run / "done.json").read_text())
    assert done["targets"] == {"kind": "soft", "soft_mix": 0.2}
    card = (run / "README.md").read_text()
    assert "Targets: soft, the raters' vote distribution (hard-label weight 0.2)." in card
    assert f"| crema-d | {a['n']} | {a['cross_entropy']:.3f} | {a['js_distance']:.3f} |" in card
