"""Self-supervised speech encoders (HuBERT, wav2vec 2.0, WavLM, data2vec-audio, Whisper's encoder) + a small head.

Input: 16 kHz waveforms ``(B, S)`` with a sample mask ``(B, S)`` (1 = real sample, 0 = padding) -> logits
``(B, num_labels)``. The encoders are transformers models, wrapped, never re-implemented::

    wave (B, S) --normalise per utterance--> conv feature encoder (always frozen) --> (B, T, H) frames
        --> transformer layers --> hidden states h_0 .. h_L, each (B, T, H)
        --> last layer, or a learned softmax-weighted sum of all L+1 (SUPERB style, ``layer_sum=True``)
        --> pooling over *valid* frames: "mean" (H), "stats" (mean ++ std, 2H) or "attentive" (2H)
        --> MLP head: Linear -> GELU -> Dropout -> Linear                                  --> (B, C)

Two modes:

- ``mode="finetune"``: the encoder is part of the network; ``set_trainable`` picks what trains (head only, the
  top k transformer layers, or all of them) and ``param_groups`` hands AdamW layer-wise decayed learning rates.
- ``mode="frozen"``: the encoder never trains. For every utterance the per-layer pooled statistics
  ``(L+1, 2H)`` (mean ++ std over valid frames, one row per hidden state) are computed once
  (:meth:`SSLClassifier.pooled_layer_embeddings`, cached on disk by :mod:`emoshift.features.embedding_cache`) and the head
  trains on them (:class:`FrozenHead`). ``forward`` takes that same path, so a head trained on the cache and the
  full model fed waveforms give the same logits. Attentive pooling needs frame-level states, which the cache does
  not keep, so ``mode="frozen"`` with ``pooling="attentive"`` is refused (use "stats", its unweighted
  counterpart, or "mean"). With ``domain_norm=True`` (``model.domain_norm: corpus``, frozen mode only) the
  per-layer statistics pass a fixed per-element standardisation before the head (:class:`EmbeddingStandardize`,
  ``embed_norm``): training and evaluation feed the head each corpus's z-scores directly (``frozen_head()``
  skips it), a clip of unknown origin gets the statistics it holds.

Padding. Waveforms are standardised per utterance over valid samples (as ``Wav2Vec2FeatureExtractor`` with
``do_normalize=True``) and padded samples are zeroed, inside the model, so training and prediction agree. The
frame mask comes from the encoder's own ``_get_feature_vector_attention_mask``, and pooling only ever sees valid
frames. The sample mask is passed to the encoder only for ``feat_extract_norm == "layer"`` configs (HuBERT-large,
wav2vec2-large-lv60, WavLM-large, data2vec-audio, the ``tiny`` preset): there a padded batch gives the per-item
results of each item run alone (up to float rounding). Caveat: group-norm checkpoints
(``facebook/hubert-base-ls960``, ``facebook/wav2vec2-base``, ``microsoft/wavlm-base-plus``) were trained without
an attention mask and transformers advises not to pass one; their first convolution normalises over time, so the
padding still shifts the valid frames a little (``SSLClassifier.padding_exact`` says which case applies; the
embedding cache runs such encoders one clip at a time). Bucketing by
length (:mod:`emoshift.data.bucketing`) keeps that padding small. data2vec-audio's stacked positional convolutions
and wav2vec2-conformer's convolution modules also see across the padding boundary (a property of those
architectures), so for them too a padded item differs slightly from the item alone.

Whisper (``ssl(pretrained="openai/whisper-base")``): the encoder of ``WhisperModel``. Its log-mel input is
computed inside ``forward`` by transformers' ``WhisperFeatureExtractor`` (numpy, on CPU, no gradient to the
waveform): each clip is padded to Whisper's fixed 30 s window, so a clip gives the same result alone or in a
batch; pooling uses the frames that cover real audio. Whisper is fed raw levels (no standardisation), as its
own feature extractor does.

Other choices: ``layerdrop`` is set to 0 (a skipped layer would leave the layer-weighted sum without one of its
inputs); transformers' SpecAugment-style time masking of the checkpoint's config (``mask_time_prob``) stays on
in training, as in the reference fine-tuning recipes.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch
from torch import nn

from emoshift.core.record import ModelRecord
from emoshift.models.ssl_encoders import (
    DEFAULT_HUBERT,
    SUPPORTED_MODEL_TYPES,
    check_choice,
    encoder_from_config,
    load_encoder,
    preset_encoder,
    tiny_config,
)
from emoshift.models.ssl_pooling import (
    AttentiveStatsPool,
    EmbeddingStandardize,
    FrozenHead,
    LayerWeights,
    head_on_stats,
    masked_mean_std,
    mlp,
    normalize_waveform,
)

__all__ = [
    "DEFAULT_HUBERT",
    "FrozenHead",
    "SSLClassifier",
    "from_saved",
    "hubert",
    "load_encoder",
    "normalize_waveform",
    "saved_info",
    "ssl",
    "tiny_config",
]

POOLINGS = ("mean", "stats", "attentive")
MODES = ("finetune", "frozen")
STAGES = ("head", "top", "all")
# SSLClassifier's keywords
HEAD_OPTIONS = ("pooling", "layer_sum", "head_hidden", "dropout", "mode", "domain_norm")
SAMPLE_RATE = 16_000
_HEAD_PREFIXES = ("head.", "pool.", "layer_weights.")


# ------------------------------------------------------------------------------------------------ classifier


class SSLClassifier(nn.Module):
    """A transformers speech encoder + pooling + MLP head; see the module docstring."""

    input_kind = "waveform"
    encoder: Any  # a transformers PreTrainedModel (typed loosely: its config and helpers are duck-typed)

    def __init__(
        self,
        encoder: nn.Module,
        *,
        num_labels: int,
        pooling: str = "mean",
        layer_sum: bool = False,
        head_hidden: int = 256,
        dropout: float = 0.1,
        mode: str = "finetune",
        domain_norm: bool = False,
    ) -> None:
        super().__init__()
        check_choice("pooling", pooling, POOLINGS)
        check_choice("mode", mode, MODES)
        if domain_norm and mode != "frozen":
            raise ValueError("domain_norm standardises a frozen encoder's embeddings per corpus; in mode "
                             f"{mode!r} the embeddings change as the encoder trains: use mode 'frozen'")
        if mode == "frozen" and pooling == "attentive":
            raise ValueError(
                "pooling 'attentive' needs frame-level states, which the frozen mode's embedding cache does not "
                "keep; use pooling 'stats' (mean and std) or 'mean', or mode 'finetune'"
            )
        config: Any = getattr(encoder, "config", None)
        model_type = getattr(config, "model_type", "")
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise ValueError(
                f"unsupported encoder type {model_type!r}; supported: {', '.join(SUPPORTED_MODEL_TYPES)}"
            )
        self.encoder = encoder
        self.is_whisper = model_type == "whisper"
        self.pooling = pooling
        self.mode = mode
        self.head_hidden = int(head_hidden)
        self.dropout = float(dropout)
        self.hidden_size = int(config.hidden_size)
        self.layer_weights = LayerWeights(self.num_layers + 1) if layer_sum else None
        self.pool = AttentiveStatsPool(self.hidden_size) if pooling == "attentive" else None
        feat_dim = self.hidden_size if pooling == "mean" else 2 * self.hidden_size
        self.head = mlp(feat_dim, head_hidden, num_labels, dropout)
        # domain_norm: (B, L+1, 2H) -> the same, standardised with statistics held in the weights
        self.embed_norm = EmbeddingStandardize(self.num_layers + 1, 2 * self.hidden_size) if domain_norm else None
        self._whisper_fe: Any = None  # WhisperFeatureExtractor, made on first use
        self.freeze_feature_encoder()
        if mode == "frozen":
            self.set_trainable("head")

    # -------------------------------------------------------------------------------- structure

    @property
    def layers(self) -> nn.ModuleList:
        """The transformer layers, bottom first."""
        return self.encoder.layers if self.is_whisper else self.encoder.encoder.layers

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def padding_exact(self) -> bool:
        """Whether a clip in a padded batch gives exactly (up to rounding) what it gives alone.

        False for group-norm feature encoders (run without a mask, see the module docstring), data2vec-audio
        and wav2vec2-conformer (convolutions that see across the padding boundary).
        """
        if self.is_whisper:
            return True  # every clip is padded to the same 30 s window anyway
        cfg = self.encoder.config
        leaky = cfg.model_type in ("data2vec-audio", "wav2vec2-conformer")
        return not leaky and getattr(cfg, "feat_extract_norm", "layer") == "layer"

    @property
    def supports_cache(self) -> bool:
        """Whether a head trained on cached pooled embeddings computes exactly what ``forward`` does."""
        if self.mode == "frozen" or self.pooling == "mean":
            return True  # mean pooling and the layer-weighted sum commute (both linear)
        return self.pooling == "stats" and self.layer_weights is None

    def _stem_prefixes(self) -> tuple[str, ...]:
        """Parameter names (inside the encoder) of the conv feature encoder, frozen always."""
        if self.is_whisper:
            return ("conv1.", "conv2.", "embed_positions.")  # conv stem + fixed sinusoidal positions
        return ("feature_extractor.",)

    def _output_norm_prefix(self) -> str | None:
        """The encoder's final layer norm when it sits *after* the last layer (pre-LN transformers)."""
        if self.is_whisper:
            return "layer_norm."
        if getattr(self.encoder.config, "do_stable_layer_norm", False):
            return "encoder.layer_norm."
        return None  # post-LN: encoder.layer_norm normalises the embeddings, below layer 0

    def _encoder_part(self, name: str) -> str | int:
        """Where an encoder parameter sits: "stem", a layer index (output norm -> top layer) or "embeddings"."""
        if name.startswith(self._stem_prefixes()):
            return "stem"
        m = re.match(r"^(?:encoder\.)?layers\.(\d+)\.", name)
        if m:
            return int(m.group(1))
        norm = self._output_norm_prefix()
        if norm is not None and name.startswith(norm):
            return self.num_layers - 1
        return "embeddings"  # feature projection, positional conv, masked_spec_embed, ...

    # -------------------------------------------------------------------------------- training control

    def freeze_feature_encoder(self) -> None:
        """Freeze the convolutional feature encoder (done at construction; it never trains)."""
        stem = getattr(self.encoder, "feature_extractor", None)
        if stem is not None and hasattr(stem, "_freeze_parameters"):
            stem._freeze_parameters()  # also stops transformers from forcing requires_grad on its input
        for name, p in self.encoder.named_parameters():
            if name.startswith(self._stem_prefixes()):
                p.requires_grad_(False)

    def set_trainable(self, stage: str, *, top_k: int | None = None) -> None:
        """Choose what trains: "head" (head, pooling, layer weights), "top" (+ the top ``top_k`` transformer
        layers, and the output norm of pre-LN encoders) or "all" (every encoder parameter except the conv
        feature encoder). Sets ``requires_grad``; ``param_groups`` already covers every stage."""
        check_choice("stage", stage, STAGES)
        if self.mode == "frozen" and stage != "head":
            raise ValueError(f"mode 'frozen' trains the head only; stage {stage!r} needs mode 'finetune'")
        n = self.num_layers
        if stage == "top" and (top_k is None or not 1 <= top_k <= n):
            raise ValueError(
                f"stage 'top' needs top_k between 1 and {n} (the encoder has {n} layers), got {top_k}"
            )
        for name, p in self.named_parameters():
            if name.startswith(_HEAD_PREFIXES):
                p.requires_grad_(True)
                continue
            part = self._encoder_part(name.removeprefix("encoder."))
            if part == "stem" or stage == "head":
                train = False
            elif stage == "all":
                train = True
            else:  # "top"
                train = isinstance(part, int) and part >= n - int(top_k)  # type: ignore[arg-type]
            p.requires_grad_(train)

    def param_groups(
        self, *, head_lr: float, encoder_lr: float, layer_decay: float = 1.0, weight_decay: float = 0.01
    ) -> list[dict[str, Any]]:
        """AdamW parameter groups over every parameter except the conv feature encoder.

        Head (+ pooling, layer weights) at ``head_lr``; transformer layer ``i`` (0 = bottom, of ``n``) at
        ``encoder_lr * layer_decay ** (n - 1 - i)``; embeddings (feature projection, positional conv) at
        ``encoder_lr * layer_decay ** n``. Biases, norms and other 1-d parameters get no weight decay. Frozen
        parameters are included (with ``requires_grad=False`` they are skipped), so one optimizer serves every
        stage. Each group carries a ``name`` ("head", "embeddings", "layer.3", with "/no_decay" where it applies).
        """
        n = self.num_layers
        groups: dict[str, dict[str, Any]] = {}
        for name, p in self.named_parameters():
            if name.startswith(_HEAD_PREFIXES):
                key, lr = "head", head_lr
            else:
                part = self._encoder_part(name.removeprefix("encoder."))
                if part == "stem":
                    continue
                if part == "embeddings":
                    key, lr = "embeddings", encoder_lr * layer_decay**n
                else:
                    key, lr = f"layer.{part}", encoder_lr * layer_decay ** (n - 1 - int(part))
            no_decay = p.dim() <= 1 or "norm" in name or name.endswith(("bias", "original0", "weight_g"))
            if no_decay:
                key += "/no_decay"
            group = groups.setdefault(
                key, {"name": key, "params": [], "lr": lr, "weight_decay": 0.0 if no_decay else weight_decay}
            )
            group["params"].append(p)

        def order(key: str) -> tuple[int, bool]:  # head, embeddings, layer 0 .. n-1; decay first
            base = key.split("/")[0]
            rank = -2 if base == "head" else -1 if base == "embeddings" else int(base.split(".")[1])
            return (rank, key.endswith("/no_decay"))

        return [groups[k] for k in sorted(groups, key=order)]

    # -------------------------------------------------------------------------------- encoding

    def _whisper_features(self, wave: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-mels by transformers' WhisperFeatureExtractor (numpy, CPU) -> ``(B, n_mels, 3000)``, frames ``(B,)``."""
        from transformers import WhisperFeatureExtractor

        if self._whisper_fe is None:
            self._whisper_fe = WhisperFeatureExtractor(feature_size=int(self.encoder.config.num_mel_bins))
        lengths = mask.sum(dim=1).long().cpu()  # (B,)
        clips = [w[: int(n)].detach().float().cpu().numpy() for w, n in zip(wave, lengths, strict=True)]
        feats = self._whisper_fe(clips, sampling_rate=SAMPLE_RATE, return_tensors="np").input_features
        x = torch.from_numpy(np.asarray(feats)).to(device=wave.device, dtype=wave.dtype)  # (B, n_mels, 3000)
        hop = int(self._whisper_fe.hop_length)
        # frames that hold real audio, counted as the extractor's own frame mask counts them
        mel_frames = torch.clamp((lengths + hop - 1) // hop, 1, x.shape[-1])
        return x, mel_frames

    def _encode(
        self, wave: torch.Tensor, attention_mask: torch.Tensor | None, *, all_layers: bool
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Hidden states (all L+1, or only the last) ``(B, T, H)`` and the valid-frame mask ``(B, T)`` bool."""
        if attention_mask is None:
            attention_mask = torch.ones(wave.shape, dtype=torch.long, device=wave.device)
        mask = attention_mask.to(torch.long)  # (B, S)
        if self.is_whisper:
            feats, mel_frames = self._whisper_features(wave, mask)
            out = self.encoder(feats, output_hidden_states=all_layers)
            n_frames = (mel_frames - 1) // 2 + 1  # conv2 has stride 2 (kernel 3, padding 1)
            t = out.last_hidden_state.shape[1]
            frame_mask = torch.arange(t, device=wave.device)[None, :] < n_frames.to(wave.device)[:, None]
        else:
            x = normalize_waveform(wave, mask)  # (B, S)
            pass_mask = getattr(self.encoder.config, "feat_extract_norm", "layer") == "layer"
            out = self.encoder(x, attention_mask=mask if pass_mask else None, output_hidden_states=all_layers)
            t = out.last_hidden_state.shape[1]
            frame_mask = self.encoder._get_feature_vector_attention_mask(t, mask).bool()  # (B, T)
        # transformers 5 records the last layer's output before a pre-LN encoder's final norm; the top state is
        # the normed last_hidden_state, as in transformers 4.
        top = out.last_hidden_state  # (B, T, H)
        return ([*out.hidden_states[:-1], top] if all_layers else [top]), frame_mask

    def pooled_layer_embeddings(
        self, wave: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Per hidden state, mean ++ std over valid frames: ``(B, S)`` -> ``(B, L+1, 2H)`` float32.

        Always in eval mode (no dropout, no time masking) and without gradients: what the embedding cache stores.
        """
        was_training = self.encoder.training
        self.encoder.eval()
        try:
            with torch.no_grad():
                hidden, frame_mask = self._encode(wave, attention_mask, all_layers=True)
                # one (B, 2H) row of mean ++ std per hidden state
                stats = [torch.cat(masked_mean_std(h.float(), frame_mask), dim=-1) for h in hidden]
        finally:
            self.encoder.train(was_training)
        return torch.stack(stats, dim=1)  # (B, L+1, 2H)

    def frozen_head(self) -> FrozenHead:
        """A head over cached ``pooled_layer_embeddings`` sharing this model's head and layer weights (past
        ``embed_norm``: it takes embeddings already standardised)."""
        if not self.supports_cache:
            raise ValueError(
                f"pooling {self.pooling!r}{' with layer_sum' if self.layer_weights is not None else ''} in mode "
                "'finetune' pools frame-level states, which cached embeddings cannot reproduce; use pooling "
                "'mean' or mode 'frozen' to train on the cache"
            )
        pooling = "stats" if self.pooling == "stats" else "mean"
        return FrozenHead(self.layer_weights, self.head, pooling=pooling, hidden_size=self.hidden_size)

    def forward(self, wave: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, S)`` float waveforms, ``(B, S)`` sample mask -> logits ``(B, C)``."""
        if self.mode == "frozen":
            stats = self.pooled_layer_embeddings(wave, attention_mask)  # (B, L+1, 2H)
            if self.embed_norm is not None:
                stats = self.embed_norm(stats)
            return head_on_stats(stats, self.layer_weights, self.head, self.pooling, self.hidden_size)
        hidden, frame_mask = self._encode(wave, attention_mask, all_layers=self.layer_weights is not None)
        # (B, L+1, T, H) -> (B, T, H) by the learned layer weights, or the last layer
        h = self.layer_weights(torch.stack(hidden, dim=1)) if self.layer_weights is not None else hidden[-1]
        if self.pool is not None:
            x = self.pool(h, frame_mask)  # (B, 2H)
        else:
            mean, std = masked_mean_std(h, frame_mask)
            x = mean if self.pooling == "mean" else torch.cat([mean, std], dim=-1)
        return self.head(x)  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------------------------ builders


def _build(*, name: str, num_labels: int, pretrained: str | None, preset: str | None, **head: Any) -> SSLClassifier:
    """The encoder (a preset, or a pretrained checkpoint) + SSLClassifier(``head``); defaults live there."""
    unknown = sorted(set(head) - set(HEAD_OPTIONS))
    if unknown:
        raise TypeError(f"{name}() got an unexpected keyword argument {unknown[0]!r}")
    # Validate the cheap arguments before any download.
    if "pooling" in head:
        check_choice("pooling", head["pooling"], POOLINGS)
    if "mode" in head:
        check_choice("mode", head["mode"], MODES)
    if preset is not None:
        encoder = preset_encoder(preset)
    elif pretrained:
        encoder = load_encoder(pretrained)
    else:
        raise ValueError(
            "an SSL model needs pretrained (a Hugging Face id or folder) or preset ('tiny' or 'base')"
        )
    return SSLClassifier(encoder, num_labels=num_labels, **head)


def hubert(
    *, num_labels: int, pretrained: str | None = DEFAULT_HUBERT, preset: str | None = None, **head: Any
) -> SSLClassifier:
    """HuBERT (default ``facebook/hubert-base-ls960``); ``preset`` "tiny"/"base" builds a random-init one instead.

    ``head``: SSLClassifier's options (pooling, layer_sum, head_hidden, dropout, mode).
    """
    if preset is not None and pretrained not in (None, DEFAULT_HUBERT):
        raise ValueError(f"pass either pretrained ({pretrained!r}) or preset ({preset!r}), not both")
    pretrained = None if preset is not None else pretrained
    return _build(name="hubert", num_labels=num_labels, pretrained=pretrained, preset=preset, **head)


def ssl(*, num_labels: int, pretrained: str | None = None, preset: str | None = None, **head: Any) -> SSLClassifier:
    """Any supported transformers speech encoder: ``pretrained`` is a Hugging Face id or folder
    (``microsoft/wavlm-base-plus``, ``facebook/wav2vec2-base``, ``facebook/data2vec-audio-base``,
    ``facebook/hubert-large-ll60k``, ``openai/whisper-base``, ...); or ``preset`` "tiny"/"base" (random HuBERT).

    ``head``: SSLClassifier's options (pooling, layer_sum, head_hidden, dropout, mode).
    """
    if preset is not None and pretrained is not None:
        raise ValueError(f"pass either pretrained ({pretrained!r}) or preset ({preset!r}), not both")
    return _build(name="ssl", num_labels=num_labels, pretrained=pretrained, preset=preset, **head)


# ------------------------------------------------------------------------------------------------ saved info


def saved_info(model: SSLClassifier, *, pretrained: str | None, preset: str | None) -> dict[str, Any]:
    """What model.json needs to rebuild ``model`` without a download: the encoder config and the head options."""
    return {
        "encoder_config": model.encoder.config.to_dict(),
        "pooling": model.pooling,
        "layer_sum": model.layer_weights is not None,
        "head_hidden": model.head_hidden,
        "dropout": model.dropout,
        "mode": model.mode,
        "domain_norm": "corpus" if model.embed_norm is not None else "none",
        "pretrained": pretrained,
        "preset": preset,
    }


def from_saved(info: ModelRecord) -> SSLClassifier:
    """Rebuild an SSLClassifier from model.json (random weights; the run's safetensors fill them)."""
    from transformers import CONFIG_MAPPING

    enc = dict(info.required("encoder_config"))
    config = CONFIG_MAPPING[enc["model_type"]].from_dict(enc)
    return SSLClassifier(
        encoder_from_config(config),
        num_labels=info.num_outputs,
        pooling=info.required("pooling"),
        layer_sum=info.required("layer_sum"),
        head_hidden=info.required("head_hidden"),
        dropout=info.required("dropout"),
        mode=info.required("mode"),
        domain_norm=info.corpus_normalised,
    )
