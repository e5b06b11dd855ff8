"""Every registered model builds and runs forward and backward on a tiny input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emoshift.models import PretrainedUnavailableError, get_model, list_models, model_input_kind
from emoshift.models.families import get_family


def _tiny_kwargs(name: str) -> dict[str, object]:
    if model_input_kind(name) == "spectrogram":
        return {"width_mult": 0.125}
    return {"preset": "tiny"}


@pytest.mark.parametrize("name", list_models())
def test_forward_backward(name: str) -> None:
    if model_input_kind(name) == "functionals":  # a scikit-learn head: it fits, it does not backpropagate
        _fits_and_predicts(name)
        return
    torch.manual_seed(0)
    model = get_model(name, num_labels=4, **_tiny_kwargs(name))
    if model_input_kind(name) == "spectrogram":
        logits = model(torch.randn(3, 1, 32, 101))  # (B, 1, n_mels, T)
    else:
        wave = torch.randn(3, 16000)
        mask = torch.ones(3, 16000, dtype=torch.long)
        mask[1, 12000:] = 0
        logits = model(wave, mask)
    assert logits.shape == (3, 4)
    logits.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def _fits_and_predicts(name: str) -> None:
    model = get_model(name, num_labels=4)
    rng = np.random.default_rng(0)
    y = [["angry", "happy", "sad", "neutral"][i % 4] for i in range(40)]
    x = rng.standard_normal((40, model.functionals.dim)) + np.array([["angry", "happy", "sad", "neutral"].index(v) for v in y])[:, None]
    model.baseline.fit(x, y, [f"s{i % 5}" for i in range(40)])
    probs = np.exp(model.log_proba(x, None))  # (N, 4)
    assert probs.shape == (40, 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)


def test_registry_lists_the_study_models() -> None:
    assert {"resnet18", "efficientnet_b0", "hubert", "ssl"} <= set(list_models())


def test_unknown_model_names_the_choices() -> None:
    with pytest.raises(KeyError, match="resnet18"):
        get_model("resnet19", num_labels=4)


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_b0"])
def test_unreachable_pretrained_is_one_line(name: str, tmp_path) -> None:
    with pytest.raises(PretrainedUnavailableError) as err:
        get_model(name, num_labels=4, pretrained=str(tmp_path / "no-such-folder"))
    msg = str(err.value)
    assert "\n" not in msg and "model.pretrained" in msg


def test_pretrained_from_local_folder_adapts_the_rgb_stem(tmp_path) -> None:
    """A 3-channel (ImageNet-style) checkpoint saved with save_pretrained loads, its stem summed to one channel."""
    from transformers import ResNetConfig, ResNetModel

    torch.manual_seed(0)
    rgb = ResNetModel(ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 8, 8, 8], depths=[1, 1, 1, 1],
                                   layer_type="basic"))
    rgb.save_pretrained(tmp_path / "resnet-rgb")
    model = get_model("resnet18", num_labels=5, pretrained=str(tmp_path / "resnet-rgb"))
    stem = model.backbone.embedder.embedder.convolution
    assert stem.in_channels == 1
    torch.testing.assert_close(stem.weight, rgb.embedder.embedder.convolution.weight.sum(dim=1, keepdim=True))
    # A grey image through the RGB net equals the one-channel image through the adapted net.
    grey = torch.randn(2, 1, 32, 40)
    rgb.eval()
    model.eval()
    with torch.no_grad():
        a = rgb(pixel_values=grey.expand(-1, 3, -1, -1)).pooler_output
        b = model.backbone(pixel_values=grey).pooler_output
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert model(grey).shape == (2, 5)


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_b0"])
def test_from_scratch_activations_do_not_vanish(name: str) -> None:
    """transformers' EfficientNet init draws BatchNorm scales from N(0, 0.02): features would be ~1e-35."""
    torch.manual_seed(0)
    model = get_model(name, num_labels=6, width_mult=0.25).train()
    feats = model.features(torch.randn(8, 1, 32, 101))  # (B, D)
    assert feats.abs().mean() > 1e-2
    assert feats.std(dim=0).mean() > 1e-2  # inputs give different features


def test_batchnorm_recalibration_rescues_eval_mode() -> None:
    """After fast training, precise-BN statistics make eval-mode outputs depend on the input again."""
    import torch.nn.functional as F

    from emoshift.config import TrainingConfig
    from emoshift.training.module import EmotionModule
    from emoshift.training.objective import ClassObjective

    torch.manual_seed(0)
    model = get_model("efficientnet_b0", num_labels=6, width_mult=0.25)
    x, y = torch.randn(16, 1, 32, 101), torch.randint(0, 6, (16,))
    opt = torch.optim.AdamW(model.parameters(), 3e-3)
    for _ in range(30):
        model.train()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    class DM:
        def calibration_dataloader(self):  # type: ignore[no-untyped-def]
            return [{"x": x, "y": y}]

    module = EmotionModule(model, training=TrainingConfig(), family=get_family("cnn"),
                           objective=ClassObjective([str(i) for i in range(6)], TrainingConfig()))
    module.trainer = type("T", (), {"datamodule": DM(), "sanity_checking": False})()  # type: ignore[assignment]
    model.eval()
    with torch.no_grad():
        stale = F.cross_entropy(model(x), y).item()
    module._recalibrate_batchnorm()
    assert not model.training  # the mode is restored
    with torch.no_grad():
        fresh = F.cross_entropy(model(x), y).item()
    assert fresh < stale / 2, (stale, fresh)
