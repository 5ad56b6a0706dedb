"""Style features against independent numpy computations on signals with known answers."""

import math

import numpy as np
import pyloudnorm as pyln
import pytest
import torch
from scipy.fft import next_fast_len

from diffmst.features import (
    BARK_EDGES_HZ,
    bark_long_term,
    bark_power,
    bark_spectrum,
    crest_db,
    frame_features,
    FeatureConfig,
    prepare,
    rms_db,
    stereo_imbalance,
    stereo_width,
    style_features,
)

SR = 24000


def k_gain_db(freq, sr=SR):
    """|K-weighting| at ``freq`` in dB, from pyloudnorm's own filter coefficients."""
    from scipy.signal import freqz

    meter = pyln.Meter(sr)
    h = 1.0
    for f in meter._filters.values():
        h = h * freqz(f.b, f.a, worN=[freq], fs=sr)[1][0]
    return 20 * np.log10(abs(h))


def k_weighted(x, sr=SR):
    from scipy.signal import lfilter

    for f in pyln.Meter(sr)._filters.values():
        x = lfilter(f.b, f.a, x)
    return x


def stereo(left, right=None):
    right = left if right is None else right
    return torch.from_numpy(np.stack([left, right]).astype(np.float32))[None]


def sine(freq, amp, seconds=2.0, sr=SR, phase=0.0):
    t = np.arange(int(seconds * sr)) / sr
    return amp * np.sin(2 * np.pi * freq * t + phase)


def white(seconds=4.0, sr=SR, seed=0, scale=0.1):
    return np.random.default_rng(seed).normal(0, scale, int(seconds * sr))


def pink(seconds=8.0, sr=48000, seed=0):
    """Pink noise by shaping white noise's spectrum with 1/sqrt(f) (numpy only)."""
    n = int(seconds * sr)
    spec = np.fft.rfft(np.random.default_rng(seed).normal(size=n))
    f = np.fft.rfftfreq(n, 1 / sr)
    spec[1:] /= np.sqrt(f[1:])
    spec[0] = 0
    y = np.fft.irfft(spec, n)
    return 0.1 * y / y.std()


def test_sine_rms_and_crest():
    for freq, amp in [(1000.0, 0.5), (440.0, 0.1), (3000.0, 0.25)]:
        x = stereo(sine(freq, amp))
        # RMS is K-weighted (as LUFS hears it)
        expected = 20 * np.log10(amp / np.sqrt(2)) + k_gain_db(freq)
        assert float(rms_db(x, SR)) == pytest.approx(expected, abs=0.05)
        assert float(crest_db(x, SR)) == pytest.approx(10 * np.log10(2), abs=0.05)  # 3.01 dB


def test_square_wave_crest_near_zero_and_noise_rms():
    sq = np.sign(sine(250.0, 1.0)) * 0.3
    # a band-limited square overshoots (Gibbs) a little, but its crest is far below a sine's
    assert float(crest_db(stereo(sq), SR)) < 2.0
    w = white(scale=0.05)
    expected = 10 * np.log10(np.mean(k_weighted(w) ** 2))
    assert float(rms_db(stereo(w), SR)) == pytest.approx(expected, abs=0.15)


def test_rms_over_both_channels():
    left, right = sine(1000, 0.5), sine(700, 0.1)
    expected = 10 * np.log10((np.mean(left**2) * 10 ** (k_gain_db(1000) / 10)
                              + np.mean(right**2) * 10 ** (k_gain_db(700) / 10)) / 2)
    assert float(rms_db(stereo(left, right), SR)) == pytest.approx(expected, abs=0.1)


def test_mono_width_and_imbalance_zero():
    x = stereo(white())
    assert float(stereo_width(x, SR)) == pytest.approx(0.0, abs=1e-6)
    assert float(stereo_imbalance(x, SR)) == pytest.approx(0.0, abs=1e-6)


def test_left_only_and_right_only():
    w = white()
    left = stereo(w, np.zeros_like(w))
    assert float(stereo_imbalance(left, SR)) == pytest.approx(-1.0, abs=1e-6)
    assert float(stereo_width(left, SR)) == pytest.approx(1.0, abs=1e-6)
    right = stereo(np.zeros_like(w), w)
    assert float(stereo_imbalance(right, SR)) == pytest.approx(1.0, abs=1e-6)


