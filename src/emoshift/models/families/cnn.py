"""The CNN family: ``resnet18`` / ``efficientnet_b0`` on log-mel crops from the FeatureCache.

Training sees a random ``features.crop_s`` crop of each cached log-mel (centred for validation), batches
``(B, 1, n_mels, T)``, SpecAugment / channel augmentation and mixup; inference sees the centred crop.

Input standardisation: per utterance by default; with ``model.speaker_norm`` each speaker's z-scores per mel bin,
with ``model.domain_norm: corpus`` each corpus's (:mod:`emoshift.features.domain_norm`: its training audio in
training, the evaluated utterances at evaluation), both fed past the model's fixed per-bin standardisation
(:class:`emoshift.models.cnn_nets.BinStandardize`), which holds what a clip of unknown origin gets. With both, a
speaker's own statistics apply (after the corpus's they are the same) and the fixed standardisation holds the
training corpora's pooled statistics. The nets have batch norm, so AdaBN applies (:meth:`CNNFamily.adapt_batchnorm`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from emoshift.core.record import ModelRecord
from emoshift.models.families.base import Advance, NeuralFamily

if TYPE_CHECKING:
    from torch.utils.data import Dataset

    from emoshift.config import AugmentConfig, ExperimentConfig, ModelConfig
    from emoshift.config.features import FeatureConfig
    from emoshift.corpora import Scan
    from emoshift.corpora.base import Skipped, Utterance
    from emoshift.data.datasets import Item


class CNNFamily(NeuralFamily):
    name = "cnn"
    input_kind = "spectrogram"
    corpus_norm = True
    corpus_norm_over = "mel bin"
    batchnorm = True
    unused_keys = frozenset({
        "model.mode", "model.preset", "model.pooling", "model.layer_sum", "model.head_hidden",  # SSL encoders'
        "model.head",  # the acoustic baselines'
        "training.encoder_lr", "training.stages", "training.max_batch_seconds",  # SSL fine-tuning's
    })

    def builder_kwargs(self, m: ModelConfig) -> dict[str, Any]:
        return {"pretrained": m.pretrained, "dropout": m.dropout, "width_mult": m.width_mult,
                "speaker_norm": m.speaker_norm, "domain_norm": m.domain_norm == "corpus"}

    def build(self, cfg: ExperimentConfig, *, num_labels: int) -> Any:
        from emoshift.models import get_model

        kwargs = {**self.builder_kwargs(cfg.model), "n_mels": cfg.features.n_mels}
        return get_model(cfg.model.name, num_labels=num_labels, **kwargs)

    def check_config(self, cfg: ExperimentConfig) -> None:
        if cfg.training.stages:
            raise ValueError("training.stages (multi-stage fine-tuning) applies to SSL models (hubert, ssl) only")
        aug = cfg.training.augment
        if cfg.model.speaker_norm and (aug.codec_p or aug.telephone_p or aug.reverb_p):
            raise ValueError(
                "training.augment codec_p / telephone_p / reverb_p with model.speaker_norm: a perturbed clip's "
                "log-mel would need its speaker's statistics under the same channel; use one or the other"
            )

    def describe(self, cfg: ExperimentConfig) -> str:
        m = cfg.model
        w = "" if m.width_mult == 1.0 else f" x{m.width_mult:g} width"
        pre = f", init {m.pretrained}" if m.pretrained else ", from scratch"
        per = [p for p, on in (("speaker", m.speaker_norm), ("corpus", m.domain_norm == "corpus")) if on]
        norm = f", standardised per {' and '.join(per)}" if per else ""
        return f"{m.name}{w} on {cfg.features.n_mels}-mel log-mels{norm}{pre}"

    def architecture_info(self, cfg: ExperimentConfig, model: nn.Module) -> dict[str, Any]:
        backbone: Any = model.backbone
        return {"model": cfg.model.name, "dropout": cfg.model.dropout, "backbone_config": backbone.config.to_dict(),
                "speaker_norm": cfg.model.speaker_norm, "domain_norm": cfg.model.domain_norm}

    def rebuild(self, info: ModelRecord) -> nn.Module:
        from emoshift.models.cnn_nets import from_backbone_config

        fixed = info.speaker_norm or info.corpus_normalised  # older runs: no keys, None
        bins = int(info.features["n_mels"]) if fixed else None
        return from_backbone_config(
            info.model, info.required("backbone_config"), num_labels=info.num_outputs, dropout=info.dropout or 0.0,
            bin_norm=bins,
        )

    # -- training -------------------------------------------------------------------------------------
    def prepare_stores(
        self,
        cfg: ExperimentConfig,
        model: nn.Module,
        scans: dict[str, Scan],
        *,
        progress: bool,
        train: Sequence[Item] = (),
    ) -> dict[str, Any]:
        from emoshift.features.cache import FeatureCache

        cache = FeatureCache(Path(cfg.data.cache_dir) / "features")
        raw = {name: cache.build(name, sc.utterances, cfg.features, progress=progress) for name, sc in scans.items()}
        stores = raw
        if cfg.model.speaker_norm:
            speaker_of = {u.id: u.speaker for sc in scans.values() for u in sc.utterances}
            wanted = {it.utt.speaker for it in train}
            stores = _speaker_normalised(model, raw, speaker_of, wanted)
        if cfg.model.domain_norm == "corpus":
            corpus_stores = _corpus_normalised(model, raw, train, self.corpus_norm_over)
            stores = stores if cfg.model.speaker_norm else corpus_stores  # a speaker's own statistics come last
        return stores

    def train_net(self, model: nn.Module) -> nn.Module:
        from emoshift.models.cnn_nets import BinStandardize, SpectrogramClassifier

        # speaker_norm: the stores give each speaker's z-scores, which go past the model's own standardisation
        if isinstance(model, SpectrogramClassifier) and isinstance(model.norm, BinStandardize):
            return model.normalised()
        return model

    def datasets(
        self, cfg: ExperimentConfig, train: list[Item], val: list[Item], stores: dict[str, Any]
    ) -> tuple[Dataset[Any], Dataset[Any]]:
        from emoshift.data.augment import WaveChannel
        from emoshift.data.datasets import SpectrogramDataset

        frames, seed = cfg.features.frames_for(cfg.features.crop_s), cfg.training.seed
        chain = WaveChannel(cfg.training.augment)
        channel = ChannelLogMel(chain, cfg.features) if chain.active else None
        return (
            SpectrogramDataset(train, stores, frames=frames, train=True, seed=seed, channel=channel),
            SpectrogramDataset(val, stores, frames=frames, train=False, seed=seed),
        )

    def augment(
        self, x: torch.Tensor, batch: dict[str, torch.Tensor], aug: AugmentConfig, gen: torch.Generator
    ) -> torch.Tensor:
        from emoshift.data.augment import augment_spectrograms

        return augment_spectrograms(x, aug, gen)

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
        groups, skipped = _corpus_inputs(model, info, utterances, cache_dir=cache_dir, progress=progress)
        net, frames = _net(model, info), _frames(info)
        kept: list[Utterance] = []
        out: list[np.ndarray] = []
        for usable, store in groups:
            for i in range(0, len(usable), batch_size):
                chunk = usable[i : i + batch_size]
                out.append(net(_crops(store, chunk, frames).to(device)).float().cpu().numpy())  # (B, C)
                kept.extend(chunk)
                advance(len(chunk))
        logits = np.concatenate(out) if out else np.zeros((0, info.num_outputs), np.float32)
        return kept, logits, skipped

    # -- adaptation -------------------------------------------------------------------------------------
    def check_adaptation(self, info: ModelRecord, method: str) -> None:
        from emoshift.models.adaptation import AdaptationError

        if method == "corpus-norm" and not (info.speaker_norm or info.corpus_normalised):
            raise AdaptationError(
                f"{info.model} standardises each clip by itself: corpus-norm sets the per-bin standardisation of a "
                "model trained with model.domain_norm=corpus (or model.speaker_norm); retrain with "
                "--set model.domain_norm=corpus, or adapt with --method adabn"
            )
        super().check_adaptation(info, method)

    def adapt_batchnorm(
        self, model: nn.Module, info: ModelRecord, utterances: Sequence[Utterance], *, cache_dir: str,
        batch_size: int, device: torch.device, progress: bool,
    ) -> int:
        """AdaBN on the inputs the net sees at inference (centred crops, standardised as in training)."""
        from emoshift.models.adaptation import reestimate_batchnorm

        groups, _ = _corpus_inputs(model, info, utterances, cache_dir=cache_dir, progress=progress)
        net, frames = _net(model, info), _frames(info)
        model.to(device)
        batches = (_crops(store, usable[i : i + batch_size], frames).to(device)
                   for usable, store in groups for i in range(0, len(usable), batch_size))
        return reestimate_batchnorm(model, batches, forward=net)

    def adapt_corpus_norm(
        self, model: nn.Module, info: ModelRecord, utterances: Sequence[Utterance], *, cache_dir: str, progress: bool
    ) -> tuple[Any, int]:
        """The fixed per-bin standardisation set to the target's log-mel statistics (in the weights, so in the
        ONNX graph); a model that standardises each clip by itself has none to set."""
        from emoshift.features.domain_norm import frame_moments, pooled
        from emoshift.models.adaptation import AdaptationError

        self.check_adaptation(info, "corpus-norm")
        norm: Any = model.norm
        groups, _ = _corpus_inputs(model, info, utterances, cache_dir=cache_dir, progress=progress, raw=True)
        per = [frame_moments(store, [u.id for u in usable]) for usable, store in groups if usable]
        if not per:
            raise AdaptationError("none of the target's audio could be read")
        target = per[0] if len(per) == 1 else pooled(per)
        with torch.no_grad():
            norm.mean.copy_(torch.from_numpy(target.mean))
            norm.std.copy_(torch.from_numpy(target.std))
        return target, sum(len(usable) for usable, _ in groups)

    def prepare_input(self, wave: np.ndarray, fcfg: FeatureConfig) -> torch.Tensor:
        from emoshift.core.audio import crop_or_pad
        from emoshift.features.logmel import log_mel

        spec = crop_or_pad(log_mel(wave, fcfg.sample_rate, fcfg), fcfg.frames_for(fcfg.crop_s), mode="center")
        return torch.from_numpy(np.ascontiguousarray(spec, dtype=np.float32))[None, None]  # (1, 1, n_mels, T)


class ChannelLogMel:
    """A training clip through the channel effects drawn for it (:class:`emoshift.data.augment.WaveChannel`),
    then its log-mel as the cache would compute it (decode, resample, effects, trim, log-mel); None when the
    draw leaves it clean. Never cached: each epoch draws afresh. A plain object so DataLoader workers can
    pickle it."""

    def __init__(self, chain: Any, fcfg: FeatureConfig) -> None:
        self.chain = chain
        self.fcfg = fcfg

    def __call__(self, utt: Utterance, rng: np.random.Generator) -> np.ndarray | None:
        from emoshift.core.audio import load_utterance, trim_silence
        from emoshift.features.logmel import log_mel

        draws = self.chain.draw(rng)
        if not draws:
            return None
        f = self.fcfg
        wave = self.chain.apply(load_utterance(utt, f.sample_rate, reject_silent=False), f.sample_rate, draws)
        if f.trim_silence:
            wave = trim_silence(wave, f.sample_rate, top_db=f.trim_top_db)
        return log_mel(wave, f.sample_rate, f)  # (n_mels, frames)


def _frames(info: ModelRecord) -> int:
    from emoshift.config.features import FeatureConfig

    fcfg = FeatureConfig.model_validate(info.features)
    return fcfg.frames_for(fcfg.crop_s)


def _net(model: nn.Module, info: ModelRecord) -> nn.Module:
    """What the stores' inputs go through: past the fixed standardisation when they come standardised."""
    from emoshift.models.cnn_nets import SpectrogramClassifier

    fixed = info.speaker_norm or info.corpus_normalised
    return model.normalised() if fixed and isinstance(model, SpectrogramClassifier) else model


