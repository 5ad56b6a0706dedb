"""The paper's AF measure (diffmst.evaluate.metrics) against values computed by hand on
synthetic signals, and its invariances: identical audio scores 0, level and DC do not count."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from diffmst.evaluate import paper_af, paper_features
from diffmst.evaluate.metrics import bark_filterbank, fft_size

SR = 44100


def tone(freq: float, seconds: float = 2.0, amp: float = 0.5, phase: float = 0.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return amp * np.sin(2 * np.pi * freq * t + phase)


def test_dynamics_and_stereo_features_of_sines_by_hand():
    left, right = tone(1000, amp=0.5), tone(1000, amp=0.25)
    f = paper_features(torch.from_numpy(np.stack([left, right]))[None], SR)
    # RMS of a sine of amplitude A: A / sqrt 2; crest 3.01 dB
    np.testing.assert_allclose(f["rms"][0].numpy(), [20 * math.log10(0.5 / math.sqrt(2)),
                                                     20 * math.log10(0.25 / math.sqrt(2))], atol=1e-3)
    np.testing.assert_allclose(f["crest"][0].numpy(), [3.0103, 3.0103], atol=1e-3)
    # width: E[(L-R)^2]/E[(L+R)^2] = (0.25/0.75)^2; imbalance: (1/16 - 1/4) / (1/16 + 1/4) = -0.6
    assert float(f["width"]) == pytest.approx((0.25 / 0.75) ** 2, abs=1e-4)
    assert float(f["imbalance"]) == pytest.approx(-0.6, abs=1e-4)


def test_bark_spectrum_against_a_numpy_stft():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, SR * 3)) * 0.1
    got = paper_features(torch.from_numpy(x)[None], SR)["bark"][0].numpy()
    n_fft = fft_size(SR)
    assert n_fft == 32768
    win = np.hanning(n_fft + 1)[:-1]  # periodic Hann
    hop = n_fft // 4
    fb = bark_filterbank(float(SR), n_fft).numpy()
    for idx, sig in enumerate((x[0] + x[1], x[0] - x[1])):
        padded = np.pad(sig, n_fft // 2, mode="reflect")  # torch.stft's centre=True
        frames = [padded[i:i + n_fft] * win for i in range(0, len(padded) - n_fft + 1, hop)]
        mag = np.abs(np.fft.rfft(frames, axis=-1)).mean(0)
        np.testing.assert_allclose(got[idx], np.log(mag @ fb + 1e-8), atol=1e-6)
    # filters: triangles that reach 1 at their peaks, 24 of them, the last ending at 20 kHz
    freqs = np.fft.rfftfreq(n_fft, 1 / SR)
    assert fb.shape == (n_fft // 2 + 1, 24)
    assert fb.max(0).min() > 0.95
    assert freqs[fb[:, -1] > 0].max() < 20000 and freqs[fb[:, 0] > 0].min() > 20


def test_identical_audio_scores_zero_and_level_and_dc_do_not_count():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((2, SR * 4)) * np.linspace(0.05, 0.2, SR * 4)).astype(np.float32)
    assert paper_af(x, x, SR)["total"] == pytest.approx(0.0, abs=1e-9)
    assert paper_af(0.3 * x, x, SR)["total"] == pytest.approx(0.0, abs=1e-6)
    assert paper_af(x + np.array([[0.2], [-0.1]], np.float32), x, SR)["total"] == pytest.approx(0.0, abs=1e-5)
    # a different sound scores above zero, each term by its own weight
    y = np.stack([x[0], 0.5 * x[1]])
    r = paper_af(y, x, SR)
    assert r["imbalance"] > 0 and r["rms"] > 0
    assert r["total"] == pytest.approx(sum(v for k, v in r.items() if k != "total"))


def test_pooled_excerpts_equal_the_whole_signal():
    rng = np.random.default_rng(2)
    x = torch.from_numpy(rng.standard_normal((2, SR * 4)) * np.linspace(0.05, 0.3, SR * 4))
    whole = paper_features(x[None], SR)
    parts = paper_features(torch.stack(x.split(SR, -1)), SR, pool=True)
    for k in ("rms", "crest", "width", "imbalance"):
        torch.testing.assert_close(parts[k], whole[k], atol=1e-9, rtol=1e-9)

