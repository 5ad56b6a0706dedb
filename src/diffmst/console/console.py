"""The differentiable mixing console: strips -> sum -> master bus.

``console(tracks, track_params, master_params, sample_rate)`` is the differentiable
form for training and optimisation (segments of seconds). ``render`` is the same
signal path for whole songs: exact recursive EQ and the compressor run block by block
with their state carried over, under ``torch.no_grad``, in bounded memory.
"""

from __future__ import annotations

from typing import Callable

import torch

from .master import limit_master, master_bus
from .params import MASTER_PARAMS, TRACK_PARAMS
from .strip import pan_sum, strip_mono


def _check(tracks: torch.Tensor, track_params: torch.Tensor, master_params: torch.Tensor) -> None:
    if tracks.dim() != 4 or tracks.shape[2] != 1:
        raise ValueError(f"tracks must be (batch, tracks, 1, samples), got {tuple(tracks.shape)}")
    b, t = tracks.shape[:2]
    if track_params.shape != (b, t, len(TRACK_PARAMS)):
        raise ValueError(f"track_params must be {(b, t, len(TRACK_PARAMS))}, got {tuple(track_params.shape)}")
    if master_params.shape != (b, len(MASTER_PARAMS)):
        raise ValueError(f"master_params must be {(b, len(MASTER_PARAMS))}, got {tuple(master_params.shape)}")


def console(
    tracks: torch.Tensor,
    track_params: torch.Tensor,
    master_params: torch.Tensor,
    sample_rate: float,
    eq_method: str = "fft",
    eq_tail: int | None = None,
    wet: bool = True,
    limit: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Mix tracks through the console (differentiable w.r.t. tracks and every parameter).

    Args:
        tracks: ``(batch, tracks, 1, samples)`` mono tracks (zeros for padding slots).
        track_params: ``(batch, tracks, len(TRACK_PARAMS))`` real units.
        master_params: ``(batch, len(MASTER_PARAMS))`` real units.
        sample_rate: Hz; any rate (frequencies are clamped below Nyquist).
        eq_method: ``"fft"`` (differentiable) or ``"iir"`` (exact, no gradient).
        eq_tail: the ``fft`` EQ's zero-padding in samples (default one second: no
            wrap-around). Shorter is cheaper and wraps the impulse responses' tails onto
            the first samples: for analysis windows whose warm-up is discarded.
        wet: also return the wet tracks (False: ``None`` in their place; an optimiser
            that only needs the mix saves a ``(batch, tracks, 2, samples)`` tensor).
        limit: apply the master's true-peak limiter (False: an optimiser that sets the
            output level itself applies :func:`diffmst.console.limiter.limiter` after it).
    Returns:
        ``(mix, wet)``: mix ``(batch, 2, samples)``, wet tracks ``(batch, tracks, 2, samples)``.
    """
    _check(tracks, track_params, master_params)
    y, gains, _ = strip_mono(tracks[:, :, 0], track_params, sample_rate, eq_method, eq_tail=eq_tail)
    # the bus is pan_sum(y, gains) (= wet.sum(1)), so a loss on the mix alone never
    # back-propagates through the (batch, tracks, 2, samples) wet tensor
    mix, _ = master_bus(pan_sum(y, gains), master_params, sample_rate, eq_method, eq_tail=eq_tail, limit=limit)
    return mix, (y.unsqueeze(2) * gains.unsqueeze(-1) if wet else None)  # wet = channel_strip(...)


class Console(torch.nn.Module):
    """:func:`console` as a module (no weights), for composing with networks."""

    def __init__(self, sample_rate: float, eq_method: str = "fft"):
        super().__init__()
        self.sample_rate = sample_rate
        self.eq_method = eq_method

    def forward(self, tracks, track_params, master_params):
        return console(tracks, track_params, master_params, self.sample_rate, self.eq_method)


@torch.no_grad()
def render(
    tracks: torch.Tensor,
    track_params: torch.Tensor,
    master_params: torch.Tensor,
    sample_rate: float,
    block_size: int = 1 << 18,
    progress: Callable[[int, int], None] | None = None,
    limit: bool = True,
) -> torch.Tensor:
    """Render a whole song, block by block with filter and compressor state carried over.

    Same signal path and shapes as :func:`console` (the mix only); the result equals a
    single-pass ``console(..., eq_method="iir")`` exactly and the ``fft`` path to within
    its tail truncation. The master's true-peak limiter looks ahead, so it runs on the
    whole mix after the blocks. Peak memory is the input plus the output plus a few blocks
    (and the limiter's few whole-song gain curves).

    Args:
        block_size: samples per block (default 262144, ~5.5 s at 48 kHz).
        progress: called as ``progress(samples_done, samples_total)`` after each block.
        limit: apply the master's true-peak limiter (False: the mix before it).
    Returns:
        mix ``(batch, 2, samples)``.
    """
    _check(tracks, track_params, master_params)
    b, _, _, n = tracks.shape
    out = torch.empty(b, 2, n, dtype=tracks.dtype)
    strip_state: dict | None = None
    master_state: dict | None = None
    for start in range(0, n, block_size):
        block = tracks[:, :, 0, start : start + block_size]
        y, gains, strip_state = strip_mono(block, track_params, sample_rate, "iir", strip_state)
        mixed, master_state = master_bus(pan_sum(y, gains), master_params, sample_rate, "iir", master_state,
                                         limit=False)
        out[:, :, start : start + block.shape[-1]] = mixed
        if progress is not None:
            progress(min(start + block_size, n), n)
    return limit_master(out, master_params, sample_rate) if limit else out