def _crops(store: Any, chunk: Sequence[Utterance], frames: int) -> torch.Tensor:
    """The centred crops of ``chunk``'s spectrograms: ``(B, 1, n_mels, frames)`` float32."""
    from emoshift.core.audio import crop_or_pad

    x = np.stack([crop_or_pad(store.get(u.id), frames, mode="center") for u in chunk])
    return torch.from_numpy(x.astype(np.float32)).unsqueeze(1)


def _corpus_inputs(
    model: nn.Module, info: ModelRecord, utterances: Sequence[Utterance], *, cache_dir: str, progress: bool,
    raw: bool = False,
) -> tuple[list[tuple[list[Utterance], Any]], list[Skipped]]:
    """Per corpus: (its readable utterances, the store giving them as the net takes them: each speaker's
    z-scores (speaker_norm), the corpus's z-scores over these utterances (domain_norm: corpus), or the log-mels;
    ``raw``: the log-mels whatever the model), and the files that could not be read."""
    from emoshift.config.features import FeatureConfig
    from emoshift.features.cache import FeatureCache
    from emoshift.features.domain_norm import CorpusNormStore, frame_moments

    fcfg = FeatureConfig.model_validate(info.features)
    by_corpus: dict[str, list[Utterance]] = {}
    for u in utterances:
        by_corpus.setdefault(u.corpus, []).append(u)
    cache = FeatureCache(Path(cache_dir) / "features")
    groups: list[tuple[list[Utterance], Any]] = []
    skipped: list[Skipped] = []
    for corpus, utts in by_corpus.items():
        store: Any = cache.build(corpus, utts, fcfg, progress=progress)
        skipped.extend(store.skipped)
        usable = [u for u in utts if u.id in store]
        if raw:
            pass
        elif info.speaker_norm:  # each speaker standardised with their own statistics, as in training
            store = _speaker_normalised(model, {corpus: store}, {u.id: u.speaker for u in usable}, None)[corpus]
        elif info.corpus_normalised and usable:  # the corpus with its own statistics, from this audio alone
            store = CorpusNormStore(store, frame_moments(store, [u.id for u in usable]))
        groups.append((usable, store))
    return groups, skipped


