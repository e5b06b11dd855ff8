"""Spectrogram CNNs: ResNet-18 and EfficientNet-B0 from transformers, adapted to one-channel log-mels.

Input ``(B, 1, n_mels, T)`` log-mel dB -> logits ``(B, num_labels)``. Each spectrogram is standardised per
utterance first (mean 0, std 1 over mels and time), so level differences between corpora do not reach the
network and ImageNet-pretrained stems see inputs on the scale they were trained on. With ``speaker_norm`` the
model instead holds one fixed per-mel-bin standardisation (:class:`BinStandardize`: the training speakers'
pooled statistics, saved with the weights): training and evaluation feed :meth:`SpectrogramClassifier.normalised`
each speaker's own z-scores (``emoshift.features.speaker_norm``), skipping it; a clip of an unknown speaker
(predict, serve, the ONNX graph: the plain ``forward``) is standardised with the training speakers' statistics.

Pretrained weights come from a Hugging Face id (``microsoft/resnet-18``, ``google/efficientnet-b0``) or a
local folder saved with ``save_pretrained``. The first convolution's three RGB filters are summed into one
channel, which keeps the response of a grey image identical.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from emoshift.models import PretrainedUnavailableError

BN_MOMENTUM = 0.1  # PyTorch semantics (weight of the new batch)
DEFAULT_PRETRAINED = {"resnet18": "microsoft/resnet-18", "efficientnet_b0": "google/efficientnet-b0"}


class SpecStandardize(nn.Module):
    """Per-utterance standardisation over (mels, time)."""

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, n_mels, T)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        std = x.std(dim=(1, 2, 3), keepdim=True)
        return (x - mean) / (std + self.eps)


class BinStandardize(nn.Module):
    """A fixed standardisation per mel bin: ``(x - mean) / std`` with ``mean``, ``std`` ``(n_mels,)`` buffers
    (saved with the weights; set from the training speakers by the CNN family)."""

    def __init__(self, n_mels: int) -> None:
        super().__init__()
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.zeros(n_mels))
        self.register_buffer("std", torch.ones(n_mels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, n_mels, T)
        return (x - self.mean[:, None]) / self.std[:, None]


class SpectrogramClassifier(nn.Module):
    """standardise -> backbone (pooled features) -> dropout -> linear head."""

    input_kind = "spectrogram"

    def __init__(
        self, backbone: nn.Module, feature_dim: int, num_labels: int, dropout: float, *, bin_norm: int | None = None
    ) -> None:
        super().__init__()
        # per-utterance standardisation, or (speaker_norm) a fixed per-bin one over bin_norm mel bins
        self.norm: nn.Module = SpecStandardize() if bin_norm is None else BinStandardize(bin_norm)
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(feature_dim, num_labels)

    def embed(self, z: torch.Tensor) -> torch.Tensor:  # standardised (B, 1, n_mels, T) -> (B, D)
        return self.backbone(pixel_values=z).pooler_output.flatten(1)  # type: ignore[no-any-return]

    def features(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, n_mels, T) -> (B, D)
        return self.embed(self.norm(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, n_mels, T) -> (B, C)
        return self.head(self.dropout(self.features(x)))

    def normalised(self) -> nn.Module:
        """This classifier for inputs already standardised (each speaker's z-scores): the same weights, without
        ``norm``."""
        return _Normalised(self)


class _Normalised(nn.Module):
    """A :class:`SpectrogramClassifier` minus its input standardisation (shares every weight with it)."""

    def __init__(self, model: SpectrogramClassifier) -> None:
        super().__init__()
        self.model = model

    @property
    def head(self) -> nn.Module:
        """The classifier's head (not a submodule of this wrapper twice: a property)."""
        return self.model.head

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # standardised (B, 1, n_mels, T) -> (B, C)
        m = self.model
        return m.head(m.dropout(m.embed(z)))  # type: ignore[no-any-return]


def _load_pretrained(cls: Any, name_or_path: str, **overrides: Any) -> Any:
    """from_pretrained with a one-line, actionable error when the weights cannot be reached."""
    try:
        return cls.from_pretrained(name_or_path, **overrides)
    except (OSError, ValueError) as e:
        where = "local folder" if os.path.isdir(name_or_path) else "Hugging Face id"
        raise PretrainedUnavailableError(
            f"cannot load pretrained weights from {where} {name_or_path!r} ({type(e).__name__}): "
            "it is neither in the local Hugging Face cache nor reachable; download it where you have network "
            "(e.g. `hf download ID`) or pass a folder saved with save_pretrained via "
            "--set model.pretrained=/path/to/folder"
        ) from None


def _to_one_channel(conv: nn.Conv2d) -> nn.Conv2d:
    """Replace a 3-channel stem convolution by a 1-channel one (RGB filters summed)."""
    new = nn.Conv2d(
        1,
        conv.out_channels,
        kernel_size=conv.kernel_size,  # type: ignore[arg-type]
        stride=conv.stride,  # type: ignore[arg-type]
        padding=conv.padding,  # type: ignore[arg-type]
        bias=conv.bias is not None,
    )
    with torch.no_grad():
        new.weight.copy_(conv.weight.sum(dim=1, keepdim=True))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)  # type: ignore[union-attr]
    return new


