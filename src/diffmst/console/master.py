"""Master bus: stereo EQ (same settings on both channels) -> linked compressor -> gain ->
true-peak limiter."""

from __future__ import annotations

import torch

from . import dynamics, eq
from .limiter import limiter
from .params import MASTER_INDEX
from .strip import db_to_gain

EQ = slice(MASTER_INDEX["eq.low_shelf.gain_db"], MASTER_INDEX["eq.low_shelf.gain_db"] + eq.N_EQ_PARAMS)
COMP = slice(MASTER_INDEX["compressor.threshold_db"], MASTER_INDEX["compressor.threshold_db"] + 6)
GAIN = MASTER_INDEX["gain_db"]
CEILING = MASTER_INDEX["limiter.ceiling_db"]
RELEASE = MASTER_INDEX["limiter.release_ms"]


def master_bus(
    mix: torch.Tensor,
    params: torch.Tensor,
    sample_rate: float,
    eq_method: str = "fft",
    state: dict | None = None,
    eq_tail: int | None = None,
    limit: bool = True,
) -> tuple[torch.Tensor, dict]:
    """Args: ``mix (batch, 2, samples)``, ``params (batch, len(MASTER_PARAMS))`` real units;
    ``limit``: apply the true-peak limiter (it looks ahead, so :func:`render` runs it on
    the whole song after the blocks and calls this with ``limit=False``).
    Returns ``(mastered (batch, 2, samples), state)``."""
    state = state or {}
    eq_params = params[:, EQ].unsqueeze(1)  # broadcast over the two channels
    y, eq_state = eq.apply_eq(mix, eq_params, sample_rate, eq_method, state.get("eq"), eq_tail)
    y, comp_state = dynamics.compressor(y, params[:, COMP], sample_rate, link=True, state=state.get("comp"))
    y = y * db_to_gain(params[:, GAIN]).view(-1, 1, 1)
    if limit:
        y = limit_master(y, params, sample_rate)
    return y, {"eq": eq_state, "comp": comp_state}


def limit_master(y: torch.Tensor, params: torch.Tensor, sample_rate: float) -> torch.Tensor:
    """The master's true-peak limiter on ``y (batch, 2, samples)`` with ``params``' settings."""
    return limiter(y, params[:, CEILING], params[:, RELEASE], sample_rate)