def _corpus_normalised(model: nn.Module, stores: dict[str, Any], train: Sequence[Item], over: str) -> dict[str, Any]:
    """``stores`` whose spectrograms are their corpus's z-scores, each corpus's statistics taken over its training
    utterances (all of them for a corpus with none: one only evaluated); the model's fixed standardisation is
    set to the training corpora's pooled statistics (each corpus weighing the same): what a clip of unknown
    origin gets."""
    from emoshift.features.domain_norm import CorpusNormStore, frame_moments, training_stats

    trained: dict[str, list[str]] = {}
    for it in train:
        trained.setdefault(it.utt.corpus, []).append(it.utt.id)
    stats, target = training_stats(stores, trained, frame_moments, over)
    norm: Any = model.norm
    with torch.no_grad():
        norm.mean.copy_(torch.from_numpy(target.mean))
        norm.std.copy_(torch.from_numpy(target.std))
    return {name: CorpusNormStore(store, stats.moments[name]) for name, store in stores.items()}


def _speaker_normalised(
    model: nn.Module, stores: dict[str, Any], speaker_of: dict[str, str], training_speakers: set[str] | None
) -> dict[str, Any]:
    """``stores`` whose spectrograms are their speakers' z-scores (:mod:`emoshift.features.speaker_norm`).
    ``training_speakers`` (training): also set the model's fixed standardisation, what a clip of an unknown
    speaker gets, to their pooled statistics (every speaker's when the set is empty); None (inference): keep it."""
    from emoshift.features.speaker_norm import SpeakerNormStore, pooled, speaker_moments

    moments = {name: speaker_moments(store, speaker_of) for name, store in stores.items()}
    if training_speakers is not None:
        wanted = training_speakers or {spk for per in moments.values() for spk in per}
        target = pooled([m for per in moments.values() for spk, m in per.items() if spk in wanted])
        norm: Any = model.norm
        with torch.no_grad():
            norm.mean.copy_(torch.from_numpy(target.mean))
            norm.std.copy_(torch.from_numpy(target.std))
    return {name: SpeakerNormStore(store, moments[name], speaker_of) for name, store in stores.items()}
