"""Channel effects (data/channel.py): each deterministic for a seed and doing what it says (band, level, RT60
measured by Schroeder backward integration on an impulse, codecs keeping length and rate, clipping bounding
amplitude), and one-line errors for bad SPECs."""

from __future__ import annotations

import numpy as np
import pytest

from emoshift.data.channel import KINDS, PerturbationError, parse_perturbation

SR = 16_000
SPECS = ["mp3:16k", "opus:8k", "gsm", "telephone", "noise:snr=10", "reverb:rt60=0.6", "gain:-20db", "clip"]


def _speechlike(seconds: float = 1.5, sr: int = SR) -> np.ndarray:
    """A voiced-sounding test signal: harmonics of a gliding 150-250 Hz pitch, syllable-rate envelope, breath."""
    t = np.arange(int(seconds * sr)) / sr
    f0 = 150 + 100 * t / seconds
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voiced = sum(np.sin(k * phase) / k for k in range(1, 30))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    breath = 0.02 * np.random.default_rng(0).standard_normal(len(t))
    return (0.2 * voiced * env + breath).astype(np.float32)


def _rms_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.asarray(x, np.float64) ** 2)))


def test_the_examples_cover_every_kind() -> None:
    assert {parse_perturbation(s).kind for s in SPECS} == set(KINDS)


@pytest.mark.parametrize("spec", SPECS)
def test_each_is_deterministic_for_a_seed_and_keeps_length_and_rate(spec: str) -> None:
    x = _speechlike()
    p = parse_perturbation(spec)
    a, b = p.apply(x, SR, seed=7), p.apply(x, SR, seed=7)
    assert a.dtype == np.float32 and a.shape == x.shape
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, x, atol=1e-4), f"{spec} left the signal as it was"
    assert parse_perturbation(p.spec) == p  # the canonical spelling reads back
    assert not set(p.slug) & set(":=/\\ "), p.slug


@pytest.mark.parametrize("spec", ["noise:snr=10", "reverb:rt60=0.6"])
def test_the_random_ones_depend_on_the_seed(spec: str) -> None:
    x, p = _speechlike(), parse_perturbation(spec)
    assert not np.allclose(p.apply(x, SR, seed=1), p.apply(x, SR, seed=2))


@pytest.mark.parametrize("sr", [8_000, 16_000, 22_050, 48_000])
@pytest.mark.parametrize("spec", ["mp3:16k", "opus:8k", "gsm"])
def test_codecs_keep_length_and_stay_aligned_at_any_rate(spec: str, sr: int) -> None:
    x = _speechlike(1.0, sr)
    y = parse_perturbation(spec).apply(x, sr)
    assert y.shape == x.shape
    # aligned (the encoder delay removed) and close to the input at the speech's frequencies
    assert np.corrcoef(x, y)[0, 1] > 0.8, spec


def test_telephone_keeps_the_300_to_3400_hz_band() -> None:
    x = np.random.default_rng(0).standard_normal(2 * SR).astype(np.float32) * 0.1  # white: every band has energy
    y = parse_perturbation("telephone").apply(x, SR)
    freqs = np.fft.rfftfreq(len(y), 1 / SR)

    def share(sig: np.ndarray, mask: np.ndarray) -> float:
        power = np.abs(np.fft.rfft(sig)) ** 2
        return float(power[mask].sum() / power.sum())

    above = freqs > 3_600
    assert share(x, above) > 0.5
    assert share(y, above) < 0.01
    assert share(y, freqs < 200) < 0.01
    assert share(y, (freqs > 400) & (freqs < 3_200)) > 0.9


def test_gain_lowers_rms_by_the_asked_decibels() -> None:
    x = _speechlike()
    y = parse_perturbation("gain:-20db").apply(x, SR)
    assert _rms_db(y) - _rms_db(x) == pytest.approx(-20.0, abs=1e-3)


def test_noise_is_added_at_the_asked_snr() -> None:
    x = _speechlike()
    y = parse_perturbation("noise:snr=10").apply(x, SR, seed=3)
    noise = y.astype(np.float64) - x
    assert _rms_db(x) - _rms_db(noise) == pytest.approx(10.0, abs=0.05)


def _rt60_schroeder(ir: np.ndarray, sr: int) -> float:
    """RT60 from Schroeder's backward-integrated energy decay curve, the -5 to -25 dB line (T20) extrapolated
    to 60 dB (ISO 3382)."""
    edc = np.cumsum((ir.astype(np.float64) ** 2)[::-1])[::-1]
    edc_db = 10 * np.log10(edc / edc[0])
    fit = (edc_db <= -5) & (edc_db >= -25)
    t = np.arange(len(ir)) / sr
    slope, _ = np.polyfit(t[fit], edc_db[fit], 1)
    return float(-60.0 / slope)


@pytest.mark.parametrize("rt60", [0.3, 0.6, 1.2])
def test_reverb_decays_at_the_asked_rt60(rt60: float) -> None:
    impulse = np.zeros(int((rt60 + 0.5) * SR), np.float32)
    impulse[0] = 1.0
    ir = parse_perturbation(f"reverb:rt60={rt60}").apply(impulse, SR, seed=5)
    assert _rt60_schroeder(ir, SR) == pytest.approx(rt60, rel=0.1)


def test_clip_bounds_the_amplitude_and_leaves_the_rest() -> None:
    x = _speechlike()
    y = parse_perturbation("clip").apply(x, SR)  # the top 12 dB cut off
    limit = float(np.abs(x).max()) * 10 ** (-12 / 20)
    assert float(np.abs(y).max()) <= limit + 1e-6
    below = np.abs(x) < limit
    np.testing.assert_array_equal(y[below], x[below])
    assert (~below).sum() > 0
    assert float(np.abs(parse_perturbation("clip:6db").apply(x, SR)).max()) > limit  # 6 dB cuts less


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("mp4:16k", "unknown perturbation"),
        ("mp3", "mp3:<kbit/s>k"),
        ("mp3:16", "mp3:<kbit/s>k"),
        ("mp3:1000k", "outside 8..320"),
        ("opus:2k", "outside 6..256"),
        ("noise:10", "noise:snr=<dB>"),
        ("reverb:rt60=9", "outside"),
        ("reverb", "reverb:rt60"),
        ("gain:-20", "gain:<dB>db"),
        ("telephone:8k", "takes no argument"),
        ("clip:loud", "clip or clip:<dB>db"),
        ("", "unknown perturbation"),
    ],
)
def test_bad_specs_get_one_line(spec: str, says: str) -> None:
    with pytest.raises(PerturbationError) as e:
        parse_perturbation(spec)
    assert says in str(e.value) and "\n" not in str(e.value)
