"""The plain-torch ResNet that loads saved CNN runs (no transformers import) is transformers' ResNetModel:
the same parameter names (a state dict loads strictly both ways) and the same outputs from the same weights."""

from __future__ import annotations

import pytest
import torch

from emoshift.models import resnet_plain
from emoshift.models.cnn_nets import from_backbone_config, resnet18


@pytest.mark.parametrize("width", [0.125, 0.25])
def test_same_modules_and_outputs_as_transformers(width: float) -> None:
    torch.manual_seed(0)
    trained = resnet18(num_labels=4, width_mult=width).eval()  # transformers' ResNetModel inside
    for m in trained.modules():  # non-trivial batch-norm statistics, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    config = trained.backbone.config.to_dict()
    assert resnet_plain.handles(config)
    rebuilt = from_backbone_config("resnet18", config, num_labels=4).eval()
    assert isinstance(rebuilt.backbone, resnet_plain.PlainResNet)
    rebuilt.load_state_dict(trained.state_dict(), strict=True)
    assert set(rebuilt.state_dict()) == set(trained.state_dict())
    x = torch.randn(3, 1, 32, 101)  # (B, 1, n_mels, T)
    with torch.inference_mode():
        torch.testing.assert_close(rebuilt(x), trained(x), rtol=1e-5, atol=1e-5)
    assert rebuilt.backbone.config.to_dict() == config  # saved again, it writes the same model.json


def test_a_config_it_does_not_handle_goes_to_transformers() -> None:
    assert not resnet_plain.handles({"layer_type": "bottleneck", "hidden_act": "relu"})
    assert not resnet_plain.handles({"layer_type": "basic", "hidden_act": "gelu"})