def test_width_imbalance_against_numpy():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 0.1, (2, 4 * SR))
    for mix in [0.0, 0.3, 0.7, 1.0]:
        left, right = a, 0.6 * ((1 - mix) * a + mix * b)
        width = np.mean((left - right) ** 2) / np.mean((left + right) ** 2)
        imbalance = (np.mean(right**2) - np.mean(left**2)) / (np.mean(right**2) + np.mean(left**2))
        x = stereo(left, right)
        assert float(stereo_width(x, SR)) == pytest.approx(width, rel=0.01)
        assert float(stereo_imbalance(x, SR)) == pytest.approx(imbalance, abs=0.01)


def _band_means_of_inverse_f():
    """0.5 ln of the mean of a 1/f PSD over each band, exactly: ln(hi / lo) / (hi - lo)."""
    lo, hi = np.array(BARK_EDGES_HZ[:-1], float), np.array(BARK_EDGES_HZ[1:], float)
    return 0.5 * np.log(np.log(hi / lo) / (hi - lo))


def test_pink_noise_bark_slope():
    sr = 48000
    x = stereo(pink(sr=sr))
    bark = bark_spectrum(x, sr)[0].double().numpy()
    expected = _band_means_of_inverse_f()
    mid = bark[0]
    # same shape up to a constant; skip band 0 (20-100 Hz: the 20 Hz high-pass)
    diff = (mid - expected)[1:]
    assert np.max(np.abs(diff - diff.mean())) < 0.05
    # the fitted slope of log power against log centre frequency is -1 for pink noise
    centres = np.sqrt(np.array(BARK_EDGES_HZ[1:-1]) * np.array(BARK_EDGES_HZ[2:]))
    slope = np.polyfit(np.log(centres), 2 * mid[1:], 1)[0]
    assert slope == pytest.approx(-1.0, abs=0.08)
    # mono: the side spectrum is at the floor in every band, far below the mid
    assert np.all(bark[1] < mid - 5)


def _np_long_term(x, sr):
    """numpy: band means of |rfft|^2 / sum(w^2) of mid and side, 50 ms raised-cosine ends."""
    n = x.shape[-1]
    ramp = min(int(0.05 * sr), n // 8)
    w = np.ones(n)
    rise = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)
    w[:ramp], w[n - ramp:] = rise, rise[::-1]
    n_fft = next_fast_len(n, real=True)  # zero-padded to a length the FFT does fast
    f = np.fft.rfftfreq(n_fft, 1 / sr)
    out = np.zeros((2, 24))
    for c, sig in enumerate(((x[0] + x[1]) / 2, (x[0] - x[1]) / 2)):
        p = np.abs(np.fft.rfft(sig * w, n_fft)) ** 2 / np.sum(w * w)
        for k, (lo, hi) in enumerate(zip(BARK_EDGES_HZ[:-1], BARK_EDGES_HZ[1:])):
            sel = (f >= lo) & (f < hi) & (f < sr / 2)
            out[c, k] = p[sel].mean() if sel.any() else 0.0
    return out


@pytest.mark.parametrize("n", [24000, 24001, 7919])
def test_long_term_bark_against_numpy_and_gradient(n):
    rng = np.random.default_rng(n)
    x = rng.normal(0, 0.1, (2, n)) * np.array([[1.0], [0.4]])
    got = bark_long_term(torch.from_numpy(x)[None], SR)[0].numpy()
    want = _np_long_term(x, SR)
    assert np.allclose(got, want, rtol=1e-6, atol=1e-14)
    # the hand-written backward against finite differences (float64)
    small = torch.from_numpy(rng.normal(0, 0.1, (1, 2, n % 1000 + 500))).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: bark_long_term(t, SR), (small,), eps=1e-6, atol=1e-7)


def test_long_term_bark_is_the_mean_of_the_frame_spectra():
    # both estimate the mean band power: on stationary noise they agree closely
    rng = np.random.default_rng(2)
    x = torch.from_numpy(rng.normal(0, 0.1, (1, 2, 8 * SR)).astype(np.float32))
    x[:, 1] *= 0.3
    long_term = 0.5 * torch.log(bark_long_term(x, SR))[0, :, :23]
    frames = 0.5 * torch.log(bark_power(x, SR).mean(2))[0, :, :23]
    assert torch.allclose(long_term, frames, atol=0.05)


def test_white_noise_bark_level_and_bands_above_nyquist():
    w = white(seconds=6.0, scale=0.1)
    bark = bark_spectrum(stereo(w), SR)[0, 0].numpy()
    # white noise of RMS s reads ln s in every band below Nyquist (band 0 loses its bottom to the high-pass)
    assert np.allclose(bark[1:23], np.log(0.1), atol=0.06)
    # at 24 kHz the 12-15.5 kHz band is above Nyquist: floor value
    assert bark[23] == pytest.approx(0.5 * np.log(1e-10), abs=1e-3)


