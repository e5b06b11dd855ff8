"""Loading the transformers speech encoders the SSL classifier wraps: random-init presets and test configs,
and pretrained checkpoints from the local Hugging Face cache, the Hub (when reachable) or a ``save_pretrained``
folder, with a one-line error when none of them has it.
"""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from emoshift.models import PretrainedUnavailableError

DEFAULT_HUBERT = "facebook/hubert-base-ls960"
PRESETS = ("tiny", "base")
# Encoders that take the 16 kHz waveform directly (the wav2vec 2.0 family); Whisper takes log-mels.
WAVEFORM_MODEL_TYPES = (
    "hubert",
    "wav2vec2",
    "wav2vec2-conformer",
    "wavlm",
    "data2vec-audio",
    "unispeech",
    "unispeech-sat",
)
SUPPORTED_MODEL_TYPES = (*WAVEFORM_MODEL_TYPES, "whisper")


def check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(choices)}; got {value!r}")


def tiny_config(model_type: str = "hubert") -> Any:
    """A small random-init config (hidden 32, 2 layers, 2 heads, 3 convs at HuBERT's 20 ms frame rate).

    ``feat_extract_norm="layer"`` + pre-LN layers, so padding is exact. For tests and CPU smoke runs; other
    ``model_type`` values (wav2vec2, wavlm, data2vec-audio, whisper) exercise the other encoder families.
    """
    from transformers import AutoConfig

    if model_type == "whisper":
        return AutoConfig.for_model(
            "whisper",
            d_model=32,
            encoder_layers=2,
            encoder_attention_heads=2,
            encoder_ffn_dim=64,
            decoder_layers=1,
            decoder_attention_heads=2,
            decoder_ffn_dim=64,
            num_mel_bins=80,
        )
    common: dict[str, Any] = {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "conv_dim": (32, 32, 32),
        "conv_kernel": (10, 8, 8),
        "conv_stride": (5, 8, 8),  # 320 samples per frame = 50 frames/s, as HuBERT
        "conv_bias": True,
        "num_conv_pos_embeddings": 16,
        "num_conv_pos_embedding_groups": 4,
        "feat_extract_norm": "layer",
        "do_stable_layer_norm": True,
        "layerdrop": 0.0,
        "mask_time_length": 2,
    }
    if model_type == "data2vec-audio":
        common.update(num_conv_pos_embeddings=2, conv_pos_kernel_size=5)  # 2 positional convs of width 5
        del common["feat_extract_norm"], common["do_stable_layer_norm"]
    if model_type == "wavlm":
        common.update(num_buckets=32, max_bucket_distance=100)
    return AutoConfig.for_model(model_type, **common)


def preset_encoder(preset: str) -> nn.Module:
    """Random-init HuBERT: "tiny" (tests, CPU) or "base" (HuBERT-base architecture, for speed measurements).

    Weights come from torch's global RNG: ``torch.manual_seed`` before building makes them reproducible.
    """
    from transformers import HubertConfig, HubertModel

    check_choice("preset", preset, PRESETS)
    config = tiny_config("hubert") if preset == "tiny" else HubertConfig(layerdrop=0.0)
    return HubertModel(config)


def encoder_from_config(config: Any) -> nn.Module:
    """Random-init encoder for a config (Whisper: the encoder of WhisperModel)."""
    from transformers import AutoModel

    model = AutoModel.from_config(config)
    return model.get_encoder() if config.model_type == "whisper" else model


def _is_true(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _hub_offline() -> bool:
    """HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE, read now (huggingface_hub reads them once, at import)."""
    from huggingface_hub import constants

    env = _is_true(os.environ.get("HF_HUB_OFFLINE")) or _is_true(os.environ.get("TRANSFORMERS_OFFLINE"))
    return env or bool(getattr(constants, "HF_HUB_OFFLINE", False))


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP probe of the Hub endpoint, so a machine without network fails in seconds, not after the
    Hub client's retries (about 25 s). Behind a proxy the probe cannot tell, so it says yes."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlparse(constants.ENDPOINT)
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout).close()
    except OSError:
        return False
    return True


def _looks_like_path(name: str) -> bool:
    return os.path.isabs(name) or name.startswith((".", "~")) or name.count("/") > 1 or os.path.exists(name)


def _unavailable(name: str, err: Exception | None) -> PretrainedUnavailableError:
    why = ""
    if err is not None:
        first = (str(err).strip().splitlines() or [""])[0][:160]
        why = f" ({type(err).__name__}: {first})" if first else f" ({type(err).__name__})"
    return PretrainedUnavailableError(
        f"cannot load pretrained model {name!r}: it is neither in the local Hugging Face cache nor reachable"
        f"{why}; download it where you have network (`hf download {name}`) or pass a folder saved "
        "with save_pretrained via --set model.pretrained=/path/to/folder"
    )


def _from_pretrained(load: Any, name: str, **kwargs: Any) -> Any:
    """``load(name, local_files_only=...)``: the local cache first (fast, offline), the Hub only if allowed."""
    attempts = [True] if (os.path.isdir(name) or _hub_offline()) else [True, False]
    err: Exception | None = None
    for local_only in attempts:
        if not local_only and not _hub_reachable():
            break  # no network: report the local miss now
        try:
            return load(name, local_files_only=local_only, **kwargs)
        except (OSError, ValueError) as e:
            err = e
    raise _unavailable(name, err) from None


def load_encoder(name_or_path: str) -> nn.Module:
    """A pretrained encoder from a Hugging Face id or a ``save_pretrained`` folder.

    Raises PretrainedUnavailableError (one line) when it can be neither found nor fetched; ValueError for a
    checkpoint of an unsupported type.
    """
    from transformers import AutoConfig, AutoModel

    name = os.path.expanduser(name_or_path)
    if _looks_like_path(name_or_path) and not os.path.isdir(name):
        raise PretrainedUnavailableError(
            f"pretrained model folder {name_or_path!r} does not exist; pass a folder saved with save_pretrained "
            "(or a Hugging Face id) via --set model.pretrained=/path/to/folder"
        )
    config = _from_pretrained(AutoConfig.from_pretrained, name)
    if config.model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(
            f"{name_or_path!r} is a {config.model_type!r} model; supported encoders: "
            f"{', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    if hasattr(config, "layerdrop"):
        config.layerdrop = 0.0
    model = _from_pretrained(AutoModel.from_pretrained, name, config=config)
    return model.get_encoder() if config.model_type == "whisper" else model
