"""A song's inputs: tracks and reference loaded and checked, and the analysis windows.

Arrays are numpy float32 ``(channels, samples)`` (tracks ``(tracks, samples)``), as in
:mod:`diffmst.audio`."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import DiffmstError
from .options import PREROLL_S, Options

Notify = Callable[[str], None]
Progress = Callable[[int, int, float], None]  # (step, steps, loss)


def quiet(_msg: str) -> None:
    """A Notify that drops every notice."""


def as_tracks(tracks, sample_rate: int | None = None, names: Sequence[str] | None = None, notify: Notify = quiet):
    """Tracks from a folder / files (see :func:`diffmst.audio.load_tracks`), a
    :class:`~diffmst.audio.Tracks`, or an array ``(tracks, samples)`` with ``sample_rate``."""
    from ..audio import Tracks, load_tracks

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


def load_reference(reference, sample_rate: int | None = None, notify: Notify = quiet,
                   min_seconds: float = 0.0) -> tuple[np.ndarray, int, str]:
    """The reference as stereo ``(2, samples)`` float32, its rate and a label for messages.

    A mono reference is used as dual mono (with a notice). Raises :class:`DiffmstError`
    for a silent reference or one shorter than ``min_seconds``."""
    from ..audio import read_audio

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
    from ..loudness import loudness_np

    if not math.isfinite(loudness_np(audio, sr)):
        raise DiffmstError(f"{label}: reference is silent (below -70 LUFS); nothing to match")
    return np.ascontiguousarray(audio, dtype=np.float32), sr, label


def split_reference(inputs: Sequence[str], reference: str | Sequence[str] | None,
                    notify: Notify = quiet) -> tuple[list[str], str | list[str]]:
    """``(tracks, reference)`` from the command line: the reference is ``reference`` when
    given (a path, or several: ``-r a.wav -r b.wav``, returned as a list), else the last of
    ``inputs``.

    Without ``reference``, a reference that sits among the tracks (in a tracks folder, or
    beside track files: ``optimize stems/*.flac -o out`` would take the last stem for it)
    is refused. With it, a reference is left out of a tracks folder it sits in (with a
    notice), and refused when it is also named as a track."""
    if isinstance(reference, (list, tuple)):
        if len(reference) == 1:
            reference = reference[0]
        else:
            tracks = list(inputs)
            for ref in reference:
                tracks, _ = split_reference(tracks, ref, notify)
            return tracks, list(reference)
    if reference is None:
        if len(inputs) < 2:
            raise DiffmstError("give the tracks and then the reference (or the reference with --reference)")
        tracks, ref = list(inputs[:-1]), inputs[-1]
    elif not inputs:
        raise DiffmstError("no tracks given")
    else:
        tracks, ref = list(inputs), reference
    ref_path = Path(ref).resolve()
    if not ref_path.is_file():
        return tracks, ref  # a folder or a missing file: the reference's own checks say so
    out: list[str] = []
    for t in tracks:
        tp = Path(t).resolve()
        if ref_path == tp:
            raise DiffmstError(f"{ref}: given both as a track and as the reference")
        in_folder = tp.is_dir() and ref_path.parent == tp
        beside = tp.is_file() and ref_path.parent == tp.parent
        if reference is None and (in_folder or beside):
            kind = "in the tracks' folder" if in_folder else f"beside the track {t}"
            raise DiffmstError(f"{ref}: the reference sits {kind}; did you forget it? "
                               "Give the reference with --reference/-r REF to use this file anyway")
        if in_folder:  # the folder's files, less the reference
            from ..audio import find_audio

            rest = [str(f) for f in find_audio([t], notify) if f.resolve() != ref_path]
            notify(f"{ref}: the reference is left out of the tracks in {t}")
            out += rest
        else:
            out.append(t)
    return out, ref


def load_references(reference, sample_rate: int | None = None, notify: Notify = quiet,
                    min_seconds: float = 0.0) -> tuple[np.ndarray, int, str]:
    """:func:`load_reference` for one reference, or for several (a list of files or
    arrays at ``sample_rate``): each is loaded and checked, resampled to the first one's
    rate, brought to their mean loudness, and the songs are joined end to end, so every
    feature of the result pools them (each weighted by its length) and its loudness is
    their mean."""
    if not isinstance(reference, (list, tuple)):
        return load_reference(reference, sample_rate, notify, min_seconds)
    if not reference:
        raise DiffmstError("no reference given")
    if len(reference) == 1:
        return load_reference(reference[0], sample_rate, notify, min_seconds)
    from ..audio import resample
    from ..loudness import loudness_np, normalize_np

    loaded = [load_reference(r, sample_rate, notify, min_seconds) for r in reference]
    sr = loaded[0][1]
    audio = [a if r == sr else resample(a, r, sr) for a, r, _ in loaded]
    target = float(np.mean([loudness_np(a, sr) for a in audio]))
    joined = np.concatenate([normalize_np(a, sr, target)[0] for a in audio], axis=1)
    return np.ascontiguousarray(joined, dtype=np.float32), sr, " + ".join(label for _, _, label in loaded)


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


def analysis_windows(tracks, opts: Options, notify: Notify):
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