def frame_powers(sig):
    """numpy: mean square per 0.4 s frame (hop 0.2 s) of ``sig`` less the 25 ms filter margins."""
    frame, hop, edge = int(0.4 * SR), int(0.2 * SR), int(0.025 * SR)
    s = sig[edge:-edge]
    return np.array([np.mean(s[i : i + frame] ** 2) for i in range(0, len(s) - frame + 1, hop)])


def test_frame_features_follow_level_changes():
    a = sine(1000, 0.5, seconds=2.0)
    b = sine(1000, 0.05, seconds=2.0)
    x = stereo(np.concatenate([a, b]))
    cfg = FeatureConfig(frame_s=0.4, hop_s=0.2)
    ff = frame_features(x, SR, cfg)
    rms = ff["rms"][0].numpy()
    expected = 10 * np.log10(frame_powers(np.concatenate([a, b]))) + k_gain_db(1000)
    assert len(rms) == len(expected)
    # away from the step and the ends the frames read the numpy values
    assert np.allclose(rms[1:7], expected[1:7], atol=0.1)
    assert np.allclose(rms[-7:-1], expected[-7:-1], atol=0.1)
    summary = style_features(x, SR, config=cfg)
    assert float(summary["rms"]) == pytest.approx(np.mean(rms), abs=1e-3)


def test_silent_frames_left_out_of_summary():
    a = sine(1000, 0.5, seconds=2.0)
    sig = np.concatenate([a, np.zeros(2 * SR)])
    both = style_features(stereo(sig), SR)
    # numpy: frame RMS of the signal (less the 25 ms filter margins), gated at -70 dBFS;
    # the others count at no less than 20 dB below their power mean
    p = frame_powers(sig)
    level = 10 * np.log10(p + 1e-12)
    loud = level > -70
    floor = 10 * np.log10(p[loud].mean()) - 20
    assert float(both["rms"]) == pytest.approx(np.maximum(level[loud], floor).mean() + k_gain_db(1000), abs=0.1)
    # the silent half does not drag the level down (it would be ~-60 dB with it)
    assert float(both["rms"]) > 20 * np.log10(0.5 / np.sqrt(2)) - 1.0


def _loud_then_quiet(quiet_db, noise=False):
    a = sine(1000, 0.5, seconds=2.0)
    if noise:  # crest ~12 dB against the sine's 3 dB
        b = np.random.default_rng(0).normal(0, 0.5 / np.sqrt(2), 2 * SR) * 10 ** (quiet_db / 20)
    else:
        b = sine(1000, 0.5 * 10 ** (quiet_db / 20), seconds=2.0)
    return np.concatenate([a, b])


def test_quiet_frames_count_at_the_floor():
    sig = _loud_then_quiet(-45.0)
    got = float(style_features(stereo(sig), SR)["rms"])
    # numpy: frames of the signal (less the 25 ms filter margins); a frame more than 20 dB
    # below the power mean of the frames above -70 dBFS counts as lying 20 dB below it
    p = frame_powers(sig)
    level = 10 * np.log10(p + 1e-12)
    floor = 10 * np.log10(p[level > -70].mean()) - 20
    assert (level < floor).sum() >= 5  # the quiet half is below the floor
    assert got == pytest.approx(np.maximum(level, floor).mean() + k_gain_db(1000), abs=0.1)


def test_summaries_continuous_as_a_passage_crosses_the_floor():
    # an optimiser turning a quiet passage down must see the summaries move smoothly:
    # a gate that drops frames would jump by ~10 dB here
    quiet = np.arange(-10.0, -35.01, -0.25)
    feats = [style_features(stereo(_loud_then_quiet(q, noise=True)), SR) for q in quiet]
    rms = np.array([float(f["rms"]) for f in feats])
    crest = np.array([float(f["crest"]) for f in feats])
    assert np.abs(np.diff(rms)).max() < 0.3
    assert np.abs(np.diff(crest)).max() < 0.3
    assert rms[0] - rms[-1] > 3.0  # turning it down lowers the mean frame level,
    assert crest[0] - crest[-1] > 1.0  # and the noisy passage's crest fades out of the mean


