"""Loudness (ITU-R BS.1770-4): K-weighting, gated integrated loudness, normalisation.

Two paths that compute the same number:

* :func:`integrated_loudness` / :func:`loudness_normalize` on torch tensors, differentiable
  (the K-weighting filters are applied as their exact frequency response on a zero-padded
  FFT grid, the gates are computed without gradient and then held fixed);
* :func:`loudness_np` / :func:`normalize_np` on numpy arrays with ``scipy.signal.sosfilt``,
  fast for whole songs (no gradient).

Both follow pyloudnorm's meter (the filter design, 400 ms blocks with 75 % overlap, the
absolute gate at -70 LUFS and the relative gate 10 LU below the ungated loudness) and
agree with it to a few hundredths of a LU. A signal shorter than one block is measured as
a single block (pyloudnorm refuses it). Loudness of silence is ``-inf``.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from scipy.fft import next_fast_len
from scipy.signal import sosfilt

BLOCK_S = 0.4
HOP_S = 0.1
ABS_GATE = -70.0
REL_GATE = -10.0
OFFSET = -0.691
SILENCE = float("-inf")


def k_weighting_coefficients(sample_rate: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """The two K-weighting biquads (high shelf +4 dB at 1.5 kHz, then the RLB high-pass at
    38 Hz) designed for ``sample_rate`` exactly as pyloudnorm does; ``[(b, a), (b, a)]``
    normalised so ``a[0] = 1``."""
    out = []
    for gain, q, fc, kind in ((4.0, 1 / math.sqrt(2), 1500.0, "shelf"), (0.0, 0.5, 38.0, "hp")):
        A = 10 ** (gain / 40.0)
        w0 = 2.0 * math.pi * fc / sample_rate
        alpha = math.sin(w0) / (2.0 * q)
        c = math.cos(w0)
        if kind == "shelf":
            b = [A * ((A + 1) + (A - 1) * c + 2 * math.sqrt(A) * alpha), -2 * A * ((A - 1) + (A + 1) * c),
                 A * ((A + 1) + (A - 1) * c - 2 * math.sqrt(A) * alpha)]
            a = [(A + 1) - (A - 1) * c + 2 * math.sqrt(A) * alpha, 2 * ((A - 1) - (A + 1) * c),
                 (A + 1) - (A - 1) * c - 2 * math.sqrt(A) * alpha]
        else:
            b = [(1 + c) / 2, -(1 + c), (1 + c) / 2]
            a = [1 + alpha, -2 * c, 1 - alpha]
        b, a = np.array(b) / a[0], np.array(a) / a[0]
        out.append((b, a))
    return out


def k_weighting_response(sample_rate: float, n_fft: int) -> np.ndarray:
    """Complex frequency response of the K-weighting cascade on the rfft grid of
    ``n_fft`` points, ``(n_fft // 2 + 1,)`` complex128."""
    z = np.exp(-1j * 2 * np.pi * np.arange(n_fft // 2 + 1) / n_fft)
    h = np.ones_like(z)
    for b, a in k_weighting_coefficients(sample_rate):
        h *= (b[0] + b[1] * z + b[2] * z * z) / (a[0] + a[1] * z + a[2] * z * z)
    return h


def k_weight(x: torch.Tensor, sample_rate: float) -> torch.Tensor:
    """K-weight ``x (..., samples)`` (differentiable), same length, causal; equal to
    ``lfilter`` of the two biquads up to float rounding (the zero-padding holds the
    filters' whole decay, so nothing wraps around)."""
    n = x.shape[-1]
    n_fft = next_fast_len(n + int(0.25 * sample_rate) + 64, real=True)
    h = torch.from_numpy(k_weighting_response(sample_rate, n_fft)).to(
        device=x.device, dtype=torch.complex128 if x.dtype == torch.float64 else torch.complex64)
    return torch.fft.irfft(torch.fft.rfft(x, n_fft) * h, n_fft)[..., :n]


def block_powers(xk: torch.Tensor, sample_rate: float) -> torch.Tensor:
    """Mean square per 400 ms gating block (hop 100 ms) of K-weighted audio.

    ``xk (..., channels, samples)`` -> ``(..., channels, blocks)``; a signal shorter than a
    block is one block (mean square over what there is)."""
    block = int(round(BLOCK_S * sample_rate))
    hop = int(round(HOP_S * sample_rate))
    sq = xk.square()
    if sq.shape[-1] < block:
        return sq.mean(-1, keepdim=True)
    lead = sq.shape[:-1]
    return torch.nn.functional.avg_pool1d(sq.reshape(-1, 1, sq.shape[-1]), block, hop).view(*lead, -1)


def gated_loudness(z: torch.Tensor) -> torch.Tensor:
    """Integrated loudness from block powers ``z (..., channels, blocks)`` -> ``(...)`` LUFS.

    The blocks of all leading positions are gated separately; to pool several excerpts of
    one song, put their blocks side by side on the last axis first. The gates are computed
    under ``no_grad``: the result is differentiable in ``z`` with the selected blocks held
    fixed. Silence (no block above -70 LUFS) gives ``-inf``."""
    total = z.sum(-2)  # (..., blocks): channel gains G = 1 for L and R
    with torch.no_grad():
        lj = OFFSET + 10 * torch.log10(total.clamp_min(1e-30))
        abs_ok = lj >= ABS_GATE
        n_abs = abs_ok.sum(-1, keepdim=True)
        mean_abs = (total * abs_ok).sum(-1, keepdim=True) / n_abs.clamp_min(1)
        gamma_r = OFFSET + 10 * torch.log10(mean_abs.clamp_min(1e-30)) + REL_GATE
        keep = (abs_ok & (lj > gamma_r)).to(total.dtype)
        n_keep = keep.sum(-1)
    power = (total * keep).sum(-1) / n_keep.clamp_min(1)
    loud = OFFSET + 10 * torch.log10(power.clamp_min(1e-30))
    return torch.where(n_keep > 0, loud, torch.full_like(loud, SILENCE))


def _pooled(z: torch.Tensor, pool: bool) -> torch.Tensor:
    """Block powers ``(B, C, J)`` of B excerpts of one signal -> ``(1, C, B * J)`` (with ``pool``)."""
    return z.transpose(0, 1).reshape(1, z.shape[1], -1) if pool else z


def integrated_loudness(x: torch.Tensor, sample_rate: float, pool: bool = False) -> torch.Tensor:
    """BS.1770 integrated loudness of ``x (batch, channels, samples)`` in LUFS, ``(batch,)``
    (differentiable). With ``pool=True`` the batch items are excerpts of one signal and
    one loudness ``(1,)`` is measured over all their blocks together."""
    return gated_loudness(_pooled(block_powers(k_weight(x, sample_rate), sample_rate), pool))


def gain_to_target_db(z: torch.Tensor, target_lufs: float, pool: bool = False,
                      floor_lufs: float = ABS_GATE) -> torch.Tensor:
    """Gain in dB that brings a signal with block powers ``z (batch, channels, blocks)``
    (:func:`block_powers` of its K-weighted channels) to ``target_lufs``: ``(batch,)``, or
    ``(1,)`` with ``pool`` (one gain for all excerpts). Differentiable with the gates held
    fixed; a signal quieter than ``floor_lufs`` (silence) is measured as ``floor_lufs``, so
    the gain stays finite."""
    loud = gated_loudness(_pooled(z, pool))
    return target_lufs - torch.nan_to_num(loud, neginf=floor_lufs).clamp_min(floor_lufs)


def loudness_normalize(
    x: torch.Tensor, sample_rate: float, target_lufs: float = -16.0, pool: bool = False,
    floor_lufs: float = -70.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale ``x (batch, channels, samples)`` to ``target_lufs`` (differentiable).

    Returns ``(scaled, gain_db)`` with ``gain_db (batch,)`` (or ``(1,)`` with ``pool``: one
    gain for all excerpts, so their relative levels are kept). A signal quieter than
    ``floor_lufs`` (silence) is measured as ``floor_lufs``, so the gain stays finite."""
    gain_db = gain_to_target_db(block_powers(k_weight(x, sample_rate), sample_rate), target_lufs, pool, floor_lufs)
    scale = torch.pow(10.0, gain_db / 20.0).to(x.dtype)
    return x * scale.view(-1, *([1] * (x.dim() - 1))), gain_db


# ----------------------------------------------------------------------------- numpy


def block_powers_np(xk: np.ndarray, sample_rate: float) -> np.ndarray:
    """:func:`block_powers` for numpy ``(channels, samples)`` via cumulative sums (float64)."""
    block = int(round(BLOCK_S * sample_rate))
    hop = int(round(HOP_S * sample_rate))
    n = xk.shape[-1]
    if n < block:
        return np.mean(xk * xk, axis=-1, keepdims=True)
    cs = np.concatenate([np.zeros((xk.shape[0], 1)), np.cumsum(xk * xk, axis=-1)], axis=-1)
    starts = np.arange(0, n - block + 1, hop)
    return (cs[:, starts + block] - cs[:, starts]) / block


def loudness_np(x: np.ndarray, sample_rate: float) -> float:
    """Integrated loudness of ``x (channels, samples)`` or ``(samples,)`` in LUFS (``-inf``
    for silence), with ``scipy.signal.sosfilt``; for whole songs, no gradient."""
    x = np.atleast_2d(np.asarray(x))
    sos = np.stack([np.concatenate([b, a]) for b, a in k_weighting_coefficients(sample_rate)])
    xk = sosfilt(sos, x.astype(np.float64, copy=False), axis=-1)
    return float(gated_loudness(torch.from_numpy(block_powers_np(xk, sample_rate))))


def gain_to_lufs(x: np.ndarray, sample_rate: float, target_lufs: float) -> float:
    """Gain in dB that brings ``x`` to ``target_lufs``; ``nan`` for silence."""
    loud = loudness_np(x, sample_rate)
    return target_lufs - loud if math.isfinite(loud) else float("nan")


def normalize_np(x: np.ndarray, sample_rate: float, target_lufs: float) -> tuple[np.ndarray, float]:
    """``(x scaled to target_lufs, gain_db)``; silence is returned unchanged with gain 0."""
    g = gain_to_lufs(x, sample_rate, target_lufs)
    if not math.isfinite(g):
        return np.asarray(x, dtype=np.float32), 0.0
    return (np.asarray(x) * 10 ** (g / 20)).astype(np.float32), g


# ----------------------------------------------------------------------------- numpy, batched


@functools.lru_cache(maxsize=16)
def _k_sos(sample_rate: int) -> np.ndarray:
    """:func:`k_weighting_coefficients` as ``sos`` rows for ``scipy.signal.sosfilt``."""
    return np.stack([np.concatenate([b, a]) for b, a in k_weighting_coefficients(sample_rate)])


def loudness_batch_np(x: np.ndarray, sample_rate: int, floor: float | None = None) -> np.ndarray:
    """BS.1770-4 integrated loudness (LUFS) of ``x (..., channels, samples)`` -> ``(...)``.

    Channels are summed with weight 1 (mono or stereo). Blocks of 400 ms with 75 %
    overlap; absolute gate -70 LUFS, relative gate -10 LU. A signal with no block above
    the absolute gate (silence) gives ``-inf`` (with ``floor``: every value below
    ``floor``, silence and NaN give ``floor``); one shorter than a block is measured as
    one block of its length. Float32 input is filtered in float32 (faster; within
    0.01 LU of the float64 result), anything else in float64.
    """
    x = np.asarray(x)
    if x.dtype != np.float32:
        x = x.astype(np.float64)
    n = x.shape[-1]
    y = sosfilt(_k_sos(int(sample_rate)).astype(x.dtype), x, axis=-1)
    t_g, step = 0.4, 0.25
    n_blocks = max(int(np.round((n / sample_rate - t_g) / (t_g * step))) + 1, 1)
    hop = t_g * step * sample_rate
    if hop == int(hop) and n_blocks > 1 and (n_blocks + 3) * int(hop) <= n:
        # block boundaries fall on whole 100 ms hops: sum the hops, then 4 hops a block
        hop = int(hop)
        h = (y[..., : (n_blocks + 3) * hop] ** 2).reshape(y.shape[:-1] + (n_blocks + 3, hop)).sum(-1, dtype=np.float64)
        z = (h[..., :-3] + h[..., 1:-2] + h[..., 2:-1] + h[..., 3:]) / (t_g * sample_rate)  # (..., C, J)
    else:
        cs = np.concatenate([np.zeros(y.shape[:-1] + (1,)), np.cumsum(y.astype(np.float64) ** 2, axis=-1)], axis=-1)
        j = np.arange(n_blocks)
        lo = np.minimum((t_g * (j * step) * sample_rate).astype(np.int64), n)
        hi = np.minimum((t_g * (j * step + 1) * sample_rate).astype(np.int64), n)
        z = (cs[..., hi] - cs[..., lo]) / min(t_g * sample_rate, n)  # (..., C, J)
    power = z.sum(axis=-2)  # (..., J)
    with np.errstate(divide="ignore"):
        block = -0.691 + 10 * np.log10(power)
        gate = block >= -70.0
        mean = np.where(gate, power, 0).sum(-1) / np.maximum(gate.sum(-1), 1)
        rel = -0.691 + 10 * np.log10(mean) - 10.0
        gate &= block > rel[..., None]
        mean = np.where(gate, power, 0).sum(-1) / np.maximum(gate.sum(-1), 1)
        out = -0.691 + 10 * np.log10(mean)
    out = np.where(gate.any(-1), out, -np.inf)
    return out if floor is None else np.maximum(np.nan_to_num(out, nan=floor, neginf=floor), floor)


def normalize_batch_np(x: np.ndarray, sample_rate: int, target_lufs: float) -> tuple[np.ndarray, np.ndarray]:
    """Scale ``x (..., channels, samples)`` to ``target_lufs``; silent signals (``-inf``)
    are left as they are. Returns ``(scaled, gain_db (...))``."""
    lufs = loudness_batch_np(x, sample_rate)
    gain_db = np.where(np.isfinite(lufs), target_lufs - lufs, 0.0)
    return (x * (10 ** (gain_db / 20))[..., None, None]).astype(np.float32), gain_db
