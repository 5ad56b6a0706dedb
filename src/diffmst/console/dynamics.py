"""Feed-forward compressor: log-domain gain computer + attack/release smoother.

Design (Giannoulis, Massberg & Reiss, JAES 2012, "smooth branching" in the log domain):

1. level ``x_db = 20 log10(max(|x|, eps))`` (for a linked stereo compressor, of
   ``max(|L|, |R|)``);
2. static curve with soft knee ``W`` around threshold ``T``, ratio ``R``::

       y = x                                   2 (x - T) <  -W
       y = x + (1/R - 1) (x - T + W/2)^2 / 2W   |2 (x - T)| <= W
       y = T + (x - T) / R                     2 (x - T) >   W

   gain reduction ``g_c = y - x <= 0`` dB;
3. one-pole smoother with **two** time constants::

       g[n] = a g[n-1] + (1 - a) g_c[n],  a = a_attack if g_c[n] < g[n-1] else a_release

   ``a = exp(-ln 9 / (t * sr))`` so that ``t`` is the 10-90 % time of a step;
4. output ``x * 10^((g + makeup) / 20)``.

dasp-pytorch (the paper's code) smooths with the attack constant only, because the
branching recursion cannot be written as a linear filter. Here the recursion runs in a
compiled numba kernel, and its backward pass is the exact adjoint recursion (the branch
decisions are piecewise constant), also compiled: no Python per-sample loop either way.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch

EPS = 1e-8  # level floor: -160 dB
LN9 = math.log(9.0)


def time_to_coef(time_ms: torch.Tensor, sample_rate: float) -> torch.Tensor:
    """Smoothing coefficient for a 10-90 % time of ``time_ms`` at ``sample_rate``."""
    return torch.exp(-LN9 / (time_ms * 1e-3 * sample_rate))


def gain_computer(level_db: torch.Tensor, threshold_db, ratio, knee_db) -> torch.Tensor:
    """Static soft-knee curve; returns gain reduction in dB (<= 0), same shape as ``level_db``."""
    over = level_db - threshold_db
    slope = 1.0 / ratio - 1.0
    knee = slope * (over + knee_db / 2) ** 2 / (2 * knee_db)
    above = slope * over
    g = torch.where(2 * over < -knee_db, torch.zeros_like(level_db), knee)
    return torch.where(2 * over > knee_db, above, g)


@numba.njit(parallel=True, cache=True)
def _smooth_fwd(gc, alpha_a, alpha_r, zi):  # pragma: no cover - compiled
    rows, n = gc.shape
    y = np.empty_like(gc)
    attack = np.empty((rows, n), dtype=np.bool_)
    for r in numba.prange(rows):
        prev = zi[r]
        aa, ar = alpha_a[r], alpha_r[r]
        for i in range(n):
            x = gc[r, i]
            att = x < prev
            a = aa if att else ar
            prev = a * prev + (1.0 - a) * x
            y[r, i] = prev
            attack[r, i] = att
    return y, attack


@numba.njit(parallel=True, cache=True)
def _smooth_bwd(grad_y, y, gc, attack, alpha_a, alpha_r, zi):  # pragma: no cover - compiled
    # adjoint of y[i] = a_i y[i-1] + (1 - a_i) gc[i]:
    #   lam[i] = grad_y[i] + a_{i+1} lam[i+1];  d gc[i] = (1 - a_i) lam[i]
    #   d a_i  = lam[i] (y[i-1] - gc[i]);       d zi = a_0 lam[0]
    rows, n = gc.shape
    g_gc = np.empty_like(gc)
    g_aa = np.zeros(rows, dtype=gc.dtype)
    g_ar = np.zeros(rows, dtype=gc.dtype)
    g_zi = np.zeros(rows, dtype=gc.dtype)
    for r in numba.prange(rows):
        aa, ar = alpha_a[r], alpha_r[r]
        lam = 0.0
        a_next = 0.0
        sa = 0.0
        sr = 0.0
        for i in range(n - 1, -1, -1):
            lam = grad_y[r, i] + a_next * lam
            a = aa if attack[r, i] else ar
            g_gc[r, i] = (1.0 - a) * lam
            prev = y[r, i - 1] if i > 0 else zi[r]
            d = lam * (prev - gc[r, i])
            if attack[r, i]:
                sa += d
            else:
                sr += d
            a_next = a
        g_aa[r] = sa
        g_ar[r] = sr
        g_zi[r] = a_next * lam
    return g_gc, g_aa, g_ar, g_zi


class _Smooth(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gc, alpha_a, alpha_r, zi):
        gc_np = gc.detach().cpu().contiguous().numpy()
        dt = gc_np.dtype
        aa = alpha_a.detach().cpu().numpy().astype(dt)
        ar = alpha_r.detach().cpu().numpy().astype(dt)
        z = zi.detach().cpu().numpy().astype(dt)
        y, attack = _smooth_fwd(gc_np, aa, ar, z)
        y_t = torch.from_numpy(y).to(gc.device)
        ctx.save_for_backward(gc, alpha_a, alpha_r, zi, y_t)
        ctx.attack = attack
        return y_t

    @staticmethod
    def backward(ctx, grad_y):
        gc, alpha_a, alpha_r, zi, y = ctx.saved_tensors
        dt = gc.dtype
        np_ = lambda t: t.detach().cpu().contiguous().numpy()  # noqa: E731
        g_gc, g_aa, g_ar, g_zi = _smooth_bwd(
            np_(grad_y.to(dt)), np_(y), np_(gc), ctx.attack,
            np_(alpha_a.to(dt)), np_(alpha_r.to(dt)), np_(zi.to(dt)),
        )
        dev = gc.device
        return (
            torch.from_numpy(g_gc).to(dev),
            torch.from_numpy(g_aa).to(dev, alpha_a.dtype),
            torch.from_numpy(g_ar).to(dev, alpha_r.dtype),
            torch.from_numpy(g_zi).to(dev, zi.dtype),
        )


def smooth_gain(
    gc: torch.Tensor, alpha_attack: torch.Tensor, alpha_release: torch.Tensor, state: torch.Tensor | None = None
) -> torch.Tensor:
    """Attack/release smoothing of gain reduction (differentiable in every input).

    Args:
        gc: ``(rows, samples)`` gain reduction, dB.
        alpha_attack, alpha_release: ``(rows,)`` coefficients in (0, 1).
        state: ``(rows,)`` smoother value before the first sample (default 0 dB).
    Returns:
        ``(rows, samples)`` smoothed gain, dB; its last column is the next block's state.
    """
    if state is None:
        state = torch.zeros(gc.shape[0], dtype=gc.dtype, device=gc.device)
    return _Smooth.apply(gc, alpha_attack, alpha_release, state)


def compressor(
    x: torch.Tensor,
    params: torch.Tensor,
    sample_rate: float,
    link: bool = False,
    state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Compress ``x``.

    Args:
        x: ``(rows, channels, samples)``; with ``link=False`` every channel is compressed
            on its own, with ``link=True`` one gain (from ``max |x|`` over channels) is
            applied to all channels of a row.
        params: ``(rows, 6)`` in real units: threshold_db, ratio, attack_ms, release_ms,
            knee_db, makeup_db (the order of :func:`params._compressor_specs`).
        state: smoother state from the previous block, ``(rows * c,)`` where ``c`` is 1
            when linked else ``channels``; None starts at 0 dB.
    Returns:
        ``(y, new_state)``, ``y`` like ``x``.
    """
    rows, ch, n = x.shape
    thr, ratio, att, rel, knee, makeup = params.unbind(-1)
    mag = x.abs().amax(dim=1, keepdim=True) if link else x.abs()
    c = mag.shape[1]
    level = 20.0 * torch.log10(mag.clamp_min(EPS))
    col = lambda p: p.view(rows, 1, 1)  # noqa: E731
    gc = gain_computer(level, col(thr), col(ratio), col(knee))
    rep = lambda p: p.repeat_interleave(c)  # noqa: E731
    g = smooth_gain(
        gc.reshape(rows * c, n), rep(time_to_coef(att, sample_rate)), rep(time_to_coef(rel, sample_rate)), state
    ).view(rows, c, n)
    y = x * torch.pow(10.0, (g + col(makeup)) / 20.0)
    return y, g[..., -1].reshape(-1).detach()
