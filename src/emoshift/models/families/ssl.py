"""The SSL families (``hubert``, ``ssl``): a fine-tuned waveform encoder, and a frozen encoder with a head.

- ``model.mode=finetune`` (:class:`SSLFinetuneFamily`): training reads raw 16 kHz waveforms (no cache), batches
  ``(B, S)`` with a sample mask ``(B, S)``, length-bucketed under ``training.max_batch_seconds``; the encoder
  trains with layer-wise learning rates, in stages if asked.
- ``model.mode=frozen`` (:class:`SSLFrozenFamily`): the encoder runs once per utterance into the
  EmbeddingCache (per-layer pooled statistics ``(L+1, 2H)``) and only ``model.frozen_head()`` trains, on batches
  ``(B, L+1, 2H)``.

Both save the whole encoder + head, so both predict from waveforms: inference sees up to ``MAX_SECONDS`` of audio
(centred), batched by length so little is padded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from emoshift.core.record import ModelRecord
from emoshift.models.families.base import MAX_SECONDS, Advance, NeuralFamily

if TYPE_CHECKING:
    from torch.utils.data import Dataset

    from emoshift.config import AugmentConfig, ExperimentConfig, ModelConfig, TrainingConfig
    from emoshift.config.features import FeatureConfig
    from emoshift.corpora import Scan
    from emoshift.corpora.base import Skipped, Utterance
    from emoshift.data.datasets import Item


class SSLFinetuneFamily(NeuralFamily):
    name = "ssl-finetune"
    input_kind = "waveform"
    mode = "finetune"
    unused_keys = frozenset({"model.width_mult", "model.head", "model.speaker_norm"})  # the CNNs' and baselines'
    mixup = False  # mixing two waveforms is not a mixture of two emotions' features

    def builder_kwargs(self, m: ModelConfig) -> dict[str, Any]:
        kw: dict[str, Any] = {
            "preset": m.preset,
            "pooling": m.pooling,
            "layer_sum": m.layer_sum,
            "head_hidden": m.head_hidden,
            "dropout": m.dropout,
            "mode": m.mode,
        }
        if m.pretrained is not None:  # otherwise the builder's own default (hubert: facebook/hubert-base-ls960)
            kw["pretrained"] = m.pretrained
        return kw

    def check_model(self, m: ModelConfig) -> None:
        if m.speaker_norm:
            raise ValueError(
                "model.speaker_norm standardises log-mels or functionals per speaker: it applies to the CNNs "
                "and the acoustic baselines, not to a self-supervised encoder's waveform input"
            )

    def describe(self, cfg: ExperimentConfig) -> str:
        m = cfg.model
        src = f"preset {m.preset}" if m.preset else (m.pretrained or "default weights")
        return f"{m.name} ({src}), {m.mode}, {m.pooling} pooling{', layer sum' if m.layer_sum else ''}"

    def architecture_info(self, cfg: ExperimentConfig, model: nn.Module) -> dict[str, Any]:
        from emoshift.models.ssl import SSLClassifier, saved_info

        assert isinstance(model, SSLClassifier)  # built by this family's builders
        saved = saved_info(model, pretrained=cfg.model.pretrained, preset=cfg.model.preset)
        return {"model": cfg.model.name, **saved}

    def rebuild(self, info: ModelRecord) -> nn.Module:
        from emoshift.models.ssl import from_saved

        return from_saved(info)

    # -- training -------------------------------------------------------------------------------------
    def train_net(self, model: nn.Module) -> nn.Module:
        from emoshift.models.ssl import SSLClassifier

        assert isinstance(model, SSLClassifier)  # built by this family's builders
        model.freeze_feature_encoder()  # done at construction already; the conv stem never trains
        return model

    def datasets(
        self, cfg: ExperimentConfig, train: list[Item], val: list[Item], stores: dict[str, Any]
    ) -> tuple[Dataset[Any], Dataset[Any]]:
        from emoshift.data.datasets import WaveformDataset

        f, seed = cfg.features, cfg.training.seed
        kw: dict[str, Any] = {"sample_rate": f.sample_rate, "max_seconds": MAX_SECONDS, "seed": seed, "trim": f.trim_silence}
        return WaveformDataset(train, train=True, **kw), WaveformDataset(val, train=False, **kw)

    def max_batch_samples(self, cfg: ExperimentConfig) -> int | None:
        return int(cfg.training.max_batch_seconds * cfg.features.sample_rate)

    def forward(self, net: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return net(batch["x"], batch["attention_mask"])  # type: ignore[no-any-return]  # (B, S), (B, S) -> (B, C)

    def augment(
        self, x: torch.Tensor, batch: dict[str, torch.Tensor], aug: AugmentConfig, gen: torch.Generator
    ) -> torch.Tensor:
        from emoshift.data.augment import augment_waveforms

        return augment_waveforms(x, batch["attention_mask"], aug, gen)

    def param_groups(self, net: nn.Module, cfg: TrainingConfig) -> list[dict[str, Any]] | None:
        from emoshift.models.ssl import SSLClassifier

        if not isinstance(net, SSLClassifier):
            return None
        decay = cfg.stages[-1].layer_decay if cfg.stages else 1.0
        return net.param_groups(
            head_lr=cfg.lr, encoder_lr=cfg.encoder_lr, layer_decay=decay, weight_decay=cfg.weight_decay
        )

    # -- inference ------------------------------------------------------------------------------------
    @torch.no_grad()
    def outputs(
        self,
        model: nn.Module,
        info: ModelRecord,
        utterances: Sequence[Utterance],
        *,
        cache_dir: str,
        batch_size: int,
        device: torch.device,
        advance: Advance,
        progress: bool,
    ) -> tuple[list[Utterance], np.ndarray, list[Skipped]]:
        from emoshift.config.features import FeatureConfig
        from emoshift.core.audio import AudioError, load_utterance
        from emoshift.corpora.base import Skipped
        from emoshift.data.bucketing import collate_waveforms

        fcfg = FeatureConfig.model_validate(info.features)
        kept: list[Utterance] = []
        skipped: list[Skipped] = []
        waves: list[np.ndarray] = []
        for u in utterances:
            try:
                w = load_utterance(u, fcfg.sample_rate, trim=fcfg.trim_silence, trim_top_db=fcfg.trim_top_db)
            except AudioError as e:
                skipped.append(Skipped(u.path, str(e)))
                continue
            waves.append(_at_most(w, fcfg.sample_rate))
            kept.append(u)
        order = np.argsort([len(w) for w in waves], kind="stable")
        logits = np.zeros((len(kept), info.num_outputs), dtype=np.float32)
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            wave, mask = collate_waveforms([waves[j] for j in idx])  # (B, S), (B, S)
            logits[idx] = model(wave.to(device), mask.to(device)).float().cpu().numpy()
            advance(len(idx))
        return kept, logits, skipped

    def prepare_input(self, wave: np.ndarray, fcfg: FeatureConfig) -> torch.Tensor:
        return torch.from_numpy(_at_most(wave, fcfg.sample_rate))[None]  # (1, S)

    def predict(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        mask = torch.ones(x.shape, dtype=torch.long, device=x.device)  # (1, S): every sample is real
        return model(x, mask)  # type: ignore[no-any-return]


def _at_most(wave: np.ndarray, sr: int) -> np.ndarray:
    """The centred ``MAX_SECONDS`` of a longer clip; a shorter one as it is."""
    from emoshift.core.audio import crop_or_pad

    limit = int(MAX_SECONDS * sr)
    return crop_or_pad(wave, limit, mode="center") if len(wave) > MAX_SECONDS * sr else wave


class SSLFrozenFamily(SSLFinetuneFamily):
    name = "ssl-frozen"
    mode = "frozen"
    # the head trains on cached embeddings: no encoder learning rate, no padded-audio cap on its batches
    unused_keys = SSLFinetuneFamily.unused_keys | {"training.encoder_lr", "training.max_batch_seconds"}
    mixup = True  # the head trains on cached embeddings, which mix

    def check_model(self, m: ModelConfig) -> None:
        super().check_model(m)
        if m.pooling == "attentive":
            raise ValueError(
                "model.pooling=attentive needs frame-level states, which the frozen mode's embedding cache does "
                "not keep: use model.pooling=stats (mean and std) or mean, or model.mode=finetune"
            )

    def prepare_stores(
        self, cfg: ExperimentConfig, model: nn.Module, scans: dict[str, Scan], *, progress: bool,
        train: Sequence[Item] = (),
    ) -> dict[str, Any]:
        from emoshift.features.embedding_cache import EmbeddingCache, model_cache_key
        from emoshift.models.ssl import SSLClassifier

        assert isinstance(model, SSLClassifier)  # built by this family's builders
        cache = EmbeddingCache(Path(cfg.data.cache_dir) / "ssl")
        key = model_cache_key(cfg.model.model_dump(mode="json"))
        return {
            name: cache.build(name, sc.utterances, model, model_key=key, progress=progress)
            for name, sc in scans.items()
        }

    def train_net(self, model: nn.Module) -> nn.Module:
        from emoshift.models.ssl import SSLClassifier

        assert isinstance(model, SSLClassifier)
        return model.frozen_head()  # (B, L+1, 2H) -> (B, C), sharing the model's head and layer weights

    def datasets(
        self, cfg: ExperimentConfig, train: list[Item], val: list[Item], stores: dict[str, Any]
    ) -> tuple[Dataset[Any], Dataset[Any]]:
        from emoshift.data.datasets import EmbeddingDataset

        return EmbeddingDataset(train, stores), EmbeddingDataset(val, stores)

    def max_batch_samples(self, cfg: ExperimentConfig) -> int | None:
        return None

    def forward(self, net: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return net(batch["x"])  # type: ignore[no-any-return]  # (B, L+1, 2H) -> (B, C)

    def augment(
        self, x: torch.Tensor, batch: dict[str, torch.Tensor], aug: AugmentConfig, gen: torch.Generator
    ) -> torch.Tensor:
        return x

    def param_groups(self, net: nn.Module, cfg: TrainingConfig) -> list[dict[str, Any]] | None:
        return None
