"""Mixing without a network: optimise one song's console settings against a reference.

:func:`optimize` starts from the **equal-loudness** settings (every source at the same
loudness, centred, flat EQ, no compression; :func:`equal_loudness_settings`, also the
baseline every method must beat) and runs Adam on the console settings in normalised
parameter space (each parameter in [0, 1] of its range in :mod:`diffmst.console.params`,
projected back after every step) against the paper's AF distance
(:mod:`diffmst.evaluate.metrics`) between the mix and the whole reference, plus a weak
prior towards the starting settings. The console runs on several windows of the song
(chosen to hear every track that plays) at 44.1 kHz, batched, and each window's mix goes
through what finishing will do to it: the output loudness, the master's true-peak limiter,
then -16 LUFS for the measure. The whole song is then rendered at the tracks' own rate
with :func:`diffmst.console.render` and finished (:mod:`diffmst.pipeline.finish`): the
master gain brings it to the reference's loudness (or the one asked) after the limiter,
whose ceiling keeps every true peak at or below -1 dBTP; the saved settings re-render
exactly the same mix.

Arrays are numpy float32 ``(channels, samples)`` (tracks ``(tracks, samples)``), as in
:mod:`diffmst.audio`; torch is imported on first use, so ``import diffmst`` stays light.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .allocator import reuse_freed_memory
from .errors import DiffmstError

Notify = Callable[[str], None]
Progress = Callable[[int, int, float], None]

TARGET_LUFS = -16.0
PEAK_DBFS = -1.0
ANALYSIS_SR = 44100  # full band: the paper's Bark bands reach 20 kHz
MIN_ANALYSIS_SR = 16000  # below this the console's EQ ranges and most Bark bands are out of reach
BARK_FLOOR = 10 ** (-30 / 20)  # the optimiser's Bark floor, re each band of the reference
PREROLL_S = 0.25      # console warm-up before each window (compressor state), not measured
OUTPUT_FILES = {"mix": "mix.wav", "settings": "settings.json", "report": "report.json", "plot": "report.png"}
PAN_CENTRE_DB = 10 * math.log10(2 * 10 ** (-4.5 / 10))  # a centred mono source: -1.49 dB


@dataclass
class Options:
    """Optimisation settings (defaults: a 3-minute 8-track song in about a minute on 2 cores)."""

    steps: int = 100
    lr: float = 0.05
    analysis_sr: int = ANALYSIS_SR
    windows: int = 4
    window_s: float = 5.0
    prior: float = 0.5
    weights: dict | None = None
    loudness: str | float = "reference"   # output loudness: "reference" or LUFS
    peak_dbtp: float = PEAK_DBFS          # the output's true peak never passes this
    seed: int = 0
    device: str = "cpu"
    link_stereo: bool = True              # a stereo file's L/R share their settings, pans mirrored


def _quiet(_msg: str) -> None:
    pass


def _check_options(o: Options) -> None:
    """Refuse options the optimisation cannot run with (the CLI checks its own earlier)."""
    def finite(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    checks = [
        (isinstance(o.steps, int) and o.steps >= 0, "steps", "a whole number >= 0"),
        (finite(o.lr) and o.lr > 0, "lr", "a number > 0"),
        (isinstance(o.analysis_sr, int) and o.analysis_sr >= MIN_ANALYSIS_SR, "analysis_sr",
         f"a whole number of Hz >= {MIN_ANALYSIS_SR}"),
        (isinstance(o.windows, int) and o.windows >= 1, "windows", "a whole number >= 1"),
        (finite(o.window_s) and o.window_s > 0, "window_s", "a number of seconds > 0"),
        (finite(o.prior) and o.prior >= 0, "prior", "a number >= 0"),
        (finite(o.peak_dbtp) and -20 <= o.peak_dbtp <= 0, "peak_dbtp", "a number in [-20, 0] dBTP"),
        (o.loudness == "reference" or (finite(o.loudness) and -70 <= o.loudness <= 0), "loudness",
         "'reference' or a number in [-70, 0] LUFS"),
        (isinstance(o.seed, int) and 0 <= o.seed < 2**32, "seed", "a whole number in [0, 2**32)"),
    ]
    for ok, name, what in checks:
        if not ok:
            raise DiffmstError(f"{name} must be {what}, got {getattr(o, name)!r}")


# ----------------------------------------------------------------------------- inputs


def as_tracks(tracks, sample_rate: int | None = None, names: Sequence[str] | None = None, notify: Notify = _quiet):
    """Tracks from a folder / files (see :func:`diffmst.audio.load_tracks`), a
    :class:`~diffmst.audio.Tracks`, or an array ``(tracks, samples)`` with ``sample_rate``."""
    from .audio import Tracks, load_tracks

    if isinstance(tracks, Tracks):
        return tracks
    if isinstance(tracks, (str, os.PathLike)):
        return load_tracks([tracks], notify=notify)
    if isinstance(tracks, (list, tuple)) and tracks and all(isinstance(t, (str, os.PathLike)) for t in tracks):
        return load_tracks(list(tracks), notify=notify)
    audio = np.asarray(tracks.detach().cpu() if hasattr(tracks, "detach") else tracks, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2 or audio.shape[1] == 0:
        raise DiffmstError(f"tracks: expected an array (tracks, samples), got shape {audio.shape}")
    if sample_rate is None:
        raise DiffmstError("tracks: an array of tracks needs sample_rate")
    if not np.isfinite(audio).all():
        raise DiffmstError("tracks: contain NaN or infinite samples")
    names = list(names) if names is not None else [f"track{i + 1}" for i in range(audio.shape[0])]
    if len(names) != audio.shape[0]:
        raise DiffmstError(f"tracks: {len(names)} names for {audio.shape[0]} tracks")
    return Tracks(names, np.ascontiguousarray(audio), int(sample_rate), [])


def load_reference(reference, sample_rate: int | None = None, notify: Notify = _quiet,
                   min_seconds: float = 0.0) -> tuple[np.ndarray, int, str]:
    """The reference as stereo ``(2, samples)`` float32, its rate and a label for messages.

    A mono reference is used as dual mono (with a notice). Raises :class:`DiffmstError`
    for a silent reference or one shorter than ``min_seconds``."""
    from .audio import read_audio

    if isinstance(reference, (str, os.PathLike)):
        label = str(reference)
        if Path(reference).is_dir():
            raise DiffmstError(f"{label}: is a folder; the reference must be one audio file (a finished mix)")
        audio, sr = read_audio(reference)
    else:
        label = "reference"
        audio = np.asarray(reference.detach().cpu() if hasattr(reference, "detach") else reference, dtype=np.float32)
        if audio.ndim == 1:
            audio = audio[None]
        if audio.ndim != 2 or audio.shape[0] > 2 or audio.shape[1] == 0:
            raise DiffmstError(f"reference: expected an array (channels <= 2, samples), got shape {audio.shape}")
        if sample_rate is None:
            raise DiffmstError("reference: an array needs reference_sr")
        if not np.isfinite(audio).all():
            raise DiffmstError("reference: contains NaN or infinite samples")
        sr = int(sample_rate)
    if audio.shape[0] == 1:
        notify(f"{label}: reference is mono; it is used as dual mono (stereo width 0)")
        audio = np.concatenate([audio, audio])
    seconds = audio.shape[1] / sr
    if seconds < min_seconds:
        raise DiffmstError(f"{label}: reference is only {seconds:.2f} s long, shorter than one analysis "
                           f"window ({min_seconds:.2f} s); use shorter windows")
    from .loudness import loudness_np

    if not math.isfinite(loudness_np(audio, sr)):
        raise DiffmstError(f"{label}: reference is silent (below -70 LUFS); nothing to match")
    return np.ascontiguousarray(audio, dtype=np.float32), sr, label


# ----------------------------------------------------------------------------- equal loudness


def source_groups(names: Sequence[str]) -> list[list[int]]:
    """Track indices grouped by source: a stereo file's ``name.L``/``name.R`` together."""
    groups: list[list[int]] = []
    seen: dict[str, int] = {}
    for i, n in enumerate(names):
        if n.endswith((".L", ".R")):
            base = n[:-2]
            partner = base + (".R" if n.endswith(".L") else ".L")
            if partner in names:
                if base in seen:
                    groups[seen[base]].append(i)
                else:
                    seen[base] = len(groups)
                    groups.append([i])
                continue
        groups.append([i])
    return groups


