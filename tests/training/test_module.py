"""The LightningModule's pieces: distillation loss, UAR, validation metrics, optimiser groups and LR schedules."""

from __future__ import annotations

import warnings
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, confusion_matrix
from torch import nn
from torch.utils.data import DataLoader

from emoshift.config import TrainingConfig
from emoshift.models.families import get_family
from emoshift.training.module import EmotionModule
from emoshift.training.objective import ClassObjective, distillation_loss, uar_from_confusion

CNN = get_family("cnn")  # TinyNet takes log-mel batches (B, 1, n_mels, T)

LABELS = ["angry", "happy", "neutral", "sad"]

# ------------------------------------------------------------------------------------------------ losses


def _log_softmax(z: np.ndarray) -> np.ndarray:
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def _hand_distillation(
    s: np.ndarray, t: np.ndarray, y: np.ndarray, temp: float, alpha: float, w: np.ndarray | None = None
) -> float:
    """alpha * CE(s, y) + (1 - alpha) * T^2 * KL(softmax(t/T) || softmax(s/T)), batch-mean KL."""
    logp = _log_softmax(s)
    nll = -logp[np.arange(len(y)), y]
    ww = np.ones(len(y)) if w is None else w[y]
    ce = float((ww * nll).sum() / ww.sum())
    log_pt, log_ps = _log_softmax(t / temp), _log_softmax(s / temp)
    kl = float((np.exp(log_pt) * (log_pt - log_ps)).sum() / len(y))
    return alpha * ce + (1 - alpha) * temp**2 * kl


@pytest.fixture
def logits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    s = torch.randn(9, 4, generator=gen, dtype=torch.float64) * 3
    t = torch.randn(9, 4, generator=gen, dtype=torch.float64) * 3
    y = torch.randint(0, 4, (9,), generator=gen)
    return s, t, y


@pytest.mark.parametrize(("temp", "alpha"), [(1.0, 0.5), (4.0, 0.3), (2.0, 0.0), (0.5, 0.9)])
def test_distillation_loss_equals_hand_computation(logits, temp: float, alpha: float) -> None:  # type: ignore[no-untyped-def]
    s, t, y = logits
    got = distillation_loss(s, t, y, temperature=temp, alpha=alpha)
    want = _hand_distillation(s.numpy(), t.numpy(), y.numpy(), temp, alpha)
    assert float(got) == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_distillation_with_alpha_one_is_cross_entropy(logits) -> None:  # type: ignore[no-untyped-def]
    s, t, y = logits
    got = distillation_loss(s, t, y, temperature=3.0, alpha=1.0)
    assert float(got) == pytest.approx(float(torch.nn.functional.cross_entropy(s, y)), rel=1e-12)
    assert float(got) == pytest.approx(
        _hand_distillation(s.numpy(), t.numpy(), y.numpy(), 3.0, 1.0), rel=1e-9
    )


def test_distillation_passes_class_weights_to_the_hard_term_only(logits) -> None:  # type: ignore[no-untyped-def]
    s, t, y = logits
    w = torch.tensor([0.5, 2.0, 1.0, 3.0], dtype=torch.float64)
    got = distillation_loss(s, t, y, temperature=2.0, alpha=0.4, weight=w)
    want = _hand_distillation(s.numpy(), t.numpy(), y.numpy(), 2.0, 0.4, w=w.numpy())
    assert float(got) == pytest.approx(want, rel=1e-9)


def test_distillation_from_an_identical_teacher_leaves_only_cross_entropy(logits) -> None:  # type: ignore[no-untyped-def]
    s, _, y = logits
    got = distillation_loss(s, s.clone(), y, temperature=4.0, alpha=0.25)
    assert float(got) == pytest.approx(0.25 * float(torch.nn.functional.cross_entropy(s, y)), rel=1e-9)


# ------------------------------------------------------------------------------------------------ UAR


