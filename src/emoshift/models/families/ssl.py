"""The SSL families (``hubert``, ``ssl``): a fine-tuned waveform encoder, and a frozen encoder with a head.

- ``model.mode=finetune`` (:class:`SSLFinetuneFamily`): training reads raw 16 kHz waveforms (no cache), batches
  ``(B, S)`` with a sample mask ``(B, S)``, length-bucketed under ``training.max_batch_seconds``; the encoder
  trains with layer-wise learning rates, in stages if asked.
- ``model.mode=frozen`` (:class:`SSLFrozenFamily`): the encoder runs once per utterance into the
  EmbeddingCache (per-layer pooled statistics ``(L+1, 2H)``) and only ``model.frozen_head()`` trains, on batches
  ``(B, L+1, 2H)``. With ``model.domain_norm: corpus`` each corpus's embeddings are standardised per element
  with that corpus's statistics (:mod:`emoshift.features.domain_norm`: its training utterances in training, the
  scored utterances at evaluation, never a label) and the head trains and scores on those z-scores; the model
  keeps the training corpora's pooled statistics in its weights (``SSLClassifier.embed_norm``, in the ONNX graph)
  for a clip of unknown origin, and ``emoshift adapt --method corpus-norm`` sets them to a target's. The
  fine-tuned mode refuses it: its embeddings change as the encoder trains.

Both save the whole encoder + head, so both predict from waveforms: inference sees up to ``MAX_SECONDS`` of audio
(centred), batched by length so little is padded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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

    def check_levers(self, cfg: ExperimentConfig) -> None:
        if cfg.model.domain_norm != "none" and not self.corpus_norm:
            raise ValueError(f"model.domain_norm: {cfg.model.domain_norm} standardises a frozen encoder's embeddings "
                             "per corpus; with model.mode=finetune they change as the encoder trains: use "
                             "model.mode=frozen")
        super().check_levers(cfg)

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

        kept, waves, skipped = _waves(utterances, FeatureConfig.model_validate(info.features))
        if not kept:
            return kept, np.zeros((0, info.num_outputs), dtype=np.float32), skipped
        logits = _by_length(waves, batch_size, lambda w, m: model(w.to(device), m.to(device)), advance)  # (N, C)
        return kept, logits, skipped

    def prepare_input(self, wave: np.ndarray, fcfg: FeatureConfig) -> torch.Tensor:
        return torch.from_numpy(_at_most(wave, fcfg.sample_rate))[None]  # (1, S)

    def predict(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        mask = torch.ones(x.shape, dtype=torch.long, device=x.device)  # (1, S): every sample is real
        return model(x, mask)  # type: ignore[no-any-return]


def _waves(utterances: Sequence[Utterance], fcfg: FeatureConfig) -> tuple[list[Utterance], list[np.ndarray], list[Skipped]]:
    """The readable utterances, their waveforms (each at most ``MAX_SECONDS``, centred) and the unreadable ones."""
    from emoshift.core.audio import AudioError, load_utterance
    from emoshift.corpora.base import Skipped

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
    return kept, waves, skipped


def _by_length(
    waves: Sequence[np.ndarray], batch_size: int, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    advance: Advance | None = None,
) -> np.ndarray:
    """``fn(wave (B, S), mask (B, S)) -> (B, ...)`` over batches of similar length (little padding), rows back in
    the order of ``waves``: ``(N, ...)`` float32 (N > 0)."""
    from emoshift.data.bucketing import collate_waveforms

    order = np.argsort([len(w) for w in waves], kind="stable")
    parts: list[np.ndarray] = []
    for i in range(0, len(order), batch_size):
        idx = order[i : i + batch_size]
        wave, mask = collate_waveforms([waves[j] for j in idx])  # (B, S), (B, S)
        parts.append(fn(wave, mask).float().cpu().numpy())
        if advance is not None:
            advance(len(idx))
    out = np.empty((len(waves), *parts[0].shape[1:]), dtype=np.float32)
    out[order] = np.concatenate(parts)
    return out


def _corpus_embeddings(
    model: nn.Module, info: ModelRecord, utterances: Sequence[Utterance], *, batch_size: int, device: torch.device,
    advance: Advance | None = None,
) -> tuple[list[tuple[list[Utterance], np.ndarray]], list[Skipped]]:
    """Per corpus: (its readable utterances, their pooled per-layer embeddings ``(N, L+1, 2H)`` as the encoder
    gives them, before any standardisation), and the files that could not be read."""
    from emoshift.config.features import FeatureConfig
    from emoshift.models.ssl import SSLClassifier

    assert isinstance(model, SSLClassifier)  # built by this family's builders
    fcfg = FeatureConfig.model_validate(info.features)
    by_corpus: dict[str, list[Utterance]] = {}
    for u in utterances:
        by_corpus.setdefault(u.corpus, []).append(u)
    groups: list[tuple[list[Utterance], np.ndarray]] = []
    skipped: list[Skipped] = []
    for utts in by_corpus.values():
        kept, waves, bad = _waves(utts, fcfg)
        skipped.extend(bad)
        if kept:
            embed = lambda w, m: model.pooled_layer_embeddings(w.to(device), m.to(device))  # noqa: E731
            groups.append((kept, _by_length(waves, batch_size, embed, advance)))  # (N, L+1, 2H)
    return groups, skipped


def _at_most(wave: np.ndarray, sr: int) -> np.ndarray:
    """The centred ``MAX_SECONDS`` of a longer clip; a shorter one as it is."""
    from emoshift.core.audio import crop_or_pad

    limit = int(MAX_SECONDS * sr)
    return crop_or_pad(wave, limit, mode="center") if len(wave) > MAX_SECONDS * sr else wave


ADAPT_BATCH = 8  # clips per encoder batch when adapt reads a target's embeddings


class SSLFrozenFamily(SSLFinetuneFamily):
    name = "ssl-frozen"
    mode = "frozen"
    corpus_norm = True  # the cached embeddings are fixed: standardised per corpus (model.domain_norm: corpus)
    corpus_norm_over = "embedding"
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

    def builder_kwargs(self, m: ModelConfig) -> dict[str, Any]:
        return {**super().builder_kwargs(m), "domain_norm": m.domain_norm == "corpus"}

    def describe(self, cfg: ExperimentConfig) -> str:
        norm = ", standardised per corpus" if cfg.model.domain_norm == "corpus" else ""
        return f"{super().describe(cfg)}{norm}"

    def prepare_stores(
        self, cfg: ExperimentConfig, model: nn.Module, scans: dict[str, Scan], *, progress: bool,
        train: Sequence[Item] = (),
    ) -> dict[str, Any]:
        """corpus -> EmbeddingStore; with domain_norm: corpus each store gives its corpus's z-scores (statistics
        over its training utterances) and the model's ``embed_norm`` holds the training corpora's pooled."""
        from emoshift.features.domain_norm import CorpusNormStore, item_moments, training_stats
        from emoshift.features.embedding_cache import EmbeddingCache, model_cache_key
        from emoshift.models.ssl import SSLClassifier

        assert isinstance(model, SSLClassifier)  # built by this family's builders
        cache = EmbeddingCache(Path(cfg.data.cache_dir) / "ssl")
        # the embeddings are the encoder's whatever standardises them after: one cache with or without domain_norm
        key = model_cache_key({**cfg.model.model_dump(mode="json"), "domain_norm": "none"})
        raw = {
            name: cache.build(name, sc.utterances, model, model_key=key, progress=progress)
            for name, sc in scans.items()
        }
        if cfg.model.domain_norm != "corpus" or model.embed_norm is None:
            return raw
        trained: dict[str, list[str]] = {}
        for it in train:
            trained.setdefault(it.utt.corpus, []).append(it.utt.id)
        stats, target = training_stats(raw, trained, item_moments, self.corpus_norm_over)
        _set_embed_norm(model, target)
        return {name: CorpusNormStore(store, stats.moments[name]) for name, store in raw.items()}

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
        """Logits from waveforms; a corpus-normalised model's head scores each corpus's embeddings standardised
        with the statistics of those utterances (their audio alone), not the ones it holds."""
        from emoshift.features.domain_norm import row_moments
        from emoshift.models.ssl import SSLClassifier

        if not info.corpus_normalised:
            return super().outputs(model, info, utterances, cache_dir=cache_dir, batch_size=batch_size,
                                   device=device, advance=advance, progress=progress)
        assert isinstance(model, SSLClassifier)  # built by this family's builders
        groups, skipped = _corpus_embeddings(model, info, utterances, batch_size=batch_size, device=device,
                                             advance=advance)
        head = model.frozen_head()  # past embed_norm
        kept: list[Utterance] = []
        out: list[np.ndarray] = []
        for usable, emb in groups:  # (N, L+1, 2H)
            m = row_moments(emb)
            z = torch.from_numpy(((emb - m.mean) / m.std).astype(np.float32))
            for i in range(0, len(z), batch_size):
                out.append(head(z[i : i + batch_size].to(device)).float().cpu().numpy())  # (B, C)
            kept.extend(usable)
        logits = np.concatenate(out) if out else np.zeros((0, info.num_outputs), np.float32)
        return kept, logits, skipped

    # -- adaptation -------------------------------------------------------------------------------------
    def check_adaptation(self, info: ModelRecord, method: str) -> None:
        from emoshift.models.adaptation import AdaptationError

        if method == "corpus-norm" and not info.corpus_normalised:
            raise AdaptationError(
                f"{info.model} (frozen) was trained without model.domain_norm=corpus: its head has no embedding "
                "standardisation for corpus-norm to set; retrain with --set model.domain_norm=corpus"
            )
        super().check_adaptation(info, method)

    @torch.no_grad()
    def adapt_corpus_norm(
        self, model: nn.Module, info: ModelRecord, utterances: Sequence[Utterance], *, cache_dir: str, progress: bool
    ) -> tuple[Any, int]:
        """The model's fixed embedding standardisation set to the target's embedding statistics
        (:func:`emoshift.features.domain_norm.row_moments` per element; in the weights, so in the ONNX graph)."""
        from emoshift.features.domain_norm import row_moments
        from emoshift.models.adaptation import AdaptationError

        self.check_adaptation(info, "corpus-norm")
        device = next(model.parameters()).device
        groups, _ = _corpus_embeddings(model, info, utterances, batch_size=ADAPT_BATCH, device=device)
        if not groups:
            raise AdaptationError("none of the target's audio could be read")
        emb = np.concatenate([e for _, e in groups])  # (N, L+1, 2H)
        target = row_moments(emb)
        _set_embed_norm(model, target)
        return target, len(emb)


def _set_embed_norm(model: nn.Module, moments: Any) -> None:
    """``model.embed_norm`` (a corpus-normalised frozen SSLClassifier's) set to ``moments`` ``(L+1, 2H)``."""
    norm: Any = model.embed_norm
    with torch.no_grad():
        norm.mean.copy_(torch.from_numpy(np.asarray(moments.mean)))
        norm.std.copy_(torch.from_numpy(np.asarray(moments.std)))
