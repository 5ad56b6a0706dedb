"""Six-band parametric EQ: RBJ-cookbook biquads, applied two ways that agree.

* ``fft`` (differentiable): all six biquads of a channel are evaluated on one rfft grid,
  multiplied, and applied with a single rfft/irfft pair. The signal is zero-padded by
  ``tail`` samples so the (decaying) impulse response does not wrap around; the result is
  then the causal IIR output to within the truncated tail (< -100 dB for the table's
  ranges with the default one-second tail).
* ``iir`` (exact, no gradient): a cascade of transposed direct-form II biquads, compiled
  with numba and parallel over channels, with filter state in and out so a whole song can
  be rendered block by block.

EQ parameter tensors are ``(..., 18)``: for each band of :data:`params.EQ_BANDS` in order
``gain_db, freq_hz, q``. Frequencies are clamped below Nyquist at render time.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch

from .params import EQ_BANDS

N_BANDS = len(EQ_BANDS)
N_EQ_PARAMS = 3 * N_BANDS
# highest usable centre frequency as a fraction of the sample rate (just below Nyquist)
MAX_FREQ_FRACTION = 0.49


def biquad(gain_db: torch.Tensor, freq_hz: torch.Tensor, q: torch.Tensor, sample_rate: float, kind: str):
    """RBJ cookbook biquad, normalised so that ``a0 = 1``.

    Args:
        gain_db, freq_hz, q: tensors of one shape ``S`` (dB, Hz, unitless).
        sample_rate: Hz.
        kind: ``"peaking"``, ``"low_shelf"`` or ``"high_shelf"``.
    Returns:
        ``(b, a)``, each ``(*S, 3)``.
    """
    freq = torch.minimum(freq_hz, torch.full_like(freq_hz, MAX_FREQ_FRACTION * sample_rate))
    A = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * freq / sample_rate
    cos_w0, alpha = torch.cos(w0), torch.sin(w0) / (2.0 * q)
    if kind == "peaking":
        b = (1 + alpha * A, -2 * cos_w0, 1 - alpha * A)
        a = (1 + alpha / A, -2 * cos_w0, 1 - alpha / A)
    elif kind in ("low_shelf", "high_shelf"):
        s = 1.0 if kind == "low_shelf" else -1.0  # high shelf: cookbook signs flipped
        two_sqrt_a_alpha = 2 * torch.sqrt(A) * alpha
        b = (
            A * ((A + 1) - s * (A - 1) * cos_w0 + two_sqrt_a_alpha),
            s * 2 * A * ((A - 1) - s * (A + 1) * cos_w0),
            A * ((A + 1) - s * (A - 1) * cos_w0 - two_sqrt_a_alpha),
        )
        a = (
            (A + 1) + s * (A - 1) * cos_w0 + two_sqrt_a_alpha,
            -s * 2 * ((A - 1) + s * (A + 1) * cos_w0),
            (A + 1) + s * (A - 1) * cos_w0 - two_sqrt_a_alpha,
        )
    else:
        raise ValueError(f"unknown biquad kind {kind!r}")
    b, a = torch.stack(b, -1), torch.stack(a, -1)
    return b / a[..., :1], a / a[..., :1]


def eq_coefficients(eq_params: torch.Tensor, sample_rate: float):
    """All six biquads: ``eq_params (..., 18)`` -> ``b, a`` each ``(..., 6, 3)``."""
    bs, as_ = [], []
    for k, (_, kind, *_rest) in enumerate(EQ_BANDS):
        g, f, q = eq_params[..., 3 * k], eq_params[..., 3 * k + 1], eq_params[..., 3 * k + 2]
        b, a = biquad(g, f, q, sample_rate, kind)
        bs.append(b)
        as_.append(a)
    return torch.stack(bs, -2), torch.stack(as_, -2)


def response(b: torch.Tensor, a: torch.Tensor, n_fft: int) -> torch.Tensor:
    """Product of biquad responses on the rfft grid of length ``n_fft``.

    ``b, a (..., bands, 3)`` -> complex ``(..., n_fft // 2 + 1)``. Evaluated in float64:
    near DC a low-frequency biquad's denominator is ~1e-6 and float32 would lose it.
    """
    w = torch.arange(n_fft // 2 + 1, dtype=torch.float64, device=b.device) * (2 * math.pi / n_fft)
    z1 = torch.polar(torch.ones_like(w), -w)  # e^{-jw}
    z2 = z1 * z1
    b64, a64 = b.to(torch.float64).unsqueeze(-1), a.to(torch.float64).unsqueeze(-1)
    num = b64[..., 0, :] + b64[..., 1, :] * z1 + b64[..., 2, :] * z2
    den = a64[..., 0, :] + a64[..., 1, :] * z1 + a64[..., 2, :] * z2
    return torch.prod(num / den, dim=-2)


def good_fft_size(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n (fast for pocketfft, at most ~1.25 n)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def eq_fft(x: torch.Tensor, eq_params: torch.Tensor, sample_rate: float, tail: int | None = None) -> torch.Tensor:
    """Differentiable EQ with one rfft/irfft pair per channel.

    Args:
        x: ``(..., samples)`` audio.
        eq_params: ``(..., 18)`` broadcastable to ``x``'s leading shape.
        tail: zero-padding in samples (default: one second, at least 4096).
    Returns:
        ``(..., samples)``, time-aligned with ``x`` (causal, no latency).
    """
    n = x.shape[-1]
    tail = max(4096, int(sample_rate)) if tail is None else tail
    n_fft = good_fft_size(n + tail)
    b, a = eq_coefficients(eq_params, sample_rate)
    h = response(b, a, n_fft).to(torch.complex64 if x.dtype == torch.float32 else torch.complex128)
    y = torch.fft.irfft(torch.fft.rfft(x, n_fft) * h, n_fft)
    return y[..., :n]


# numba, not scipy.signal.sosfilt: sosfilt takes one filter per call, so 16 tracks with
# different settings would need a Python loop over tracks; this kernel runs all channels,
# each with its own cascade, in parallel, and keeps state for block-wise rendering.
@numba.njit(parallel=True, cache=True, fastmath=False)
def _sos_kernel(x, sos, zi):  # pragma: no cover - compiled
    rows, n = x.shape
    n_sec = sos.shape[1]
    y = np.empty_like(x)
    for r in numba.prange(rows):
        z = zi[r].copy()
        for i in range(n):
            v = x[r, i]
            for s in range(n_sec):
                b0, b1, b2 = sos[r, s, 0], sos[r, s, 1], sos[r, s, 2]
                a1, a2 = sos[r, s, 4], sos[r, s, 5]
                out = b0 * v + z[s, 0]
                z[s, 0] = b1 * v - a1 * out + z[s, 1]
                z[s, 1] = b2 * v - a2 * out
                v = out
            y[r, i] = v
        zi[r] = z
    return y


def eq_iir(
    x: torch.Tensor, eq_params: torch.Tensor, sample_rate: float, state: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact recursive EQ (no gradient), for rendering long audio block by block.

    Args:
        x: ``(..., samples)``.
        eq_params: ``(..., 18)`` broadcastable to ``x``'s leading shape.
        state: ``(..., 6, 2)`` float64 filter state from the previous block, or None (zeros).
    Returns:
        ``(y, new_state)``; ``y`` like ``x``.
    """
    lead = x.shape[:-1]
    b, a = eq_coefficients(eq_params.detach().to(torch.float64), sample_rate)
    sos = torch.cat([b, a], -1).expand(*lead, N_BANDS, 6).reshape(-1, N_BANDS, 6)
    xs = x.detach().reshape(-1, x.shape[-1]).to(torch.float64).numpy()
    z = (
        np.zeros((xs.shape[0], N_BANDS, 2))
        if state is None
        else state.reshape(-1, N_BANDS, 2).to(torch.float64).numpy().copy()
    )
    y = _sos_kernel(np.ascontiguousarray(xs), np.ascontiguousarray(sos.numpy()), z)
    return torch.from_numpy(y).to(x.dtype).reshape(x.shape), torch.from_numpy(z).reshape(*lead, N_BANDS, 2)