def _linear_mix(audio: np.ndarray, settings) -> np.ndarray:
    """Mix of a console with flat EQ and no compression: gains and pans only, ``(2, samples)``
    (identical to rendering such settings, much faster)."""

    from .console.params import MASTER_INDEX, TRACK_INDEX
    from .console.strip import pan_gains

    tp = settings.track_params.double()
    g = 10 ** (tp[:, TRACK_INDEX["gain_db"]] / 20)
    lr = pan_gains(tp[:, TRACK_INDEX["pan"]]) * g[:, None]  # (tracks, 2)
    lr = lr * 10 ** (float(settings.master_params[MASTER_INDEX["gain_db"]]) / 20)
    return (lr.T.numpy().astype(np.float32) @ audio).astype(np.float32)


def equal_loudness_settings(tracks, target_lufs: float = TARGET_LUFS, peak_dbfs: float = PEAK_DBFS,
                            notify: Notify = _quiet, sample_rate: int | None = None,
                            names: Sequence[str] | None = None):
    """The equal-loudness baseline: every source (a mono track, or a stereo file's L/R pair)
    brought to the same loudness, mono tracks centred and stereo pairs hard left/right,
    flat EQ, no compression; the master gain sets the mix to ``target_lufs`` (lower if a
    peak would exceed ``peak_dbfs``). Silent tracks keep 0 dB. Returns a
    :class:`~diffmst.console.Settings` for the tracks' names. ``tracks`` as for
    :func:`optimize` (an array needs ``sample_rate``; ``names`` ending ``.L``/``.R`` pair up)."""
    return _equal_loudness(as_tracks(tracks, sample_rate, names, notify), target_lufs, peak_dbfs, notify)[0]


def _equal_loudness(tracks, target_lufs: float, peak_dbfs: float, notify: Notify,
                    level_notify: Notify | None = None):
    """``(settings, levels_db (tracks,))``: see :func:`equal_loudness_settings`; the notice
    about the mix level goes to ``level_notify`` (default ``notify``)."""
    from .console import Settings
    from .console.params import TRACK_INDEX, TRACK_PARAMS
    from .loudness import loudness_np

    settings = Settings.default(tracks.names)
    groups = source_groups(tracks.names)
    loud = [loudness_np(tracks.audio[idx], tracks.sample_rate) for idx in groups]
    active = [i for i, v in enumerate(loud) if math.isfinite(v)]
    if not active:
        raise DiffmstError(f"{_where(tracks)}: all tracks are silent (below -70 LUFS)")
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
    mix = _linear_mix(tracks.audio, settings)
    _set_master_level(settings, mix, tracks.sample_rate, target_lufs, peak_dbfs,
                      notify if level_notify is None else level_notify)
    # each track's level after its gain (a stereo pair's channel: 3 dB below the pair)
    levels = np.full(len(tracks.names), -60.0)
    for gi, idx in enumerate(groups):
        if math.isfinite(loud[gi]):
            for i in idx:
                levels[i] = loud[gi] + float(settings.track_params[i, TRACK_INDEX["gain_db"]]) - (
                    3.0103 if len(idx) == 2 else 0.0)
    return settings, levels


