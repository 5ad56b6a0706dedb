"""True-peak limiter: the last stage of the master bus (differentiable).

Design (a look-ahead brick-wall limiter, stereo-linked):

1. true-peak envelope ``p[n]``: the largest of ``|x|`` at the sample and at three points
   between it and the next, interpolated 4x with a fixed windowed-sinc FIR (BS.1770-4
   measures true peak by 4x oversampling), over both channels;
2. needed gain ``r[n] = min(0, ceiling - 20 log10 p[n])`` dB;
3. look-ahead hold: ``h[n] = min(r[n .. n + A])`` with ``A`` = 5 ms;
4. release: one-pole smoothing of ``h`` with an instant attack and the release time
   (the compressor's compiled smoother kernel), which never rises above ``h``;
5. attack ramp: the mean of the last ``A`` samples of that, in dB, which is at most
   ``r[n]`` (every term covers sample ``n`` in its look-ahead), so the gain is down by
   the time a peak arrives and no sample passes the ceiling.

Between samples the interpolated peak can still pass the ceiling by a few hundredths of
a dB where the gain changes fast: :func:`limiter` measures the result's true peak and
scales it down by the overshoot (``trim``), so the output's 4x true peak never exceeds
the ceiling. Offline (whole songs, or windows of them): there is no latency to add.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from .dynamics import _smooth_fwd, time_to_coef

LOOKAHEAD_MS = 5.0
OVERSAMPLE = 4
TAPS_PER_PHASE = 16
EPS = 1e-8


@functools.lru_cache(maxsize=4)
def _interpolator() -> torch.Tensor:
    """``(OVERSAMPLE - 1, 1, TAPS_PER_PHASE)`` float64 FIR phases that give the values at
    ``k / 4`` (k = 1, 2, 3) of a sample period after each sample (Kaiser-windowed sinc,
    cut-off at the original Nyquist, each phase normalised to unit DC gain)."""
    from scipy.signal import firwin

    # odd length: the delay (32 taps = 8 input samples) falls on the 4x grid, and the value
    # at i + k/4 is sum_l h[k + 4 l] x[i + 8 - l], l = 0..15 (Kaiser beta 5: within 0.05 dB
    # of the exact interpolation up to 0.8 x Nyquist)
    h = firwin(OVERSAMPLE * TAPS_PER_PHASE + 1, 1.0 / OVERSAMPLE, window=("kaiser", 5.0))
    phases = []
    for k in range(1, OVERSAMPLE):
        p = h[k::OVERSAMPLE][:TAPS_PER_PHASE]
        phases.append(p / p.sum())
    return torch.from_numpy(np.stack(phases)[:, None, ::-1].copy())


def true_peak_envelope(x: torch.Tensor) -> torch.Tensor:
    """``x (rows, channels, samples)`` -> ``(rows, samples)``: the largest magnitude over the
    channels, at each sample and 3 interpolated points after it."""
    rows, ch, n = x.shape
    # float32 whatever the input (torch's float64 conv1d is ~10x slower; 1e-7 relative
    # is far below what a true-peak reading needs)
    flat = x.reshape(rows * ch, 1, n).float()
    h = _interpolator().float().to(x.device)
    half = TAPS_PER_PHASE // 2
    # silence before and after, as the file is played (a hard start does overshoot)
    padded = torch.nn.functional.pad(flat, (half - 1, half))
    between = torch.nn.functional.conv1d(padded, h)  # (rows*ch, 3, n)
    env = torch.cat([flat, between], 1).abs().amax(1)  # (rows*ch, n)
    return env.view(rows, ch, n).amax(1).to(x.dtype)


@torch.no_grad()
def gain_db(x: torch.Tensor, ceiling_db: torch.Tensor, release_ms: torch.Tensor, sample_rate: float) -> torch.Tensor:
    """The limiter's gain in dB (<= 0), ``(rows, samples)``, for ``x (rows, channels,
    samples)`` and per-row ``ceiling_db`` (dBTP) and ``release_ms``. Not differentiable:
    :func:`limiter` treats it as a fixed gain curve (see there)."""
    look = max(1, int(round(LOOKAHEAD_MS * 1e-3 * sample_rate)))
    level = 20 * torch.log10(true_peak_envelope(x).double().clamp_min(EPS))
    need = (ceiling_db.double().view(-1, 1) - level).clamp(max=0.0).cpu().numpy()
    # ``look`` samples of 0 dB go in front, so the first samples' ramp starts early enough
    need = np.concatenate([np.zeros((need.shape[0], look)), need], -1)
    # look-ahead hold: min over [n, n + look] (scipy's running minimum is O(n) in the
    # window length, a pooling op is O(n * look)); 0 dB past the end
    held = _running_min_ahead(need, look)
    zero = np.zeros(need.shape[0])
    alpha_r = time_to_coef(release_ms.double().cpu(), sample_rate).numpy()
    smooth, _ = _smooth_fwd(held, zero, alpha_r, zero)  # instant attack, release
    # attack ramp: mean over [n - look + 1, n]
    c = np.concatenate([np.zeros((need.shape[0], 1)), np.cumsum(smooth, -1)], -1)
    ramp = (c[:, look + 1:] - c[:, 1:-look]) / look
    return torch.from_numpy(ramp).to(x)


def _running_min_ahead(a: np.ndarray, look: int) -> np.ndarray:
    """``out[:, n] = min(a[:, n : n + look + 1])`` (values past the end count as 0)."""
    from scipy.ndimage import minimum_filter1d

    padded = np.concatenate([a, np.zeros((a.shape[0], look))], -1)
    # a centred window of size look + 1 moved so that it covers [n, n + look]
    size = look + 1
    out = minimum_filter1d(padded, size, axis=-1, origin=-(size // 2), mode="nearest")
    return out[:, : a.shape[1]]


def limiter(x: torch.Tensor, ceiling_db: torch.Tensor, release_ms: torch.Tensor, sample_rate: float,
            trim: bool = True) -> torch.Tensor:
    """Limit ``x (rows, channels, samples)`` to ``ceiling_db (rows,)`` dB true peak, with
    ``release_ms (rows,)``. With ``trim`` the result is scaled down by whatever true-peak
    overshoot is left, so no interpolated peak passes the ceiling.

    Differentiable in ``x`` with the gain curve held fixed (as the compressor's branch
    decisions are): an optimiser sees what limiting does to the level and the peaks, not
    how the curve would move; the curve's own derivative cost more than the console."""
    y = x * torch.pow(10.0, gain_db(x, ceiling_db, release_ms, sample_rate) / 20).unsqueeze(1)
    if trim:
        # 1e-4 dB under the ceiling: the reading is float32 (about 1e-6 dB)
        over = 20 * torch.log10(true_peak_envelope(y.detach()).amax(-1).clamp_min(EPS)) - (ceiling_db - 1e-4)
        y = y * torch.pow(10.0, -over.clamp_min(0.0) / 20).view(-1, 1, 1)
    return y


def true_peak_db(x: np.ndarray) -> float:
    """4x-oversampled true peak of ``x (channels, samples)`` in dBTP, as :func:`limiter`
    measures it (``-inf`` for silence)."""
    t = torch.from_numpy(np.atleast_2d(np.asarray(x, dtype=np.float64)))[None]
    p = float(true_peak_envelope(t).max()) if t.shape[-1] else 0.0
    return 20 * math.log10(p) if p > 0 else float("-inf")
