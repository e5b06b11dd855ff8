"""Dimensional (regression) heads for every registered family, and the CCC loss.

For each family: a model built for ``task: dimensional`` has one output per target, trains a step on ratings
(the CCC loss for neural families, Ridge for the acoustic one), and after save -> model.json -> rebuild gives
the same outputs (the raw values, no softmax) through inference and ``predict_waveform``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch

from emoshift.config import ExperimentConfig, load_config
from emoshift.core.rundir import RunDir, RunError, write_model_json
from emoshift.core.task import DIMENSIONAL
from emoshift.corpora import Scan
from emoshift.data.datasets import EmotionDataModule, Item
from emoshift.evaluation.inference import predict_waveform, raw_outputs
from emoshift.evaluation.regression import ccc
from emoshift.models import family_of
from emoshift.models.families import Family, FitData, NeuralFamily, list_families
from emoshift.models.weights import load_model
from emoshift.training.objective import batch_ccc, ccc_loss, regression_loss
from tests.models.test_families import TINY, _corpus

TARGETS = ["arousal", "valence"]


def _config(name: str, cache: Path) -> ExperimentConfig:
    return load_config(
        overrides=[*TINY[name], "task=dimensional", f"data.targets=[{', '.join(TARGETS)}]",
                   f"data.cache_dir={cache}", "training.batch_size=6", "training.max_batch_seconds=30"]
    )


def _info(cfg: ExperimentConfig, family: Family, model: Any) -> dict[str, Any]:
    return {
        **family.architecture_info(cfg, model),
        "input_kind": family.input_kind,
        "task": DIMENSIONAL.name,
        "targets": TARGETS,
        "target_range": [0.0, 1.0],
        "labels": [],
        "features": cfg.features.model_dump(mode="json"),
    }


def _step(cfg: ExperimentConfig, family: NeuralFamily, model: torch.nn.Module, items: list[Item], stores: Any) -> None:
    """One step of the CCC loss on the ratings of a batch; it must lower nothing in particular but move weights."""
    dm = EmotionDataModule(
        prepare=lambda: family.datasets(cfg, items, items, stores), batch_size=cfg.training.batch_size,
        sampling="none", seed=0, max_batch_samples=family.max_batch_samples(cfg),
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    y = torch.tensor([items[i].target for i in batch["index"].tolist()])  # (B, T)
    net = family.train_net(model).train()
    pred = family.forward(net, batch)
    assert pred.shape == (len(y), len(TARGETS))
    loss = regression_loss(cfg.training.loss, pred, y)
    groups = family.param_groups(net, cfg.training) or [{"params": [p for p in net.parameters() if p.requires_grad]}]
    opt = torch.optim.AdamW(groups, lr=1e-2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss.backward()
    opt.step()
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items()), "the step trained nothing"
    model.eval()


@pytest.mark.parametrize("name", list_families())
def test_regression_head_round_trip(name: str, tmp_path: Path) -> None:
    cfg = _config(name, tmp_path / "cache")
    family = family_of(cfg.model.name, cfg.model.mode)
    utts = _corpus(tmp_path / "audio")
    rng = np.random.default_rng(0)
    items = [Item(u, 0, 0, tuple(float(v) for v in rng.uniform(0, 1, len(TARGETS)))) for u in utts]
    torch.manual_seed(0)
    model = family.build(cfg, num_labels=len(TARGETS))
    stores = family.prepare_stores(cfg, model, {"toy": Scan("toy", str(tmp_path), "six", utts)}, progress=False)
    run = RunDir.of(tmp_path / "run")
    if isinstance(family, NeuralFamily):
        _step(cfg, family, model, items, stores)
    else:  # the acoustic family fits Ridge on the ratings
        model = family.fit(cfg, FitData([], items, items[:2], stores), run, model=model, progress=False).model
    family.save(model, run)
    write_model_json(run, _info(cfg, family, model))
    loaded, info = load_model(run.path)
    assert family_of(info.model, info.mode) is family
    _, a, skipped = raw_outputs(model, info, utts, cache_dir=cfg.data.cache_dir, batch_size=4)
    _, b, _ = raw_outputs(loaded, info, utts, cache_dir=cfg.data.cache_dir, batch_size=4)
    assert not skipped and a.shape == (len(utts), len(TARGETS))
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    assert np.ptp(a, axis=0).min() > 0  # real outputs per utterance, not a constant (or a softmax row)
    wave, sr = sf.read(utts[0].path, dtype="float32")
    pa, pb = predict_waveform(model, info, wave, sr), predict_waveform(loaded, info, wave, sr)
    assert list(pa) == TARGETS
    np.testing.assert_allclose(list(pa.values()), list(pb.values()), rtol=0, atol=1e-5)


def test_acoustic_ridge_equals_scikit_learn(tmp_path: Path) -> None:
    from sklearn.linear_model import Ridge
    from sklearn.preprocessing import StandardScaler

    from emoshift.models.acoustic import AcousticBaseline, AcousticError, HeadConfig

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(40, 7)) * 3 + 1, rng.uniform(size=(40, 2))
    model = AcousticBaseline(HeadConfig(head="ridge", alpha=2.0)).fit_values(x, y, ["s"] * 40, targets=TARGETS)
    scaler = StandardScaler().fit(x)
    want = Ridge(alpha=2.0).fit(scaler.transform(x), y).predict(scaler.transform(x))
    np.testing.assert_allclose(model.predict_values(x), want, rtol=0, atol=1e-10)
    model.save(tmp_path)
    np.testing.assert_allclose(AcousticBaseline.load(tmp_path).predict_values(x), want, rtol=0, atol=1e-10)
    with pytest.raises(AcousticError, match="predict_values"):
        model.predict_proba(x)


def test_dimensional_model_json_is_checked(tmp_path: Path) -> None:
    cfg = _config("cnn", tmp_path / "cache")
    model = family_of(cfg.model.name, cfg.model.mode).build(cfg, num_labels=2)
    run = RunDir.of(tmp_path / "run")
    family_of(cfg.model.name, cfg.model.mode).save(model, run)
    info = {**_info(cfg, family_of(cfg.model.name, cfg.model.mode), model), "targets": ["arousal", "loudness"]}
    with pytest.raises(RunError, match="'targets' must list"):  # refused when written
        write_model_json(run, info)
    run.model_json.write_text(json.dumps({"format": 1, **info}))  # and when read (a hand-edited file)
    with pytest.raises(RunError, match="'targets' must list"):
        load_model(run.path)


# ------------------------------------------------------------------------------------------------ the loss


def test_ccc_loss_is_one_minus_ccc_on_the_batch() -> None:
    gen = torch.Generator().manual_seed(0)
    t = torch.rand(32, 3, generator=gen, dtype=torch.float64)
    p = 0.5 * t + 0.3 * torch.rand(32, 3, generator=gen, dtype=torch.float64) + 0.1
    per = [ccc(t[:, j].numpy(), p[:, j].numpy()) for j in range(3)]
    np.testing.assert_allclose(batch_ccc(p, t).numpy(), per, rtol=1e-6)
    assert float(ccc_loss(p, t)) == pytest.approx(1.0 - float(np.mean(per)), rel=1e-6)
    assert float(ccc_loss(t, t)) == pytest.approx(0.0, abs=1e-6)
    assert float(regression_loss("mse", p, t)) == pytest.approx(float(((p - t) ** 2).mean()))
    shifted = ccc_loss(t + 0.5, t)  # CCC punishes a shift that Pearson's r forgives
    assert float(shifted) > 0.3


def test_ccc_loss_trains_a_linear_regressor() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(256, 4, generator=gen)
    y = x @ torch.tensor([[1.0], [-0.5], [0.0], [0.2]]) * 0.2 + 0.5  # (N, 1)
    head = torch.nn.Linear(4, 1)
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        loss = ccc_loss(head(x), y)
        loss.backward()
        opt.step()
    assert ccc(y[:, 0].numpy(), head(x)[:, 0].detach().numpy()) > 0.99