def _where(tracks) -> str:
    files = getattr(tracks, "files", None)
    if files:
        return str(files[0].parent) if len({f.parent for f in files}) == 1 else f"{files[0]} ..."
    return "tracks"


def _set_master_level(settings, mix: np.ndarray, sr: int, target_lufs: float, peak_dbfs: float,
                      notify: Notify) -> float:
    """Adjust the master gain (in place) so ``mix`` (rendered with ``settings``) reads
    ``target_lufs``, or less so that its peak stays at ``peak_dbfs``; returns the change in
    dB (apply it to ``mix`` as ``mix * 10 ** (change / 20)``)."""
    from .console.limiter import true_peak_db
    from .console.params import MASTER_INDEX, MASTER_PARAMS, TRACK_INDEX, TRACK_PARAMS
    from .loudness import loudness_np

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
                       notify: Notify = _quiet, sample_rate: int | None = None,
                       names: Sequence[str] | None = None):
    """The equal-loudness baseline mix: ``(mix (2, samples) float32, settings)`` at the
    tracks' sample rate (``settings`` renders the same mix with ``diffmst render``)."""
    tracks = as_tracks(tracks, sample_rate, names, notify)
    settings = equal_loudness_settings(tracks, target_lufs, peak_dbfs, notify)
    return _linear_mix(tracks.audio, settings), settings


# ----------------------------------------------------------------------------- windows