def _check_width(width_mult: float, pretrained: str | None) -> None:
    if width_mult <= 0:
        raise ValueError(f"model.width_mult must be positive, got {width_mult}")
    if pretrained and width_mult != 1.0:
        raise ValueError("model.width_mult must be 1.0 with pretrained weights (their widths are fixed)")


def resnet18(*, num_labels: int, **options: Any) -> SpectrogramClassifier:
    """ResNet-18 (basic blocks, depths 2-2-2-2, widths 64-512 x ``width_mult``); ``pretrained``: HF id or folder.

    ``options``: pretrained, dropout, width_mult, speaker_norm, domain_norm, n_mels (:func:`_build`). ``width_mult`` < 1
    gives the same architecture with fewer channels (tests and the CPU demo use it).
    """
    return _build(_resnet18_backbone, num_labels=num_labels, **options)


def efficientnet_b0(*, num_labels: int, **options: Any) -> SpectrogramClassifier:
    """EfficientNet-B0 (depth 1.0, width 1.0 x ``width_mult``, 1280 features); ``pretrained``: HF id or folder.

    ``options``: pretrained, dropout, width_mult, speaker_norm, domain_norm, n_mels (:func:`_build`).
    """
    return _build(_efficientnet_b0_backbone, num_labels=num_labels, **options)


def _build(
    backbone: Any,
    *,
    num_labels: int,
    pretrained: str | None = None,
    dropout: float = 0.2,
    width_mult: float = 1.0,
    speaker_norm: bool = False,
    domain_norm: bool = False,
    n_mels: int = 128,
) -> SpectrogramClassifier:
    """The CNN builders' one signature (defaults stated here): ``backbone(pretrained, dropout, width_mult)``;
    ``speaker_norm`` or ``domain_norm`` (per corpus): a fixed per-bin standardisation over ``n_mels`` bins instead
    of the per-utterance one."""
    _check_width(width_mult, pretrained)
    net, feature_dim = backbone(pretrained, dropout, width_mult)
    fixed = speaker_norm or domain_norm
    return SpectrogramClassifier(net, feature_dim, num_labels, dropout, bin_norm=n_mels if fixed else None)


def _resnet18_backbone(pretrained: str | None, dropout: float, width_mult: float) -> tuple[nn.Module, int]:
    from transformers import ResNetConfig, ResNetModel

    if pretrained:
        backbone = _load_pretrained(ResNetModel, pretrained)
        emb = backbone.embedder
        emb.embedder.convolution = _to_one_channel(emb.embedder.convolution)
        emb.num_channels = 1
        backbone.config.num_channels = 1
    else:
        config = ResNetConfig(
            num_channels=1,
            embedding_size=max(4, round(64 * width_mult)),
            hidden_sizes=[max(4, round(w * width_mult)) for w in (64, 128, 256, 512)],
            depths=[2, 2, 2, 2],
            layer_type="basic",
            hidden_act="relu",
            downsample_in_first_stage=False,
        )
        backbone = ResNetModel(config)
    return backbone, int(backbone.config.hidden_sizes[-1])


