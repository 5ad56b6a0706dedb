"""Master bus: stereo EQ (same settings on both channels) -> linked compressor -> gain."""

from __future__ import annotations

import torch

from . import dynamics, eq
from .params import MASTER_INDEX
from .strip import db_to_gain

EQ = slice(MASTER_INDEX["eq.low_shelf.gain_db"], MASTER_INDEX["eq.low_shelf.gain_db"] + eq.N_EQ_PARAMS)
COMP = slice(MASTER_INDEX["compressor.threshold_db"], MASTER_INDEX["compressor.threshold_db"] + 6)
GAIN = MASTER_INDEX["gain_db"]


def master_bus(
    mix: torch.Tensor,
    params: torch.Tensor,
    sample_rate: float,
    eq_method: str = "fft",
    state: dict | None = None,
    eq_tail: int | None = None,
) -> tuple[torch.Tensor, dict]:
    """Args: ``mix (batch, 2, samples)``, ``params (batch, len(MASTER_PARAMS))`` real units.
    Returns ``(mastered (batch, 2, samples), state)``."""
    state = state or {}
    eq_params = params[:, EQ].unsqueeze(1)  # broadcast over the two channels
    y, eq_state = eq.apply_eq(mix, eq_params, sample_rate, eq_method, state.get("eq"), eq_tail)
    y, comp_state = dynamics.compressor(y, params[:, COMP], sample_rate, link=True, state=state.get("comp"))
    y = y * db_to_gain(params[:, GAIN]).view(-1, 1, 1)
    return y, {"eq": eq_state, "comp": comp_state}