def test_pool_matches_concatenation():
    w = np.random.default_rng(5).normal(0, 0.1, (2, 4 * SR))
    w[1] *= 0.5
    halves = torch.from_numpy(np.stack([w[:, : 2 * SR], w[:, 2 * SR :]]).astype(np.float32))
    pooled = style_features(halves, SR, pool=True)
    whole = style_features(torch.from_numpy(w.astype(np.float32))[None], SR)
    for k in ("rms", "width", "imbalance"):
        assert float(pooled[k]) == pytest.approx(float(whole[k]), abs=0.02)
    assert torch.allclose(pooled["bark"], whole["bark"], atol=0.05)


def test_dc_offset_and_infrasonic_drift_are_ignored():
    rng = np.random.default_rng(9)
    music = np.stack([sine(220, 0.2, 4.0) + rng.normal(0, 0.03, 4 * SR),
                      sine(330, 0.15, 4.0) + rng.normal(0, 0.03, 4 * SR)])
    t = np.arange(music.shape[1]) / SR
    dirty = music + np.array([[0.3], [-0.2]]) + 0.2 * np.sin(2 * np.pi * 3.0 * t + 0.4)
    clean_f = style_features(torch.from_numpy(music.astype(np.float32))[None], SR)
    dirty_f = style_features(torch.from_numpy(dirty.astype(np.float32))[None], SR)
    assert float(dirty_f["rms"]) == pytest.approx(float(clean_f["rms"]), abs=0.1)
    assert float(dirty_f["crest"]) == pytest.approx(float(clean_f["crest"]), abs=0.1)
    assert float(dirty_f["width"]) == pytest.approx(float(clean_f["width"]), abs=0.01)
    assert float(dirty_f["imbalance"]) == pytest.approx(float(clean_f["imbalance"]), abs=0.01)
    assert torch.allclose(dirty_f["bark"], clean_f["bark"], atol=0.05)


def test_rms_weights_like_loudness():
    """RMS is K-weighted like LUFS: rumble counts as much as a loudness meter hears it, and at
    equal loudness a bass-heavy and a bright signal have the same RMS."""
    x = sine(30.0, 0.5, 4.0)
    plain = 20 * np.log10(0.5 / np.sqrt(2))
    r = (30 / 20) ** 4
    hp = r / np.sqrt(1 + r * r)  # the 20 Hz high-pass (4th-order Butterworth magnitude)
    assert float(rms_db(stereo(x), SR)) == pytest.approx(plain + k_gain_db(30) + 20 * np.log10(hp), abs=0.1)
    meter = pyln.Meter(SR)
    levels = []
    for sig in (sine(60.0, 0.5, 4.0) + sine(120.0, 0.3, 4.0), sine(3000.0, 0.1, 4.0) + sine(6000, 0.1, 4.0)):
        sig = sig / 10 ** ((meter.integrated_loudness(sig) + 16) / 20)
        levels.append(float(rms_db(stereo(sig), SR)))
    assert levels[0] == pytest.approx(levels[1], abs=0.1)


def test_features_differentiable():
    x = torch.from_numpy(np.random.default_rng(1).normal(0, 0.1, (2, 2, SR)).astype(np.float32))
    x.requires_grad_(True)
    f = style_features(x, SR, pool=True)
    total = sum(v.sum() for v in f.values())
    total.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("n", [300, 225])  # FFT sizes 900 and 675
def test_prepare_gradient(n):
    """prepare's hand-written backward (the filters' transpose) against finite differences,
    for both outputs (the reflection's length sets the FFT size: even and odd)."""
    x = torch.from_numpy(np.random.default_rng(n).normal(0, 0.1, (1, 2, n))).requires_grad_(True)
    for out in (0, 1):
        assert torch.autograd.gradcheck(lambda t: prepare(t, 8000)[out], (x,), eps=1e-6, atol=1e-7)
    assert torch.autograd.gradcheck(lambda t: sum(prepare(t, 8000)), (x,), eps=1e-6, atol=1e-7)


def test_features_of_silence_are_finite():
    x = torch.zeros(1, 2, SR, requires_grad=True)
    f = style_features(x, SR)
    total = sum(v.sum() for v in f.values())
    total.backward()
    assert all(torch.isfinite(v).all() for v in f.values())
    assert torch.isfinite(x.grad).all()


def test_shape_check():
    with pytest.raises(ValueError):
        rms_db(torch.zeros(1, 1, 100), SR)
    assert math.isfinite(float(rms_db(torch.ones(1, 2, 10) * 0.1 + torch.randn(1, 2, 10) * 0.1, SR)))
