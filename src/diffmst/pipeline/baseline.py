"""The equal-loudness baseline: every source equally loud, centred (stereo files hard
left/right), no processing: the floor every mixing method must beat, and the optimiser's start."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..errors import DiffmstError
from .options import PEAK_DBFS, TARGET_LUFS
from .song import Notify, as_tracks, quiet, source_groups


PAN_CENTRE_DB = 10 * math.log10(2 * 10 ** (-4.5 / 10))  # a centred mono source: -1.49 dB


def linear_mix(audio: np.ndarray, settings) -> np.ndarray:
    """Mix of a console with flat EQ and no compression: gains and pans only, ``(2, samples)``
    (identical to rendering such settings, much faster)."""

    from ..console.params import MASTER_INDEX, TRACK_INDEX
    from ..console.strip import pan_gains

    tp = settings.track_params.double()
    g = 10 ** (tp[:, TRACK_INDEX["gain_db"]] / 20)
    lr = pan_gains(tp[:, TRACK_INDEX["pan"]]) * g[:, None]  # (tracks, 2)
    lr = lr * 10 ** (float(settings.master_params[MASTER_INDEX["gain_db"]]) / 20)
    return (lr.T.numpy().astype(np.float32) @ audio).astype(np.float32)


def equal_loudness_settings(tracks, target_lufs: float = TARGET_LUFS, peak_dbfs: float = PEAK_DBFS,
                            notify: Notify = quiet, sample_rate: int | None = None,
                            names: Sequence[str] | None = None):
    """The equal-loudness baseline: every source (a mono track, or a stereo file's L/R pair)
    brought to the same loudness, mono tracks centred and stereo pairs hard left/right,
    flat EQ, no compression; the master gain sets the mix to ``target_lufs`` (lower if a
    peak would exceed ``peak_dbfs``). Silent tracks keep 0 dB. Returns a
    :class:`~diffmst.console.Settings` for the tracks' names. ``tracks`` as for
    :func:`optimize` (an array needs ``sample_rate``; ``names`` ending ``.L``/``.R`` pair up)."""
    return equal_loudness(as_tracks(tracks, sample_rate, names, notify), target_lufs, peak_dbfs, notify)[0]


def equal_loudness(tracks, target_lufs: float, peak_dbfs: float, notify: Notify,
                    level_notify: Notify | None = None):
    """``(settings, levels_db (tracks,))``: see :func:`equal_loudness_settings`; the notice
    about the mix level goes to ``level_notify`` (default ``notify``)."""
    from ..console import Settings
    from ..console.params import TRACK_INDEX, TRACK_PARAMS
    from ..loudness import loudness_np

    settings = Settings.default(tracks.names)
    groups = source_groups(tracks.names)
    loud = [loudness_np(tracks.audio[idx], tracks.sample_rate) for idx in groups]
    active = [i for i, v in enumerate(loud) if math.isfinite(v)]
    if not active:
        raise DiffmstError(f"{where(tracks)}: all tracks are silent (below -70 LUFS)")
    silent = [tracks.names[groups[i][0]].rsplit(".", 1)[0] if len(groups[i]) == 2 else tracks.names[groups[i][0]]
              for i in range(len(groups)) if i not in active]
    if silent:
        notify(f"silent track(s) left at 0 dB: {', '.join(silent)}")
    share = target_lufs - 10 * math.log10(len(active))  # each source's part of the mix
    gspec = TRACK_PARAMS[TRACK_INDEX["gain_db"]]
    clamped = []
    for gi in active:
        idx = groups[gi]
        want = share - loud[gi] - (PAN_CENTRE_DB if len(idx) == 1 else 0.0)
        gain = min(max(want, gspec.min), gspec.max)
        if abs(gain - want) > 0.05:
            clamped.append(f"{tracks.names[idx[0]]} ({want:+.1f} dB)")
        settings.track_params[idx, TRACK_INDEX["gain_db"]] = gain
    if clamped:
        notify(f"track gain outside [{gspec.min:g}, {gspec.max:g}] dB, clamped: {', '.join(clamped)}")
    mix = linear_mix(tracks.audio, settings)
    set_master_level(settings, mix, tracks.sample_rate, target_lufs, peak_dbfs,
                      notify if level_notify is None else level_notify)
    # each track's level after its gain (a stereo pair's channel: 3 dB below the pair)
    levels = np.full(len(tracks.names), -60.0)
    for gi, idx in enumerate(groups):
        if math.isfinite(loud[gi]):
            for i in idx:
                levels[i] = loud[gi] + float(settings.track_params[i, TRACK_INDEX["gain_db"]]) - (
                    3.0103 if len(idx) == 2 else 0.0)
    return settings, levels


def where(tracks) -> str:
    files = getattr(tracks, "files", None)
    if files:
        if len(files) == 1:
            return str(files[0])
        return str(files[0].parent) if len({f.parent for f in files}) == 1 else f"{files[0]} ..."
    return "tracks"


def set_master_level(settings, mix: np.ndarray, sr: int, target_lufs: float, peak_dbfs: float,
                      notify: Notify) -> float:
    """Adjust the master gain (in place) so ``mix`` (rendered with ``settings``) reads
    ``target_lufs``, or less so that its peak stays at ``peak_dbfs``; returns the change in
    dB (apply it to ``mix`` as ``mix * 10 ** (change / 20)``)."""
    from ..console.limiter import true_peak_db
    from ..console.params import MASTER_INDEX, MASTER_PARAMS, TRACK_INDEX, TRACK_PARAMS
    from ..loudness import loudness_np

    loud = loudness_np(mix, sr)
    peak_db = true_peak_db(mix)  # 4x oversampled, as the limiter and BS.1770 read it
    if not math.isfinite(loud) or not math.isfinite(peak_db):
        return 0.0
    change = target_lufs - loud
    if peak_db + change > peak_dbfs:
        change = peak_dbfs - peak_db
        if target_lufs - (loud + change) >= 0.05:  # not for a shortfall that rounds away
            notify(f"mix set to {loud + change:.1f} LUFS (not {target_lufs:g}) to keep peaks at {peak_dbfs:g} dBTP")
    spec = MASTER_PARAMS[MASTER_INDEX["gain_db"]]
    old = float(settings.master_params[MASTER_INDEX["gain_db"]])
    new = min(max(old + change, spec.min), spec.max)
    settings.master_params[MASTER_INDEX["gain_db"]] = float(new)
    rest = old + change - new
    if abs(rest) > 0.01:  # past the master gain's range: every track's gain moves alike
        gi = TRACK_INDEX["gain_db"]
        g, gspec = settings.track_params[:, gi], TRACK_PARAMS[gi]
        shift = min(max(rest, float((gspec.min - g).max())), float((gspec.max - g).min()))
        g += shift
        rest -= shift
        if abs(rest) > 0.05:
            notify(f"mix level {rest:+.1f} dB off its target: the master and track gains are at their range ends")
    return change - rest


def equal_loudness_mix(tracks, target_lufs: float = TARGET_LUFS, peak_dbfs: float = PEAK_DBFS,
                       notify: Notify = quiet, sample_rate: int | None = None,
                       names: Sequence[str] | None = None):
    """The equal-loudness baseline mix: ``(mix (2, samples) float32, settings)`` at the
    tracks' sample rate (``settings`` renders the same mix with ``diffmst render``)."""
    tracks = as_tracks(tracks, sample_rate, names, notify)
    settings = equal_loudness_settings(tracks, target_lufs, peak_dbfs, notify)
    return linear_mix(tracks.audio, settings), settings
