"""transformers' ResNet (``ResNetModel``, basic layers) rebuilt in plain torch, for loading a saved run.

Importing ``transformers.ResNetModel`` costs about 3 s of CPU (its ``modeling_utils`` pulls in torch's
compiler, distributed tensors and scipy), most of the start-up of ``emoshift predict --backend torch`` for a
CNN. Inference needs none of it: :class:`PlainResNet` has the same modules under the same names (so a saved
``model.safetensors`` loads into it unchanged, strictly) and the same forward pass, and reads the backbone
config saved in ``model.json``. Training still builds transformers' model (pretrained weights, init).
``tests/models/test_resnet_plain.py`` checks both give the same outputs from the same weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


def handles(config: dict[str, Any]) -> bool:
    """Whether this module rebuilds the saved backbone ``config`` (basic layers, ReLU: what emoshift trains)."""
    return config.get("layer_type", "basic") == "basic" and config.get("hidden_act", "relu") == "relu"


class _ConvLayer(nn.Module):  # transformers' ResNetConvLayer / ResNetShortCut (parameter names kept)
    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, act: bool = True) -> None:
        super().__init__()
        self.convolution = nn.Conv2d(cin, cout, kernel_size=kernel, stride=stride, padding=kernel // 2, bias=False)
        self.normalization = nn.BatchNorm2d(cout)
        self.activation: nn.Module = nn.ReLU() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, cin, H, W) -> (B, cout, H', W')
        return self.activation(self.normalization(self.convolution(x)))


class _BasicLayer(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        shortcut = cin != cout or stride != 1
        self.shortcut: nn.Module = _ConvLayer(cin, cout, 1, stride, act=False) if shortcut else nn.Identity()
        self.layer = nn.Sequential(_ConvLayer(cin, cout, stride=stride), _ConvLayer(cout, cout, act=False))
        self.activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.layer(x) + self.shortcut(x))


class _Stage(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, depth: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(_BasicLayer(cin, cout, stride), *[_BasicLayer(cout, cout) for _ in range(depth - 1)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # type: ignore[no-any-return]


class _Embeddings(nn.Module):
    def __init__(self, channels: int, size: int) -> None:
        super().__init__()
        self.embedder = _ConvLayer(channels, size, kernel=7, stride=2)
        self.pooler = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pooler(self.embedder(x))  # type: ignore[no-any-return]


class _Encoder(nn.Module):
    def __init__(self, embedding: int, sizes: list[int], depths: list[int], first_stride: int) -> None:
        super().__init__()
        ins = [embedding, *sizes[:-1]]
        strides = [first_stride] + [2] * (len(sizes) - 1)
        self.stages = nn.ModuleList(_Stage(i, o, s, d) for i, o, s, d in zip(ins, sizes, strides, depths, strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x)
        return x


@dataclass(frozen=True)
class SavedConfig:
    """The saved backbone config, as ``ResNetModel.config`` offers it (``hidden_sizes``, ``to_dict``)."""

    values: dict[str, Any]

    @property
    def hidden_sizes(self) -> list[int]:
        return list(self.values["hidden_sizes"])

    def to_dict(self) -> dict[str, Any]:
        return dict(self.values)


@dataclass(frozen=True)
class Pooled:
    pooler_output: torch.Tensor  # (B, D, 1, 1), as transformers returns it


class PlainResNet(nn.Module):
    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = SavedConfig(dict(config))
        c = self.config.values
        self.embedder = _Embeddings(int(c.get("num_channels", 3)), int(c["embedding_size"]))
        self.encoder = _Encoder(int(c["embedding_size"]), [int(s) for s in c["hidden_sizes"]],
                                [int(d) for d in c["depths"]], 2 if c.get("downsample_in_first_stage") else 1)
        self.pooler = nn.AdaptiveAvgPool2d((1, 1))

    def forward(self, pixel_values: torch.Tensor) -> Pooled:  # (B, C, H, W)
        return Pooled(self.pooler(self.encoder(self.embedder(pixel_values))))
