"""Channel effects as training augmentation (``training.augment.codec_p`` / ``telephone_p`` / ``reverb_p``):
deterministic per (seed, epoch, step) on waveform batches and per (seed, epoch, item) on log-mel training, the
effects of data/channel.py, and one-line config errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from emoshift.config import AugmentConfig, TrainingConfig
from emoshift.data.augment import WaveChannel, augment_waveforms

ALL = {"codec_p": 1.0, "telephone_p": 1.0, "reverb_p": 1.0, "codecs": ["mp3:16k", "opus:8k", "gsm"]}


def _batch(b: int = 3, s: int = 8_000) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    t = torch.arange(s) / 16_000
    wave = 0.2 * torch.sin(2 * torch.pi * 440 * t).repeat(b, 1) + 0.01 * torch.randn(b, s, generator=gen)
    mask = torch.ones(b, s, dtype=torch.long)
    mask[1, s // 2 :] = 0  # a shorter clip, padded
    return wave * mask, mask


def test_nothing_is_drawn_or_changed_by_default() -> None:
    cfg = AugmentConfig()
    assert not WaveChannel(cfg).active
    wave, mask = _batch()
    gen = torch.Generator().manual_seed(1)
    assert torch.equal(augment_waveforms(wave, mask, cfg, gen), wave)
    assert torch.equal(gen.get_state(), torch.Generator().manual_seed(1).get_state())  # no draw consumed


def test_draws_follow_the_probabilities_in_the_room_codec_line_order() -> None:
    chain = WaveChannel(AugmentConfig(**ALL))
    draws = chain.draw(np.random.default_rng(0))
    assert [p.kind for p, _ in draws][0] == "reverb" and [p.kind for p, _ in draws][-1] == "telephone"
    assert draws[1][0].kind in ("mp3", "opus", "gsm")
    assert 0.2 <= draws[0][0].value <= 0.8  # the default RT60 range
    assert chain.draw(np.random.default_rng(0)) == draws
    none = WaveChannel(AugmentConfig(codec_p=1e-9, telephone_p=1e-9, reverb_p=1e-9))
    assert none.active and none.draw(np.random.default_rng(0)) == []


def test_waveform_batches_are_deterministic_for_the_generator_and_leave_padding_alone() -> None:
    cfg = AugmentConfig(**ALL)
    wave, mask = _batch()
    original = wave.clone()
    a = augment_waveforms(wave, mask, cfg, torch.Generator().manual_seed(5))
    b = augment_waveforms(wave, mask, cfg, torch.Generator().manual_seed(5))
    c = augment_waveforms(wave, mask, cfg, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(wave, original)  # the caller's batch untouched
    assert a.shape == wave.shape and not torch.allclose(a, wave, atol=1e-3)
    assert torch.all(a[1, 4_000:] == 0)  # padding stays padding


class _Passthrough(nn.Module):
    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:  # pragma: no cover
        return x


def test_the_training_module_draws_them_per_seed_epoch_and_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reseeded by the module before each step: the same (seed, epoch, step) gives the same clips, any other
    (seed, epoch or step) different ones."""
    from emoshift.models.families import get_family
    from emoshift.training.module import EmotionModule
    from emoshift.training.objective import ClassObjective

    def augmented(seed: int, epoch: int, step: int) -> torch.Tensor:
        cfg = TrainingConfig(seed=seed, augment=AugmentConfig(**ALL))
        family = get_family("ssl-finetune")
        module = EmotionModule(_Passthrough(), training=cfg, family=family, objective=ClassObjective(["a", "b"], cfg))
        monkeypatch.setattr(EmotionModule, "current_epoch", property(lambda self: epoch))
        wave, mask = _batch()
        batch = {"x": wave, "attention_mask": mask}
        module.on_train_batch_start(batch, step)
        return module.augmented(batch)

    base = augmented(0, 1, 2)
    assert torch.equal(base, augmented(0, 1, 2))
    for other in ((1, 1, 2), (0, 2, 2), (0, 1, 3)):
        assert not torch.equal(base, augmented(*other)), other


def test_log_mel_training_perturbs_the_waveform_per_seed_epoch_and_item(synth_tiny: Path) -> None:
    """The CNN's training clips through the effects before the log-mel (computed afresh, the cache untouched):
    the same (seed, epoch, item) gives the same input, another epoch another draw, validation none."""
    from emoshift.config.features import FeatureConfig
    from emoshift.core.audio import load_utterance
    from emoshift.corpora import scan
    from emoshift.data.datasets import Item, SpectrogramDataset
    from emoshift.features.logmel import log_mel
    from emoshift.models.families.cnn import ChannelLogMel

    utts = scan("ravdess", synth_tiny / "ravdess").utterances[:2]
    fcfg = FeatureConfig(n_mels=32)
    clean = {u.id: log_mel(load_utterance(u, 16_000), 16_000, fcfg) for u in utts}

    class Store:
        def get(self, utt_id: str) -> np.ndarray:
            return clean[utt_id]

    channel = ChannelLogMel(WaveChannel(AugmentConfig(telephone_p=1.0)), fcfg)
    items = [Item(u, 0, 0) for u in utts]

    def dataset(train: bool) -> SpectrogramDataset:
        return SpectrogramDataset(items, {"ravdess": Store()}, frames=10_000, train=train, seed=0, channel=channel)

    train = dataset(True)
    x0 = train[0][0].numpy()
    assert np.array_equal(x0, dataset(True)[0][0].numpy())
    n = clean[utts[0].id].shape[1]
    assert not np.allclose(x0[0, :, :n], clean[utts[0].id], atol=1e-3)
    # the telephone band: the mel bins whose lower edge is above 3.6 kHz fall to the log-mel's floor
    import librosa

    edges = librosa.mel_frequencies(fcfg.n_mels + 2, fmin=fcfg.f_min, fmax=fcfg.fmax_hz)  # slaney, as log_mel
    top = edges[:-2] > 3_600
    spec, ref = channel(utts[0], np.random.default_rng(0)), clean[utts[0].id]
    assert spec is not None and spec.shape[0] == 32
    assert (spec[top] <= spec.min() + 1).mean() > 0.9
    assert (ref[top] <= ref.min() + 1).mean() < 0.5
    assert np.array_equal(dataset(False)[0][0].numpy()[0, :, :n], clean[utts[0].id])  # validation: clean
    reverb = ChannelLogMel(WaveChannel(AugmentConfig(reverb_p=1.0)), fcfg)
    ds = SpectrogramDataset(items, {"ravdess": Store()}, frames=10_000, train=True, seed=0, channel=reverb)
    first = ds[0][0].numpy()
    ds.set_epoch(1)
    assert not np.array_equal(first, ds[0][0].numpy())  # a new room each epoch


@pytest.mark.parametrize(
    ("kw", "says"),
    [
        ({"codecs": ["mp3:16"]}, "codecs takes mp3:<N>k, opus:<N>k or gsm"),
        ({"codecs": ["telephone"]}, "codecs takes"),
        ({"reverb_rt60": (0.9, 0.3)}, "reverb_rt60 must be"),
        ({"codec_p": 0.5, "codecs": []}, "needs at least one codec"),
        ({"telephone_p": 1.5}, "less than or equal to 1"),
    ],
)
def test_bad_channel_augmentation_settings_are_refused(kw: dict, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        AugmentConfig(**kw)


def test_a_bitrate_out_of_range_is_one_line_before_training() -> None:
    from emoshift.data.channel import PerturbationError

    with pytest.raises(PerturbationError, match="outside 8..320"):
        WaveChannel(AugmentConfig(codec_p=0.5, codecs=["mp3:1000k"]))