@pytest.mark.parametrize("seed", range(5))
def test_uar_from_confusion_equals_sklearn_balanced_accuracy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_classes = 5
    y = rng.integers(0, n_classes, size=200)
    if seed % 2:  # a class absent from the targets (but predicted): it does not count
        y[y == 3] = 0
    pred = np.where(rng.random(200) < 0.6, y, rng.integers(0, n_classes, size=200))
    conf = torch.tensor(confusion_matrix(y, pred, labels=range(n_classes)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns about the absent class
        want = balanced_accuracy_score(y, pred)
    assert uar_from_confusion(conf) == pytest.approx(want, abs=1e-6)  # float32 inside


def test_uar_of_an_empty_confusion_is_nan() -> None:
    assert np.isnan(uar_from_confusion(torch.zeros(3, 3, dtype=torch.long)))


# ------------------------------------------------------------------------------------------------ the module


class TinyNet(nn.Module):
    """``(B, 1, 8, 10)`` -> logits ``(B, 4)``: a conv with a norm layer (decayed and undecayed parameters)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, len(LABELS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.norm(self.conv(x))).mean(dim=(2, 3)))


def _loader(n: int, seed: int, batch_size: int = 8) -> DataLoader[Any]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 8, 10, generator=gen)
    y = torch.randint(0, len(LABELS), (n,), generator=gen)
    rows = [{"x": x[i], "y": y[i], "corpus": torch.tensor(0), "index": torch.tensor(i)} for i in range(n)]
    return DataLoader(rows, batch_size=batch_size, shuffle=False)  # type: ignore[arg-type]


def _trainer(**kw: Any) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **kw,
    )


class LrLog(L.Callback):
    def __init__(self) -> None:
        self.lrs: list[list[float]] = []

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, idx: int
    ) -> None:
        self.lrs.append([g["lr"] for g in trainer.optimizers[0].param_groups])


def _fit(
    schedule: str, epochs: int = 3, batches: int = 5, **training: Any
) -> tuple[EmotionModule, L.Trainer, list[float]]:
    cfg = TrainingConfig(schedule=schedule, epochs=epochs, lr=0.01, warmup_epochs=1.0, **training)
    module = EmotionModule(TinyNet(), training=cfg, family=CNN, objective=ClassObjective(LABELS, cfg))
    log = LrLog()
    trainer = _trainer(max_epochs=epochs, limit_train_batches=batches, limit_val_batches=2, callbacks=[log])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, _loader(8 * batches, 0), _loader(16, 1))
    assert len(log.lrs) == epochs * batches
    assert all(len(set(lrs)) == 1 for lrs in log.lrs)  # both parameter groups follow one schedule
    return module, trainer, [lrs[0] for lrs in log.lrs]


def test_constant_schedule_keeps_the_learning_rate() -> None:
    _, trainer, lrs = _fit("constant")
    assert lrs == [0.01] * len(lrs)
    assert trainer.lr_scheduler_configs == []


def test_cosine_schedule_warms_up_then_decays_to_zero() -> None:
    _, _, lrs = _fit("cosine", epochs=3, batches=5)  # 15 steps, 5 of warm-up
    warm = lrs[:5]
    assert warm == pytest.approx([0.01 * (k + 1) / 6 for k in range(5)])
    assert lrs[5] == pytest.approx(0.01)  # the peak, right after warm-up
    assert all(a > b for a, b in zip(lrs[5:], lrs[6:], strict=False))  # then strictly decreasing
    assert lrs[-1] == pytest.approx(0.01 * 0.5 * (1 + np.cos(np.pi * 9 / 10)))


def test_onecycle_schedule_rises_to_the_peak_then_anneals() -> None:
    _, _, lrs = _fit("onecycle", epochs=2, batches=10)  # 20 steps, 30 % rising
    peak = int(np.argmax(lrs))
    assert lrs[peak] == pytest.approx(0.01, rel=1e-6)
    assert 4 <= peak <= 7
    assert lrs[0] == pytest.approx(0.01 / 25)  # OneCycleLR's default div_factor
    assert all(a < b for a, b in zip(lrs[:peak], lrs[1 : peak + 1], strict=True))
    assert all(a > b for a, b in zip(lrs[peak:], lrs[peak + 1 :], strict=False))
    assert lrs[-1] < 0.01 / 25


def test_plateau_schedule_follows_validation_uar() -> None:
    _, trainer, lrs = _fit("plateau", epochs=2)
    (config,) = trainer.lr_scheduler_configs
    assert isinstance(config.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert config.monitor == "val_uar" and config.interval == "epoch"
    assert config.scheduler.mode == "max"
    assert lrs == [0.01] * len(lrs)  # patience 2: no reduction within two epochs


def test_weight_decay_spares_biases_and_norm_parameters() -> None:
    module, _, _ = _fit("constant", epochs=1, batches=1, weight_decay=0.05)
    opt = module.optimizers().optimizer  # type: ignore[union-attr]
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] == 0.05 for p in g["params"]}
    undecayed = {id(p) for g in opt.param_groups if g["weight_decay"] == 0.0 for p in g["params"]}
    net = module.model
    assert decayed == {id(net.conv.weight), id(net.head.weight)}
    assert undecayed == {id(net.conv.bias), id(net.head.bias), id(net.norm.weight), id(net.norm.bias)}


def test_validation_metrics_equal_sklearn_on_the_module_predictions() -> None:
    torch.manual_seed(0)
    cfg = TrainingConfig(schedule="constant", epochs=1)
    module = EmotionModule(TinyNet(), training=cfg, family=CNN, objective=ClassObjective(LABELS, cfg))
    loader = _loader(37, 2, batch_size=8)  # a short last batch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (metrics,) = _trainer().validate(module, loader, verbose=False)
    module.eval()
    with torch.no_grad():
        batches = list(loader)
        logits = torch.cat([module.model(b["x"]) for b in batches])
        y = torch.cat([b["y"] for b in batches])
    pred = logits.argmax(-1)
    assert metrics["val_uar"] == pytest.approx(balanced_accuracy_score(y.numpy(), pred.numpy()), abs=1e-6)
    assert metrics["val_accuracy"] == pytest.approx(float((pred == y).float().mean()), abs=1e-6)
    assert metrics["val_loss"] == pytest.approx(float(torch.nn.functional.cross_entropy(logits, y)), abs=1e-5)
