"""Channel strip: gain -> 6-band EQ -> compressor -> pan (mono in, stereo out)."""

from __future__ import annotations

import math

import torch

from . import dynamics, eq
from .params import TRACK_INDEX

GAIN = TRACK_INDEX["gain_db"]
EQ = slice(TRACK_INDEX["eq.low_shelf.gain_db"], TRACK_INDEX["eq.low_shelf.gain_db"] + eq.N_EQ_PARAMS)
COMP = slice(TRACK_INDEX["compressor.threshold_db"], TRACK_INDEX["compressor.threshold_db"] + 6)
PAN = TRACK_INDEX["pan"]


def db_to_gain(db: torch.Tensor) -> torch.Tensor:
    return torch.pow(10.0, db / 20.0)


def pan_gains(pan: torch.Tensor) -> torch.Tensor:
    """-4.5 dB pan law: the geometric mean of the constant-power (-3 dB) and linear
    (-6 dB) laws. ``pan (...)`` in [0, 1] -> ``(..., 2)`` left/right gains;
    centre gives 10^(-4.5/20) on each side, 0 is hard left, 1 hard right."""
    theta = pan * (math.pi / 2)
    # clamp inside the sqrt: at the hard ends the product is 0 and sqrt' would be inf
    left = torch.sqrt(((1 - pan) * torch.cos(theta)).clamp_min(1e-12))
    right = torch.sqrt((pan * torch.sin(theta)).clamp_min(1e-12))
    return torch.stack([left, right], -1)


def strip_mono(
    x: torch.Tensor,
    params: torch.Tensor,
    sample_rate: float,
    eq_method: str = "fft",
    state: dict | None = None,
    eq_tail: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """:func:`channel_strip` before the pan: ``(y (batch, tracks, samples), pan gains
    (batch, tracks, 2), state)``; the wet tracks are ``y[:, :, None] * gains[..., None]``."""
    b, t, n = x.shape
    state = state or {}
    # gain and EQ are both linear and time-invariant, so they commute: the EQ runs on the
    # input itself, which needs no gradient in an optimisation (the EQ's backward then
    # skips its input's irfft), and the gain is applied to its output
    y, eq_state = eq.apply_eq(x, params[..., EQ], sample_rate, eq_method, state.get("eq"), eq_tail)
    y = y * db_to_gain(params[..., GAIN]).unsqueeze(-1)
    y, comp_state = dynamics.compressor(
        y.reshape(b * t, 1, n), params[..., COMP].reshape(b * t, 6), sample_rate, state=state.get("comp")
    )
    return y.view(b, t, n), pan_gains(params[..., PAN]), {"eq": eq_state, "comp": comp_state}


def pan_sum(y: torch.Tensor, gains: torch.Tensor) -> torch.Tensor:
    """Stereo sum of panned mono tracks, ``sum_t gains[:, t, c] * y[:, t]``: the same as
    summing the wet tracks over ``tracks``, as one matrix product (its backward needs no
    ``(batch, tracks, 2, samples)`` temporaries). ``y (b, t, n), gains (b, t, 2) -> (b, 2, n)``."""
    return torch.matmul(gains.transpose(1, 2), y)


def channel_strip(
    x: torch.Tensor,
    params: torch.Tensor,
    sample_rate: float,
    eq_method: str = "fft",
    state: dict | None = None,
) -> tuple[torch.Tensor, dict]:
    """Process mono tracks through their strips.

    Args:
        x: ``(batch, tracks, samples)`` mono tracks.
        params: ``(batch, tracks, len(TRACK_PARAMS))`` real units.
        eq_method: ``"fft"`` (differentiable) or ``"iir"`` (exact, stateful, no grad).
        state: carried from the previous block (``iir`` only), or None.
    Returns:
        ``(wet, state)``: wet ``(batch, tracks, 2, samples)`` and the state for the next block.
    """
    y, gains, state = strip_mono(x, params, sample_rate, eq_method, state)
    return y.unsqueeze(2) * gains.unsqueeze(-1), state