def _torchvision_init(model: nn.Module) -> None:
    """Re-initialise a from-scratch EfficientNet as torchvision does.

    transformers' EfficientNet ``_init_weights`` draws BatchNorm scales from N(0, 0.02) (fine when pretrained
    weights overwrite them, fatal from scratch: activations shrink ~50x per block and training never starts).
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            bound = 1.0 / m.out_features**0.5
            nn.init.uniform_(m.weight, -bound, bound)
            nn.init.zeros_(m.bias)


def _efficientnet_b0_backbone(pretrained: str | None, dropout: float, width_mult: float) -> tuple[nn.Module, int]:
    from transformers import EfficientNetConfig, EfficientNetModel

    # transformers ports TensorFlow's batch-norm momentum (0.99 = keep 99%) straight into PyTorch, where
    # momentum is the weight of the *new* batch, so its running statistics would follow the last batch alone.
    # We use PyTorch's default 0.1: the TF-equivalent 0.01 needs thousands of steps before the running
    # statistics are usable, and SER corpora give a few hundred steps per run (eval would be at chance).
    if pretrained:
        backbone = _load_pretrained(EfficientNetModel, pretrained, batch_norm_momentum=BN_MOMENTUM)
        backbone.embeddings.convolution = _to_one_channel(backbone.embeddings.convolution)
        backbone.config.num_channels = 1
    else:
        config = EfficientNetConfig(
            num_channels=1,
            image_size=224,
            width_coefficient=width_mult,
            depth_coefficient=1.0,
            hidden_dim=max(16, round(1280 * width_mult)),
            dropout_rate=dropout,
            batch_norm_momentum=BN_MOMENTUM,
        )
        backbone = EfficientNetModel(config)
        _torchvision_init(backbone)
    for m in backbone.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = BN_MOMENTUM
    return backbone, int(backbone.config.hidden_dim)


def _resnet18_from_config(backbone_config: dict[str, Any]) -> tuple[nn.Module, int]:
    from emoshift.models import resnet_plain

    if resnet_plain.handles(backbone_config):  # the same modules in plain torch: no transformers import (~3 s)
        plain = resnet_plain.PlainResNet(backbone_config)
        return plain, plain.config.hidden_sizes[-1]
    from transformers import ResNetConfig, ResNetModel

    r = ResNetModel(ResNetConfig.from_dict(backbone_config))
    sizes: Any = r.config.hidden_sizes  # a list in every saved config
    return r, int(sizes[-1])


def _efficientnet_b0_from_config(backbone_config: dict[str, Any]) -> tuple[nn.Module, int]:
    from transformers import EfficientNetConfig, EfficientNetModel

    e = EfficientNetModel(EfficientNetConfig.from_dict(backbone_config))
    return e, int(e.config.hidden_dim)


_FROM_CONFIG = {"resnet18": _resnet18_from_config, "efficientnet_b0": _efficientnet_b0_from_config}


def from_backbone_config(
    name: str, backbone_config: dict[str, Any], *, num_labels: int, dropout: float = 0.0, bin_norm: int | None = None
) -> SpectrogramClassifier:
    """Rebuild a saved spectrogram model from its transformers backbone config (no download); ``bin_norm``: the
    mel bins of a speaker-normalised model's fixed standardisation (its values come with the weights)."""
    if name not in _FROM_CONFIG:
        raise ValueError(f"{name!r} is not a spectrogram model")
    net, feature_dim = _FROM_CONFIG[name](backbone_config)
    return SpectrogramClassifier(net, feature_dim, num_labels, dropout, bin_norm=bin_norm)
