"""Batch augmentation: SpecAugment mask geometry, channel augmentation's effect on log-mels, mixup targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emoshift.config import AugmentConfig
from emoshift.data.augment import augment_spectrograms, channel_augment, mixup, spec_augment

B, F, T = 48, 64, 100


@pytest.fixture
def batch() -> torch.Tensor:
    """Log-mel-like dB values ``(B, 1, F, T)`` between about -80 and 0, all distinct."""
    gen = torch.Generator().manual_seed(0)
    return torch.rand(B, 1, F, T, generator=gen) * -80.0


def _runs(flags: np.ndarray) -> list[int]:
    """Lengths of the runs of True in a 1-D bool array."""
    runs, n = [], 0
    for f in [*flags.tolist(), False]:
        if f:
            n += 1
        elif n:
            runs.append(n)
            n = 0
    return runs


# ------------------------------------------------------------------------------------------------ SpecAugment


@pytest.mark.parametrize(
    ("fm", "fw", "tm", "tw"), [(2, 8, 2, 10), (1, 3, 3, 6), (0, 8, 1, 10), (2, 8, 0, 10)]
)
def test_spec_augment_masks_whole_bands_within_counts_and_widths(
    batch: torch.Tensor, fm: int, fw: int, tm: int, tw: int
) -> None:
    cfg = AugmentConfig(specaugment=True, freq_masks=fm, freq_width=fw, time_masks=tm, time_width=tw)
    original = batch.clone()
    out = spec_augment(batch, cfg, torch.Generator().manual_seed(1))
    assert out.shape == batch.shape and out.dtype == batch.dtype
    assert torch.equal(batch, original)  # the input is not modified
    widest_f = widest_t = 0
    for i in range(B):
        masked = (out[i, 0] != batch[i, 0]).numpy()  # (F, T)
        rows, cols = masked.all(axis=1), masked.all(axis=0)
        # every masked cell lies in a fully masked row (frequency band) or column (time band), and back
        np.testing.assert_array_equal(masked, rows[:, None] | cols[None, :])
        assert out[i, 0][masked].eq(batch[i].mean()).all()  # filled with the item's mean
        f_runs, t_runs = _runs(rows), _runs(cols)
        assert len(f_runs) <= fm and sum(f_runs) <= fm * fw and all(r <= fm * fw for r in f_runs)
        assert len(t_runs) <= tm and sum(t_runs) <= tm * tw and all(r <= tm * tw for r in t_runs)
        if len(f_runs) == fm:  # bands that did not touch: each within the width
            assert all(r <= fw for r in f_runs)
        if len(t_runs) == tm:
            assert all(r <= tw for r in t_runs)
        widest_f, widest_t = max([widest_f, *f_runs]), max([widest_t, *t_runs])
    assert (widest_f > 0) == (fm > 0) and (widest_t > 0) == (tm > 0)  # masks do happen


def test_spec_augment_with_no_masks_is_the_identity(batch: torch.Tensor) -> None:
    cfg = AugmentConfig(specaugment=True, freq_masks=0, time_masks=0)
    assert torch.equal(spec_augment(batch, cfg, torch.Generator().manual_seed(0)), batch)


def test_spec_augment_time_width_is_capped_at_the_length() -> None:
    x = torch.rand(16, 1, 8, 5)
    cfg = AugmentConfig(specaugment=True, freq_masks=0, time_masks=1, time_width=500)
    out = spec_augment(x, cfg, torch.Generator().manual_seed(0))
    for i in range(16):
        cols = (out[i, 0] != x[i, 0]).all(dim=0).numpy()
        assert sum(_runs(cols)) <= 5


def test_augmentation_is_deterministic_for_a_generator_seed(batch: torch.Tensor) -> None:
    cfg = AugmentConfig(specaugment=True, bandlimit_p=0.5, noise_p=0.5)
    a = augment_spectrograms(batch, cfg, torch.Generator().manual_seed(3))
    b = augment_spectrograms(batch, cfg, torch.Generator().manual_seed(3))
    c = augment_spectrograms(batch, cfg, torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


# ------------------------------------------------------------------------------------------------ channel


def test_band_limiting_flattens_the_upper_mel_bins_to_the_floor(batch: torch.Tensor) -> None:
    cfg = AugmentConfig(bandlimit_p=1.0)
    original = batch.clone()
    out = channel_augment(batch, cfg, torch.Generator().manual_seed(0))
    assert torch.equal(batch, original)
    kept_bins = []
    for i in range(B):
        changed = (out[i, 0] != batch[i, 0]).any(dim=1).numpy()  # (F,)
        k = int(np.argmax(changed)) if changed.any() else F  # first band-limited bin
        assert not changed[:k].any() and changed[k:].all()  # a suffix: the upper mel bins
        assert out[i, 0, k:].eq(batch[i].min()).all()  # flat at the item's floor
        kept_bins.append(k)
    # 45-95 % of the bins are kept, and the cut-off varies between items
    assert min(kept_bins) >= int(0.45 * F) and max(kept_bins) <= int(np.ceil(0.95 * F))
    assert len(set(kept_bins)) > 5


def test_band_limiting_probability(batch: torch.Tensor) -> None:
    out = channel_augment(batch, AugmentConfig(bandlimit_p=0.5), torch.Generator().manual_seed(0))
    hit = [(out[i] != batch[i]).any().item() for i in range(B)]
    assert 0 < sum(hit) < B
    assert torch.equal(channel_augment(batch, AugmentConfig(), torch.Generator()), batch)  # p = 0: off


def test_noise_raises_the_floor_and_spares_loud_bins(batch: torch.Tensor) -> None:
    lo, hi = 15.0, 30.0
    cfg = AugmentConfig(noise_p=1.0, noise_snr_db=(lo, hi))
    original = batch.clone()
    out = channel_augment(batch, cfg, torch.Generator().manual_seed(0))
    assert torch.equal(batch, original)
    for i in range(B):
        x, y = batch[i], out[i]
        peak = float(x.max())
        assert (y >= x - 1e-4).all()  # adding power never lowers a bin
        assert float(y.min()) >= peak - hi - 1e-3  # the floor rises to at least peak - SNR
        assert float(y.min()) > float(x.min()) + 30.0  # (it was about 80 dB down)
        # a bin at the peak gains at most 10*log10(1 + 10^(-SNR/10)) dB
        loud = x >= peak - 1e-6
        assert float((y - x)[loud].max()) <= 10 * np.log10(1 + 10 ** (-lo / 10)) + 1e-4


def test_noise_probability_leaves_other_items_untouched(batch: torch.Tensor) -> None:
    out = channel_augment(batch, AugmentConfig(noise_p=0.5), torch.Generator().manual_seed(2))
    hit = [(out[i] != batch[i]).any().item() for i in range(B)]
    assert 0 < sum(hit) < B
    for i in range(B):
        if not hit[i]:
            assert torch.equal(out[i], batch[i])


# ------------------------------------------------------------------------------------------------ mixup


@pytest.mark.parametrize("alpha", [0.2, 1.0])
def test_mixup_soft_targets_sum_to_one_and_match_the_mixed_inputs(alpha: float) -> None:
    n = 12
    x = torch.randn(n, 1, 4, 6)
    y = torch.arange(n)  # one class per item, so the targets reveal the pairing and the weight
    torch.manual_seed(0)
    mixed, soft = mixup(x, y, n, alpha, torch.Generator().manual_seed(0))
    assert mixed.shape == x.shape and soft.shape == (n, n)
    assert torch.allclose(soft.sum(dim=1), torch.ones(n))
    assert (soft >= 0).all() and (soft <= 1).all()
    lams = set()
    for i in range(n):
        lam = float(soft[i, i])
        others = [j for j in range(n) if j != i and soft[i, j] > 0]
        if others:  # paired with item j: x_i mixed with x_j with weights lam, 1 - lam
            (j,) = others
            assert float(soft[i, j]) == pytest.approx(1 - lam, abs=1e-6)
            assert torch.allclose(mixed[i], lam * x[i] + (1 - lam) * x[j], atol=1e-6)
        else:  # paired with itself
            assert lam == pytest.approx(1.0) and torch.allclose(mixed[i], x[i], atol=1e-6)
        lams.add(round(lam, 6))
    assert len(lams - {1.0}) == 1  # one mixing weight per batch


def test_mixup_with_alpha_zero_is_the_identity() -> None:
    x, y = torch.randn(5, 1, 3, 3), torch.tensor([0, 2, 1, 2, 0])
    mixed, soft = mixup(x, y, 3, 0.0, torch.Generator().manual_seed(0))
    assert torch.equal(mixed, x)
    assert torch.equal(soft, torch.nn.functional.one_hot(y, 3).float())