def window_starts(n: int, length: int, count: int, rng: np.random.Generator | None = None) -> list[int]:
    """Start samples of ``count`` windows of ``length`` spread evenly over ``n`` samples
    (centres at (k + 1/2) / count of the song, jittered by up to a quarter spacing with
    ``rng``); fewer when the song is short, one when it is shorter than ``length``."""
    if n <= length:
        return [0]
    count = max(1, min(count, n // max(1, length // 2)))
    spacing = n / count
    starts = []
    for k in range(count):
        centre = (k + 0.5) * spacing
        if rng is not None:
            centre += rng.uniform(-0.25, 0.25) * spacing
        starts.append(int(min(max(centre - length / 2, 0), n - length)))
    return sorted(set(starts))


def track_activity(audio: np.ndarray, sr: int, hop_s: float = 0.5) -> np.ndarray:
    """Which tracks play when: ``audio (tracks, samples)`` -> bool ``(tracks, frames)`` of
    ``hop_s`` frames, true where a track is within 20 dB of its own mean level over the
    frames it is not silent in (above -70 dBFS)."""
    hop = max(1, int(hop_s * sr))
    frames = max(1, audio.shape[1] // hop)
    ms = np.square(audio[:, : frames * hop], dtype=np.float64).reshape(audio.shape[0], frames, -1).mean(-1)
    sounding = ms > 1e-7
    mean = np.array([m[s].mean() if s.any() else 0.0 for m, s in zip(ms, sounding)])
    return sounding & (ms > 0.01 * mean[:, None])


def covering_window_starts(audio: np.ndarray, sr: int, length: int, count: int,
                           rng: np.random.Generator | None = None, hop_s: float = 0.5) -> list[int]:
    """Start samples of ``count`` windows of ``length`` that hear every track that plays.

    A track that only plays in part of the song (a guitar that comes in for the last
    chorus) and is silent in every analysis window gets no useful gradient, yet Adam moves
    its settings at full step size from noise, and the rest of the song then hears it at
    any level and pan. So windows are chosen greedily on a grid of ``hop_s``: each next one
    covers the most tracks no window has heard yet, then overlaps no other by more than
    half, then has the most playing tracks plus the largest distance to the others (as a
    share of the song: so they still spread over it);
    ``rng`` jitters the candidates by up to a hop. Sorted; one window when the song is
    shorter than ``length``."""
    n = audio.shape[1]
    if n <= length:
        return [0]
    act = track_activity(audio, sr, hop_s)
    hop = max(1, int(hop_s * sr))
    span = max(1, length // hop)
    jitter = int(rng.integers(0, hop)) if rng is not None else 0
    cands = [min(c + jitter, n - length) for c in range(0, n - length + 1, hop)]
    count = max(1, min(count, n // max(1, length // 2)))
    heard = np.zeros(act.shape[0], bool)
    chosen: list[int] = []
    for _ in range(count):
        best, best_key = None, None
        for c in cands:
            if c in chosen:
                continue
            f0 = c // hop
            plays = act[:, f0 : f0 + span].any(1)
            gap = min((abs(c - o) for o in chosen), default=n)
            # new tracks first; then how full the window is and how far from the others
            key = (int((plays & ~heard).sum()), gap >= length // 2, float(act[:, f0 : f0 + span].mean()) + gap / n)
            if best_key is None or key > best_key:
                best, best_key = c, key
        if best is None:
            break
        chosen.append(best)
        heard |= act[:, best // hop : best // hop + span].any(1)
    return sorted(chosen)


def _analysis_windows(tracks, opts: Options, notify: Notify):
    """``(windows (K, tracks, 1, samples) float32 at analysis rate, preroll samples, starts (s))``."""
    import soxr
    import torch

    sr = tracks.sample_rate
    pre = int(PREROLL_S * sr)
    length = int(round(opts.window_s * sr)) + pre
    n = tracks.audio.shape[1]
    if n < length:
        notify(f"song is {n / sr:.1f} s, shorter than one analysis window ({length / sr:.1f} s): "
               "optimising on the whole song")
    starts = covering_window_starts(tracks.audio, sr, length, opts.windows, np.random.default_rng(opts.seed))
    length = min(length, n)
    wins = []
    for s in starts:
        seg = tracks.audio[:, s : s + length]
        if sr != opts.analysis_sr:
            seg = soxr.resample(seg.T, sr, opts.analysis_sr, quality="HQ").T
        wins.append(np.ascontiguousarray(seg, dtype=np.float32))
    m = min(w.shape[1] for w in wins)
    x = torch.from_numpy(np.stack([w[:, :m] for w in wins]))[:, :, None]
    pre_a = int(PREROLL_S * opts.analysis_sr) if length > pre else 0
    return x, pre_a, [s / sr for s in starts]


# ----------------------------------------------------------------------------- optimisation


def _bounds(u0, specs, analysis_sr: float):
    """Per-parameter [lo, hi] in normalised units: [0, 1], except EQ frequencies limited
    below 0.45 x the analysis rate (what the analysis cannot hear it must not move), and
    EQ bands wholly above that frozen at their start value."""
    import torch

    from .console.params import EQ_BANDS

    lo = torch.zeros_like(u0)
    hi = torch.ones_like(u0)
    index = {p.name: i for i, p in enumerate(specs)}
    limit = 0.45 * analysis_sr
    for key, _kind, fmin, fmax, _fdef in EQ_BANDS:
        fi = index[f"eq.{key}.freq_hz"]
        if fmin >= limit:
            for name in ("gain_db", "freq_hz", "q"):
                i = index[f"eq.{key}.{name}"]
                lo[..., i] = u0[..., i]
                hi[..., i] = u0[..., i]
        elif fmax > limit:
            hi[..., fi] = specs[fi].normalize(limit)
    return lo, hi


def _start(settings, levels_db: np.ndarray, target_lufs: float):
    """Optimiser start: the equal-loudness settings, with each compressor's threshold at
    the level of its input (ratio 1, so the sound is unchanged) so that compression can
    start to act as soon as the ratio moves."""
    from .console import Settings
    from .console.params import MASTER_INDEX, TRACK_INDEX

    s = Settings(list(settings.track_names), settings.track_params.clone(), settings.master_params.clone())
    thr = np.clip(levels_db, -60.0, 0.0)
    s.track_params[:, TRACK_INDEX["compressor.threshold_db"]] = torch_tensor(thr)
    s.master_params[MASTER_INDEX["compressor.threshold_db"]] = float(np.clip(target_lufs, -60.0, 0.0))
    return s


class StereoTie:
    """Tracks <-> the values the optimiser moves. With ``link``, a stereo file's ``name.L``
    and ``name.R`` (see :func:`source_groups`) share one gain, EQ and compressor setting
    (the L track's), so the file's own balance and timbre are kept, while each side keeps
    its own pan: the pair can be narrowed, widened and moved, as a DAW's stereo panner
    does. (Pans mirrored about the centre could not follow a lopsided reference:
    planetblupi's music004, 14 dB louder on the right, ended at AF 0.73 instead of 0.08.)

    Rows are ``(tracks, params)`` normalised; when linked an R track's own columns other
    than its pan are unused."""

    def __init__(self, names: Sequence[str], link: bool = True):
        import torch

        from .console.params import TRACK_INDEX

        src = list(range(len(names)))
        if link:
            for idx in source_groups(names):
                for i in idx:
                    src[i] = idx[0]
        self.src = torch.tensor(src)
        self.pan = TRACK_INDEX["pan"]

    def expand(self, rows):
        """``(tracks, params)`` normalised -> the same with the ties applied."""
        import torch

        u = rows[self.src.to(rows.device)]
        return torch.cat([u[:, : self.pan], rows[:, self.pan : self.pan + 1], u[:, self.pan + 1:]], 1)


def torch_tensor(a):
    import torch

    return torch.as_tensor(np.asarray(a, dtype=np.float32))


@dataclass
class OptimizeResult:
    """What :func:`optimize` returns; :meth:`save` writes it as the CLI does."""

    settings: Any                 # diffmst.console.Settings, optimised
    baseline: Any                 # equal-loudness Settings
    mix: np.ndarray               # (2, samples) float32 at sample_rate
    sample_rate: int
    history: list[dict]           # per step: t (s since start), loss (AF + prior), af, prior, terms
    features: dict                # reference / equal_loudness / optimized -> feature dict (floats)
    af: dict                      # equal_loudness / optimized -> {"total", per-feature terms}, on the windows
    windows_s: list[float]        # window start times in the song
    timings: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    reference_label: str = "reference"
    song_af: dict = field(default_factory=dict)           # the same, the paper's measure on the whole songs
    reference_level: dict = field(default_factory=dict)   # lufs, true_peak_dbtp of the reference
    target: dict = field(default_factory=dict)            # lufs, ceiling_dbtp asked of the mix

    def report(self) -> dict:
        return {
            "format": "diffmst-optimize-report", "version": 2,
            "reference": self.reference_label,
            "reference_level": self.reference_level,
            "target": self.target,
            "options": self.options,
            "windows_s": [round(w, 3) for w in self.windows_s],
            "af_loss": self.af,
            "af_song": self.song_af,
            "features": self.features,
            "history": self.history,
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
            "output": {"sample_rate": self.sample_rate, "lufs": _lufs(self.mix, self.sample_rate),
                       "peak_dbfs": _peak_db(self.mix), "true_peak_dbtp": _true_peak(self.mix)},
        }

    def save(self, outdir: str | os.PathLike, overwrite: bool = False, bit_depth: str = "24",
             plot: bool = True, notify: Notify = _quiet) -> dict[str, Path]:
        """Write ``mix.wav``, ``settings.json``, ``report.json`` and ``report.png`` into
        ``outdir`` (created; existing files are kept unless ``overwrite``)."""
        from .audio import check_output, write_audio

        out = Path(outdir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {key: out / name for key, name in OUTPUT_FILES.items() if plot or key != "plot"}
        for p in paths.values():
            check_output(p, overwrite)
        write_audio(paths["mix"], self.mix, self.sample_rate, bit_depth, overwrite, notify=notify)
        self.settings.save(paths["settings"], overwrite=overwrite)
        report = self.report()  # measures the whole mix (loudness, true peak): once
        _write_text(paths["report"], json.dumps(report, indent=1) + "\n")
        if plot:
            from .report import plot_optimize_report

            plot_optimize_report(report, paths["plot"])
        for key, name in OUTPUT_FILES.items():  # the folder describes this run only
            if key not in paths and overwrite:
                (out / name).unlink(missing_ok=True)
        return paths


def _write_text(path: Path, text: str) -> None:
    from .fileio import atomic_write_text

    atomic_write_text(path, text)


def _lufs(x: np.ndarray, sr: int) -> float:
    from .loudness import loudness_np

    v = loudness_np(x, sr)
    return round(v, 2) if math.isfinite(v) else None


def _peak_db(x: np.ndarray) -> float:
    p = float(np.abs(x).max()) if x.size else 0.0
    return round(20 * math.log10(p), 2) if p > 0 else None


def _true_peak(x: np.ndarray) -> float | None:
    from .console.limiter import true_peak_db

    v = true_peak_db(x) if x.size else float("-inf")
    return round(v, 2) if math.isfinite(v) else None


def _terms_dict(total, terms) -> dict:
    d = {"total": float(total)}
    d.update({k: float(v) for k, v in terms.items()})
    return d


@reuse_freed_memory()  # a step churns through large tensors: keep freed memory for reuse
def optimize(
    tracks,
    reference,
    *,
    steps: int = Options.steps,
    lr: float = Options.lr,
    analysis_sr: int = Options.analysis_sr,
    windows: int = Options.windows,
    window_s: float = Options.window_s,
    prior: float = Options.prior,
    weights: dict | None = None,
    loudness: str | float = Options.loudness,
    peak_dbtp: float = Options.peak_dbtp,
    seed: int = Options.seed,
    device: str = Options.device,
    link_stereo: bool = Options.link_stereo,
    sample_rate: int | None = None,
    reference_sr: int | None = None,
    track_names: Sequence[str] | None = None,
    notify: Notify = _quiet,
    progress: Progress | None = None,
    render: bool = True,
    console_fn: Callable | None = None,
) -> OptimizeResult:
    """Optimise the console settings of one song so its mix matches ``reference``'s style.

    Args:
        tracks: folder or audio files, a :class:`~diffmst.audio.Tracks`, or an array
            ``(tracks, samples)`` with ``sample_rate`` (and optional ``track_names``).
        reference: an audio file (a finished mix), or an array ``(channels, samples)``
            with ``reference_sr``. Mono is used as dual mono.
        steps, lr: Adam steps and learning rate (normalised units, cosine-decayed to lr/10).
        analysis_sr, windows, window_s: the console runs on ``windows`` windows of
            ``window_s`` seconds spread over the song, at ``analysis_sr`` Hz.
        prior: weight of the squared distance (normalised units) to the start settings.
        weights: AF-loss weights (default: the paper's).
        loudness: integrated loudness of the result: ``"reference"`` (the reference's)
            or a number in LUFS, reached with the master gain through the master's
            true-peak limiter.
        peak_dbtp: the limiter's highest ceiling (dBTP); the ceiling is the reference's
            true peak moved to the output loudness, when that is lower (so the mix keeps
            the reference's peak-to-loudness ratio).
        seed: window placement jitter and torch's seed.
        device: torch device for the optimisation ("cpu", "cuda", ...).
        link_stereo: a stereo file's two tracks (``name.L``, ``name.R``) share one gain,
            EQ and compressor setting, each with its own pan (:class:`StereoTie`), so the
            file's balance is kept; ``False`` optimises them as unrelated tracks.
        notify: called with notices for the user. progress: ``progress(step, steps, loss)``.
        render: render the whole song (else ``mix`` is empty and only settings are made).
        console_fn: the differentiable console used for the optimisation, called as
            ``console_fn(tracks (K, T, 1, n), track_params (K, T, 26), master_params (K, len(MASTER_PARAMS)),
            sample_rate) -> mix (K, 2, n)`` (default: :func:`diffmst.console.console`; the
            benchmarks swap in dasp-pytorch's). The final render is always diffmst's.
    Returns:
        :class:`OptimizeResult` (settings, mix at the tracks' rate, report data).
    """
    import torch

    from .console import MASTER_PARAMS, TRACK_PARAMS, Settings, console, denormalize, normalize
    from .console import render as render_song
    from .console.eq import reuse_input_spectra
    from .console.params import MASTER_INDEX

    from .console.limiter import gain_db as limiter_gain_db
    from .console.limiter import true_peak_db
    from .evaluate.metrics import PAPER_LUFS, paper_distance, paper_features, song_features
    from .evaluate.metrics import stereo_imbalance as paper_stereo_imbalance
    from .evaluate.metrics import stereo_width as paper_stereo_width
    from .losses import AF_WEIGHTS
    from .features import prepare as hp_prepare
    from .features import to_python
    from .loudness import block_powers, gain_to_target_db, k_weight, loudness_np
    from .pipeline.finish import ceiling_for, finish

    opts = Options(steps=steps, lr=lr, analysis_sr=analysis_sr, windows=windows, window_s=window_s,
                   prior=prior, weights=weights, loudness=loudness, peak_dbtp=peak_dbtp,
                   seed=seed, device=device, link_stereo=link_stereo)
    _check_options(opts)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    torch.manual_seed(seed)
    dev = torch.device(device)

    song = as_tracks(tracks, sample_rate, track_names, notify)
    ref, ref_sr, ref_label = load_reference(reference, reference_sr, notify, min_seconds=window_s)
    if ref_sr != song.sample_rate:
        notify(f"{ref_label}: reference is at {ref_sr} Hz, tracks at {song.sample_rate} Hz; "
               f"both are analysed at {analysis_sr} Hz and the mix keeps {song.sample_rate} Hz")
    ref_lufs, ref_tp = loudness_np(ref, ref_sr), true_peak_db(ref)
    out_lufs = ref_lufs if loudness == "reference" else float(loudness)
    ceiling = ceiling_for(ref_tp, ref_lufs, out_lufs, peak_dbtp)
    baseline, levels = _equal_loudness(song, PAPER_LUFS, peak_dbtp, notify, level_notify=_quiet)

    # inputs at the analysis rate; the reference's features from the whole song, as the
    # paper's measure takes them (DC removed, at -16 LUFS)
    x, pre, starts = _analysis_windows(song, opts, notify)
    x = x.to(dev)
    # the optimiser's target: the same features after a 20 Hz high-pass, so that a
    # reference's infrasonic drift (which the measure counts in its RMS) is not matched
    ref_hp = hp_prepare(torch.from_numpy(np.ascontiguousarray(ref, dtype=np.float64)), ref_sr)[0].numpy()
    ref_feats = {k: v.float().to(dev) for k, v in song_features(ref_hp, ref_sr, analysis_sr).items()}
    # the optimiser's Bark floor: 30 dB below each of the reference's bands (the measure's
    # 1e-8 makes an empty band, e.g. the side of an all-centred start, cost ~600 Np^2)
    bark_floor = ref_feats["bark"].exp()[0] * BARK_FLOOR
    ref_feats["bark"] = torch.log(ref_feats["bark"].exp() + bark_floor)
    timings["prepare"] = time.perf_counter() - t0
    w = weights

    k = x.shape[0]
    eq_tail = pre or None  # the FFT EQ's padding only as long as the discarded warm-up
    release = torch.tensor([MASTER_PARAMS[MASTER_INDEX["limiter.release_ms"]].default], device=dev)
    ceil_t = torch.tensor([ceiling], device=dev)

    def run_console(xx, tp, mp, sr):
        return console(xx, tp, mp, sr, eq_tail=eq_tail, wet=False, limit=False)[0]

    mixer = console_fn or run_console
    # the limiter takes away loudness: the windows are brought this much above the output
    # loudness before it, learnt from step to step (what finish() does on the whole song)
    push = [0.0]

    def mix_features(tp, mp, learn: bool = False):
        mix = mixer(x, tp.expand(k, -1, -1), mp.expand(k, -1), analysis_sr)[..., pre:]
        mix = mix - mix.mean(-1, keepdim=True)
        # as finished: at the output loudness, through the limiter; then measured at -16
        # LUFS. One K-weighting: the limiter's slow gain is applied to the weighted signal too.
        kw = k_weight(mix, analysis_sr)
        g_out = torch.pow(10.0, gain_to_target_db(block_powers(kw, analysis_sr), out_lufs + push[0], pool=True) / 20)
        lim = torch.pow(10.0, limiter_gain_db(mix * g_out.detach(), ceil_t.expand(k), release.expand(k),
                                              analysis_sr) / 20).unsqueeze(1)
        g16 = gain_to_target_db(block_powers(kw * (g_out * lim), analysis_sr), PAPER_LUFS, pool=True)
        if learn:
            short = out_lufs - (PAPER_LUFS - float(g16.detach()))  # the output's loudness shortfall
            push[0] = min(max(push[0] + short, 0.0), 20.0)
        y = mix * (g_out * lim) * torch.pow(10.0, g16 / 20)
        feats = paper_features(y, analysis_sr, pool=True, bark_floor=bark_floor)
        # each window's own stereo image (see `sections` below)
        feats["width_each"], feats["imbalance_each"] = paper_stereo_width(y), paper_stereo_imbalance(y)
        return feats

    def af(fa, fb):
        return paper_distance(fa, fb, w)

    aw = {**AF_WEIGHTS, **(w or {})}

    def sections(fa, fb):
        """Width and imbalance of every window against the reference's whole song. The
        measure pools them over the song, and so can a mix that is lopsided in every
        section (an organ hard left in the verses, a guitar hard right in the last
        chorus): the windows then balance by chance and the rest of the song does not."""
        return (aw["width"] * (fa["width_each"] - fb["width"]).square().mean()
                + aw["imbalance"] * (fa["imbalance_each"] - fb["imbalance"]).square().mean())

    # start: equal loudness (thresholds at each input's level, ratio 1: same sound)
    start = _start(baseline, levels, PAPER_LUFS)
    # a stereo file's pair shares its strip settings (the pans aside)
    tie = StereoTie(song.names, link_stereo)
    u0_t = normalize(start.track_params.double(), TRACK_PARAMS).clamp(0, 1).float().to(dev)
    u0_m = normalize(start.master_params.double(), MASTER_PARAMS).clamp(0, 1).float().to(dev)
    lo_t, hi_t = _bounds(u0_t, TRACK_PARAMS, analysis_sr)
    lo_m, hi_m = _bounds(u0_m, MASTER_PARAMS, analysis_sr)
    u_t = u0_t.clone().requires_grad_(True)
    u_m = u0_m.clone().requires_grad_(True)
    opt = torch.optim.Adam([u_t, u_m], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps), eta_min=lr / 10)

    def real(ut, um):
        return denormalize(tie.expand(ut)[None], TRACK_PARAMS), denormalize(um[None], MASTER_PARAMS)

    # the tracks are the same every step: the EQ keeps their rfft (about 6 % of a step)
    with reuse_input_spectra():
        with torch.no_grad():
            tp_b = baseline.track_params[None].to(dev)
            mp_b = baseline.master_params[None].to(dev)
            for _ in range(3):  # settle the limiter's push for the start
                base_feats = mix_features(tp_b, mp_b, learn=True)
            base_total, base_terms = af(base_feats, ref_feats)

        history: list[dict] = []
        best = (float(base_total), u0_t.detach().clone(), u0_m.detach().clone())
        t_opt = time.perf_counter()
        for step in range(steps):
            opt.zero_grad(set_to_none=True)
            tp, mp = real(u_t, u_m)
            feats = mix_features(tp, mp, learn=True)
            total, terms = af(feats, ref_feats)
            sect = sections(feats, ref_feats)
            reg = prior * (((u_t - u0_t) ** 2).mean() + ((u_m - u0_m) ** 2).mean())
            loss = total + sect + reg
            if not torch.isfinite(loss):
                notify(f"loss became non-finite at step {step}; keeping the best settings so far")
                break
            loss.backward()
            af_value = float(total.detach())
            if af_value < best[0]:
                best = (af_value, u_t.detach().clone(), u_m.detach().clone())
            history.append({"step": step, "t": round(time.perf_counter() - t_opt, 3),
                            "loss": round(float(loss.detach()), 6), "af": round(af_value, 6),
                            "prior": round(float(reg.detach()), 6), "sections": round(float(sect.detach()), 6),
                            **{key: round(float(v.detach()), 6) for key, v in terms.items()}})
            for u in (u_t, u_m):
                if u.grad is not None:
                    torch.nan_to_num_(u.grad, nan=0.0, posinf=0.0, neginf=0.0)
            opt.step()
            sched.step()
            with torch.no_grad():
                u_t.copy_(torch.maximum(torch.minimum(u_t, hi_t), lo_t))
                u_m.copy_(torch.maximum(torch.minimum(u_m, hi_m), lo_m))
            if progress is not None:
                progress(step + 1, steps, af_value)
        timings["optimize"] = time.perf_counter() - t_opt

        with torch.no_grad():  # the last update has not been measured yet
            tp, mp = real(u_t, u_m)
            last_total, _ = af(mix_features(tp, mp), ref_feats)
            if float(last_total) < best[0]:
                best = (float(last_total), u_t.detach().clone(), u_m.detach().clone())
            tp, mp = real(best[1], best[2])
            opt_feats = mix_features(tp, mp)
            opt_total, opt_terms = af(opt_feats, ref_feats)
    settings = Settings(list(song.names), tp[0].float().cpu(), mp[0].float().cpu())
    _clip_to_table(settings)

    mix = np.zeros((2, 0), np.float32)
    if render:
        t_r = time.perf_counter()
        audio = torch.from_numpy(song.audio)[None, :, None]
        premix = render_song(audio, settings.track_params[None], settings.master_params[None], song.sample_rate,
                             limit=False)[0].numpy()
        if _shift_level(settings, out_lufs + push[0] - loudness_np(premix, song.sample_rate)):
            premix = render_song(audio, settings.track_params[None], settings.master_params[None],
                                 song.sample_rate, limit=False)[0].numpy()
        mix, finished = finish(premix, settings.master_params, song.sample_rate, out_lufs, ceiling, push[0])
        if not finished.reached:
            notify(f"mix reaches {finished.lufs:.1f} LUFS, not the {out_lufs:.1f} asked: the master gain "
                   "is at its range end")
        timings["render"] = time.perf_counter() - t_r
    # the paper's measure on the whole songs (what results are judged by)
    ref_song = song_features(ref, ref_sr)
    song_af = {"equal_loudness": _song_af(_linear_mix(song.audio, baseline), song.sample_rate, ref_song, ref_sr, w)}
    if render:
        song_af["optimized"] = _song_af(mix, song.sample_rate, ref_song, ref_sr, w)
    timings["total"] = time.perf_counter() - t0
    return OptimizeResult(
        settings=settings, baseline=baseline, mix=mix, sample_rate=song.sample_rate, history=history,
        features={"reference": to_python(ref_feats), "equal_loudness": to_python(base_feats),
                  "optimized": to_python(opt_feats)},
        af={"equal_loudness": _terms_dict(base_total, base_terms), "optimized": _terms_dict(opt_total, opt_terms)},
        song_af=song_af,
        windows_s=starts, timings=timings,
        options={k2: v for k2, v in opts.__dict__.items()}, reference_label=ref_label,
        reference_level={"lufs": round(ref_lufs, 2), "true_peak_dbtp": round(ref_tp, 2)},
        target={"lufs": round(out_lufs, 2), "ceiling_dbtp": round(ceiling, 2)},
    )


def _shift_level(settings, change_db: float, spare_db: float = 3.0) -> bool:
    """Make room for a master gain change of ``change_db`` (the loss is blind to the overall
    level, so the optimiser may leave the mix far from the output loudness): what the master
    gain's range (less ``spare_db`` for finishing's own steps) cannot take moves into every
    track's gain, with every compressor's threshold moved alike so that it acts the same.
    Only as far as no setting leaves its range (a clamped gain or threshold would change
    the mix's balance); the rest is left to the master gain. Returns whether anything moved."""
    from .console.params import MASTER_INDEX, MASTER_PARAMS, TRACK_INDEX, TRACK_PARAMS

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


def _song_af(mix: np.ndarray, sr: int, ref_feats: dict, ref_sr: int, weights: dict | None) -> dict:
    """The paper's AF distance of a whole mix to the reference's whole-song features."""
    from .evaluate.metrics import paper_distance, song_features

    total, terms = paper_distance(song_features(mix, sr, ref_sr), ref_feats, weights)
    return _terms_dict(total, terms)


def _clip_to_table(settings) -> None:
    """Round-off can leave a value a hair outside its range: clip so the file validates."""
    import torch

    from .console.params import MASTER_PARAMS, TRACK_PARAMS, table

    for attr, specs in (("track_params", TRACK_PARAMS), ("master_params", MASTER_PARAMS)):
        v = getattr(settings, attr)
        lo, hi = table(specs, "min").to(v), table(specs, "max").to(v)
        setattr(settings, attr, torch.maximum(torch.minimum(v, hi), lo))


# ----------------------------------------------------------------------------- command line


def _check_outdir(out: Path, overwrite: bool) -> None:
    """The output folder: every file a run may write there is checked (a stale report.png
    beside a new report.json would describe another run)."""
    if out.exists() and not out.is_dir():
        raise DiffmstError(f"{out}: exists and is not a folder")
    if not out.parent.is_dir():
        raise DiffmstError(f"{out.parent}: output folder does not exist")
    for name in OUTPUT_FILES.values():
        path = out / name
        if path.is_dir():
            raise DiffmstError(f"{path}: is a folder; cannot write {name} there")
        if path.exists() and not overwrite:
            raise DiffmstError(f"{path}: already exists (use --overwrite to replace it)")


def split_reference(inputs: Sequence[str], reference: str | None) -> tuple[list[str], str]:
    """``(tracks, reference)`` from the command line: the reference is ``reference`` when
    given, else the last of ``inputs``. Without ``reference``, refuses a reference that sits
    among the tracks (``optimize stems/*.flac -o out`` would take the last stem for it)."""
    if reference is not None:
        if not inputs:
            raise DiffmstError("no tracks given")
        return list(inputs), reference
    if len(inputs) < 2:
        raise DiffmstError("give the tracks and then the reference (or the reference with --reference)")
    tracks, ref = list(inputs[:-1]), inputs[-1]
    ref_path = Path(ref).resolve()
    if not ref_path.is_file():
        return tracks, ref  # a folder or a missing file: the reference's own checks say so
    for t in tracks:
        tp = Path(t).resolve()
        among = ref_path == tp or (tp.is_dir() and ref_path.parent == tp) or (tp.is_file() and ref_path.parent == tp.parent)
        if among:
            raise DiffmstError(f"{ref}: the reference sits among the tracks ({t}); did you forget it? "
                               "Give the reference with --reference/-r REF to use this file anyway")
    return tracks, ref


def _check_device(device: str) -> None:
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise DiffmstError(f"--device {device}: not a torch device (use cpu, cuda, cuda:1, mps)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DiffmstError(f"--device {device}: CUDA is not available on this machine")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise DiffmstError(f"--device {device}: MPS is not available on this machine")


def run_optimize(args, notice: Notify) -> None:
    """``diffmst optimize``: see :func:`diffmst.cli._add_optimize`."""
    import torch

    from .audio import output_format

    out = Path(args.output)
    tracks, reference = split_reference(args.inputs, args.reference)
    _check_outdir(out, args.overwrite)
    output_format(out / OUTPUT_FILES["mix"], args.bit_depth)
    _check_device(args.device)
    if args.threads:
        import numba

        torch.set_num_threads(args.threads)
        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    kwargs = dict(steps=args.steps, lr=args.lr, analysis_sr=args.analysis_sr, windows=args.windows,
                  window_s=args.window, prior=args.prior, seed=args.seed, device=args.device,
                  loudness=args.loudness, peak_dbtp=args.peak, link_stereo=not args.unlink_stereo)
    if args.quiet:
        result = optimize(tracks, reference, notify=notice, **kwargs)
    else:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        prog = Progress(TextColumn("optimising"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("AF loss {task.fields[loss]}"), TimeRemainingColumn(),
                        console=Console(stderr=True), transient=True)
        task = prog.add_task("optimising", total=args.steps, loss="...")

        def update(step: int, total: int, loss: float) -> None:
            prog.update(task, completed=step, loss=f"{loss:.4f}")

        with prog:
            result = optimize(tracks, reference, notify=notice, progress=update, **kwargs)
    out.mkdir(exist_ok=True)
    paths = result.save(out, overwrite=args.overwrite, bit_depth=args.bit_depth, plot=not args.no_plot,
                        notify=notice)
    el, op = result.song_af["equal_loudness"], result.song_af["optimized"]
    terms = ", ".join(f"{k} {el[k]:.4f} -> {op[k]:.4f}" for k in ("rms", "crest", "width", "imbalance", "bark"))
    print(f"AF (paper, whole song): {el['total']:.4f} (equal loudness) -> {op['total']:.4f} (optimised)  [{terms}]")
    rep = result.report()
    out_, ref_ = rep["output"], rep["reference_level"]
    print(f"mix: {out_['lufs']} LUFS, true peak {out_['true_peak_dbtp']} dBTP (reference: {ref_['lufs']} LUFS, "
          f"{ref_['true_peak_dbtp']} dBTP); {result.timings.get('total', 0):.1f} s ({len(result.history)} steps)")
    for key, p in paths.items():
        print(f"{key + ':':10s}{p}")


def run_baseline(args, notice: Notify) -> None:
    """``diffmst baseline``: the equal-loudness mix of TRACKS."""
    from .audio import check_audio_output, check_output, load_tracks, write_audio

    check_audio_output(args.output, args.overwrite, args.bit_depth)
    if args.params:
        check_output(args.params, args.overwrite)
    tracks = load_tracks(args.tracks, notify=notice)
    mix, settings = equal_loudness_mix(tracks, args.lufs, args.peak, notify=notice)
    write_audio(args.output, mix, tracks.sample_rate, args.bit_depth, args.overwrite, notify=notice)
    print(args.output)
    if args.params:
        settings.save(args.params, overwrite=args.overwrite)
        print(args.params)
