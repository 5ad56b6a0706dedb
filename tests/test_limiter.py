"""The master's true-peak limiter: true-peak reading against exact band-limited
interpolation, the ceiling held on loud signals, the gain curve against a plain numpy loop,
render == console with the limiter, and finishing a mix at a loud reference's loudness."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.signal import resample

from diffmst.console import Settings, console, render
from diffmst.console.master import limit_master
from diffmst.console.limiter import LOOKAHEAD_MS, gain_db, limiter, true_peak_db, true_peak_envelope
from diffmst.console.params import MASTER_INDEX
from diffmst.loudness import loudness_np
from diffmst.pipeline.finish import ceiling_for, finish


def band_limited_noise(n: int, channels: int = 2, seed: int = 0, top: float = 0.8) -> np.ndarray:
    """White noise with nothing above ``top`` x Nyquist, ``(channels, n)`` float64, faded
    in and out over 64 samples (so that its periodic interpolation is also what a player
    makes of it, with silence around)."""
    rng = np.random.default_rng(seed)
    spec = np.fft.rfft(rng.standard_normal((channels, n)), axis=-1)
    spec[:, int(n / 2 * top):] = 0
    i = np.arange(n)
    return np.fft.irfft(spec, n, axis=-1) * np.minimum(1.0, np.minimum(i, i[::-1]) / 64)


def exact_true_peak_db(x: np.ndarray, factor: int = 16) -> float:
    """Peak of the (periodic) band-limited interpolation, ``factor`` x oversampled."""
    return 20 * math.log10(np.abs(resample(x, x.shape[-1] * factor, axis=-1)).max())


def test_true_peak_reads_the_peaks_between_samples():
    x = band_limited_noise(8192, seed=1)
    exact = exact_true_peak_db(x)
    sample_peak = 20 * math.log10(np.abs(x).max())
    tp = true_peak_db(x)
    assert exact - sample_peak > 0.3  # the signal's peak lies between samples
    # 4x oversampling finds most of it: at 0.8 x Nyquist it can read at most
    # 1 - cos(pi * 0.4 / 4) = 0.44 dB low (BS.1770-4 allows 0.69 dB at Nyquist)
    assert sample_peak < tp <= exact + 1e-6 and exact - tp < 0.44
    # a full-scale sine at fs/4 with a 45 degree phase: samples at 0.707, true peak 1.0
    # (faded in and out: a hard start from silence would overshoot)
    n = np.arange(4096)
    fade = np.minimum(1.0, np.minimum(n, n[::-1]) / 256)
    s = (np.sin(np.pi / 2 * n + np.pi / 4) * fade)[None]
    assert abs(true_peak_db(s)) < 0.05
    assert 20 * math.log10(np.abs(s).max()) == pytest.approx(-3.01, abs=0.01)


@pytest.mark.parametrize("ceiling", [-1.0, -6.0])
def test_no_true_peak_passes_the_ceiling_and_quiet_signals_are_untouched(ceiling):
    sr = 44100
    loud = torch.from_numpy(band_limited_noise(sr, seed=2) * 0.8)[None]  # peaks near +9 dBFS
    y = limiter(loud, torch.tensor([ceiling]), torch.tensor([80.0]), sr)
    assert exact_true_peak_db(y[0].numpy()) <= ceiling + 0.44  # what 4x can miss at 0.8 x Nyquist
    assert true_peak_db(y[0].numpy()) <= ceiling + 1e-9
    # the limiter only turns down
    assert (y.abs() <= loud.abs() + 1e-12).all()
    quiet = loud * 10 ** ((ceiling - 12 - true_peak_db(loud[0].numpy())) / 20)
    assert torch.equal(limiter(quiet, torch.tensor([ceiling]), torch.tensor([80.0]), sr), quiet)


def loop_gain_db(level_db: np.ndarray, ceiling: float, release_ms: float, sr: int) -> np.ndarray:
    """The limiter's gain curve as a plain per-sample loop: hold the lowest needed gain of
    the next 5 ms, release with a one-pole filter, ramp as the mean of the last 5 ms."""
    look = int(round(LOOKAHEAD_MS * 1e-3 * sr))
    need = np.minimum(0.0, ceiling - level_db)
    n = len(need)
    a = math.exp(-math.log(9) / (release_ms * 1e-3 * sr))
    ext = np.concatenate([np.zeros(look), need])
    held = np.array([min(ext[i:i + look + 1].min(), 0.0 if i + look + 1 > len(ext) else 0.0) for i in range(len(ext))])
    smooth = np.empty_like(held)
    prev = 0.0
    for i, h in enumerate(held):
        prev = h if h < prev else a * prev + (1 - a) * h
        smooth[i] = prev
    return np.array([smooth[i + 1:i + look + 1].mean() for i in range(n)])


def test_gain_curve_matches_a_plain_loop():
    sr = 8000
    x = torch.from_numpy(band_limited_noise(2000, seed=3) * 0.5)[None]
    x[..., 700:900] *= 4  # a loud burst: attack, hold and release all happen
    level = 20 * np.log10(np.maximum(true_peak_envelope(x)[0].numpy(), 1e-8))
    got = gain_db(x, torch.tensor([-3.0]), torch.tensor([50.0]), sr)[0].numpy()
    want = loop_gain_db(level, -3.0, 50.0, sr)
    np.testing.assert_allclose(got, want, atol=1e-9)
    assert got.min() < -6  # the burst is limited hard
    assert (got <= np.minimum(0.0, -3.0 - level) + 1e-12).all()  # never above what a sample needs


def test_render_applies_the_limiter_as_the_console_does():
    sr, n = 16000, 6000
    rng = np.random.default_rng(4)
    x = torch.from_numpy(rng.standard_normal((1, 3, 1, n)) * 0.5)
    s = Settings.default(["a", "b", "c"])
    mp = s.master_params.double().clone()
    mp[MASTER_INDEX["gain_db"]] = 12.0
    mp[MASTER_INDEX["limiter.ceiling_db"]] = -2.0
    tp = s.track_params.double()[None]
    whole, _ = console(x, tp, mp[None], sr, eq_method="iir")
    blocks = render(x, tp, mp[None], sr, block_size=1000)
    np.testing.assert_allclose(blocks.numpy(), whole.numpy(), atol=1e-9)
    assert true_peak_db(blocks[0].numpy()) <= -2.0 + 1e-9
    unlimited = render(x, tp, mp[None], sr, block_size=1000, limit=False)
    assert true_peak_db(unlimited[0].numpy()) > 3.0  # the limiter did the work


def test_finish_reaches_a_loud_references_loudness_under_the_ceiling():
    sr = 44100
    # a "song": band-limited noise with a drum-like burst every half second
    t = np.arange(sr * 8)
    env = 0.2 + np.exp(-(t % (sr // 2)) / (0.03 * sr))
    premix = (band_limited_noise(len(t), seed=6, top=0.9) * env * 0.3).astype(np.float32)  # about -16 LUFS
    ceiling = ceiling_for(reference_tp_db=0.5, reference_lufs=-9.0, target_lufs=-9.0, peak_dbtp=-1.0)
    assert ceiling == -1.0
    mp = Settings.default(["x"]).master_params.clone()
    mix, info = finish(premix, mp, sr, -9.0, ceiling)
    assert abs(loudness_np(mix, sr) - -9.0) <= 0.1
    assert true_peak_db(mix) <= -1.0 + 1e-6 and info.reached
    assert info.gain_change_db > 7  # the limiter took several dB: the gain went past the plain 7 dB
    # the master settings reproduce it: their gain, then their limiter, on the same premix
    redo = limit_master(torch.from_numpy(premix)[None] * 10 ** (float(mp[MASTER_INDEX["gain_db"]]) / 20),
                        mp[None], sr)[0].numpy()
    np.testing.assert_allclose(redo, mix, atol=1e-6)
    # a quieter target keeps the reference's peak-to-loudness ratio: the ceiling moves down
    assert ceiling_for(0.5, -9.0, -16.0, -1.0) == pytest.approx(-6.5)
    # out of the master gain's reach: said, not hidden
    quiet, info = finish(premix * 1e-3, Settings.default(["x"]).master_params.clone(), sr, -9.0, ceiling)
    assert not info.reached and info.lufs < -20
