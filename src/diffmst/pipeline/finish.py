"""Finishing a mix: the output loudness, reached through the master's true-peak limiter.

A mastered reference is loud (often -8 to -14 LUFS) with its peaks just under full scale;
reaching its loudness means limiting. :func:`finish` sets the master gain so that the mix
*after* the limiter has the target integrated loudness, and the limiter's ceiling so that
no 4x-oversampled peak passes it. The settings it returns render the same audio with
:func:`diffmst.console.render`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..console.limiter import true_peak_db
from ..console.master import limit_master
from ..console.params import MASTER_INDEX, MASTER_PARAMS
from ..loudness import loudness_np
from .song import Notify, quiet

TOLERANCE_LU = 0.05
MAX_ITER = 8


def ceiling_for(reference_tp_db: float, reference_lufs: float, target_lufs: float, peak_dbtp: float) -> float:
    """The limiter ceiling (dBTP) that gives a mix at ``target_lufs`` the reference's peak
    to loudness ratio: the reference's true peak moved to the target loudness, never above
    ``peak_dbtp`` and within the parameter's range."""
    spec = MASTER_PARAMS[MASTER_INDEX["limiter.ceiling_db"]]
    want = reference_tp_db + (target_lufs - reference_lufs)
    return float(min(max(min(want, peak_dbtp), spec.min), spec.max))


@dataclass
class Finished:
    """What :func:`finish` did: output loudness and true peak, the gain it applied, and
    whether the target was out of reach (master gain at its range end)."""

    lufs: float
    true_peak_db: float
    gain_change_db: float
    reached: bool


def finish(premix: np.ndarray, master_params: torch.Tensor, sample_rate: int, target_lufs: float,
           ceiling_db: float, expected_loss_db: float = 0.0) -> tuple[np.ndarray, Finished]:
    """Bring ``premix (2, samples)`` (the console's mix before the limiter) to ``target_lufs``
    after the limiter.

    ``master_params (len(MASTER_PARAMS),)`` are updated in place: ``limiter.ceiling_db``
    set to ``ceiling_db`` and ``gain_db`` changed by the gain found (secant steps on the
    loudness after limiting, which grows with the gain but by less than 1 LU per dB once
    the limiter works; the first guess adds ``expected_loss_db``, the loudness the limiter
    is expected to take away). Returns ``(mix (2, samples) float32, Finished)``."""
    gi = MASTER_INDEX["gain_db"]
    gspec = MASTER_PARAMS[gi]
    master_params[MASTER_INDEX["limiter.ceiling_db"]] = float(ceiling_db)
    base = float(master_params[gi])
    lo, hi = gspec.min - base, gspec.max - base
    x = torch.from_numpy(np.ascontiguousarray(premix, dtype=np.float32))[None]
    params = master_params[None].to(x.dtype)

    def attempt(change: float) -> tuple[np.ndarray, float]:
        y = limit_master(x * 10 ** (change / 20), params, sample_rate)[0].numpy()
        return y, loudness_np(y, sample_rate)

    loud0 = loudness_np(premix, sample_rate)
    if not math.isfinite(loud0):  # silence: nothing to set
        y, _ = attempt(0.0)
        return y, Finished(float("-inf"), true_peak_db(y), 0.0, False)
    change = min(max(target_lufs - loud0 + expected_loss_db, lo), hi)
    y, loud = attempt(change)
    prev = None
    for _ in range(MAX_ITER):
        err = target_lufs - loud
        if abs(err) <= TOLERANCE_LU or (change >= hi and err > 0) or (change <= lo and err < 0):
            break
        slope = 1.0
        if prev is not None and abs(change - prev[0]) > 1e-6:
            slope = min(max((loud - prev[1]) / (change - prev[0]), 0.05), 1.0)
        prev = (change, loud)
        change = min(max(change + err / slope, lo), hi)
        y, loud = attempt(change)
    master_params[gi] = float(base + change)
    return y.astype(np.float32), Finished(loud, true_peak_db(y), change, abs(target_lufs - loud) <= 0.5)


def finish_song(song, settings, target_lufs: float, ceiling_db: float, expected_loss_db: float = 0.0,
                notify: Notify = quiet) -> tuple[np.ndarray, Finished]:
    """Render ``song`` (a :class:`~diffmst.audio.Tracks`) with ``settings`` at its own rate
    and :func:`finish` it; ``settings`` are updated in place (level moved into the tracks
    where the master gain cannot reach, :func:`shift_level`; the master gain and limiter
    ceiling), so they re-render the returned mix ``(2, samples)`` exactly."""
    from ..console import render

    audio = torch.from_numpy(song.audio)[None, :, None]

    def premix() -> np.ndarray:
        return render(audio, settings.track_params[None], settings.master_params[None], song.sample_rate,
                      limit=False)[0].numpy()

    pre = premix()
    if shift_level(settings, target_lufs + expected_loss_db - loudness_np(pre, song.sample_rate)):
        pre = premix()
    mix, finished = finish(pre, settings.master_params, song.sample_rate, target_lufs, ceiling_db, expected_loss_db)
    if not finished.reached:
        notify(f"mix reaches {finished.lufs:.1f} LUFS, not the {target_lufs:.1f} asked: the master gain "
               "is at its range end")
    return mix, finished


def shift_level(settings, change_db: float, spare_db: float = 3.0) -> bool:
    """Make room for a master gain change of ``change_db`` (the loss is blind to the overall
    level, so the optimiser may leave the mix far from the output loudness): what the master
    gain's range (less ``spare_db`` for finishing's own steps) cannot take moves into every
    track's gain, with every compressor's threshold moved alike so that it acts the same.
    Only as far as no setting leaves its range (a clamped gain or threshold would change
    the mix's balance); the rest is left to the master gain. Returns whether anything moved."""
    from ..console.params import MASTER_INDEX, MASTER_PARAMS, TRACK_INDEX, TRACK_PARAMS

    spec = MASTER_PARAMS[MASTER_INDEX["gain_db"]]
    want = float(settings.master_params[MASTER_INDEX["gain_db"]]) + change_db
    excess = want - min(max(want, spec.min + spare_db), spec.max - spare_db)
    if abs(excess) < 0.01:
        return False
    tp, mp = settings.track_params, settings.master_params
    gi, ti, mi = TRACK_INDEX["gain_db"], TRACK_INDEX["compressor.threshold_db"], MASTER_INDEX["compressor.threshold_db"]
    cols = [(tp[:, gi], TRACK_PARAMS[gi]), (tp[:, ti], TRACK_PARAMS[ti]), (mp[mi:mi + 1], MASTER_PARAMS[mi])]
    room_up = min(float((p.max - v).min()) for v, p in cols)
    room_down = max(float((p.min - v).max()) for v, p in cols)
    shift = min(max(excess, room_down), room_up)
    if abs(shift) < 0.01:
        return False
    tp[:, gi] += shift
    tp[:, ti] += shift
    mp[mi] += shift
    return True


def clip_to_table(settings) -> None:
    """Round-off can leave a value a hair outside its range: clip so the file validates."""
    import torch

    from ..console.params import MASTER_PARAMS, TRACK_PARAMS, table

    for attr, specs in (("track_params", TRACK_PARAMS), ("master_params", MASTER_PARAMS)):
        v = getattr(settings, attr)
        lo, hi = table(specs, "min").to(v), table(specs, "max").to(v)
        setattr(settings, attr, torch.maximum(torch.minimum(v, hi), lo))
