"""The pipeline's entry points. So far :func:`optimize`, mixing without a network: one
song's console settings optimised against a reference.

:func:`optimize` is the song pipeline with the equal-loudness
settings as the start: song (tracks and reference loaded) -> baseline (every source
equally loud; :func:`~diffmst.pipeline.baseline.equal_loudness_settings`, also the floor
every method must beat) -> refine (Adam on the paper's AF distance over a few windows of
the song) -> finish (the whole song rendered at the tracks' rate, brought to the
reference's loudness, or the one asked, through the master's true-peak limiter, never
above -1 dBTP). The saved settings re-render exactly the same mix.

Arrays are numpy float32 ``(channels, samples)`` (tracks ``(tracks, samples)``), as in
:mod:`diffmst.audio`; torch is imported on first use, so ``import diffmst`` stays light.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np

from ..allocator import reuse_freed_memory
from .baseline import equal_loudness, linear_mix
from .options import Options, check_options
from .result import MixResult, song_af
from .song import Notify, Progress, as_tracks, load_reference, quiet


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
    notify: Notify = quiet,
    progress: Progress | None = None,
    render: bool = True,
    console_fn: Callable | None = None,
) -> MixResult:
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
        :class:`MixResult` (settings, mix at the tracks' rate, report data).
    """
    from ..console.limiter import true_peak_db
    from ..evaluate.metrics import PAPER_LUFS, song_features
    from ..loudness import loudness_np
    from .finish import ceiling_for, finish_song
    from .refine import refine, start_settings

    opts = Options(steps=steps, lr=lr, analysis_sr=analysis_sr, windows=windows, window_s=window_s,
                   prior=prior, weights=weights, loudness=loudness, peak_dbtp=peak_dbtp,
                   seed=seed, device=device, link_stereo=link_stereo)
    check_options(opts)
    t0 = time.perf_counter()
    song = as_tracks(tracks, sample_rate, track_names, notify)
    ref, ref_sr, ref_label = load_reference(reference, reference_sr, notify, min_seconds=window_s)
    if ref_sr != song.sample_rate:
        notify(f"{ref_label}: reference is at {ref_sr} Hz, tracks at {song.sample_rate} Hz; "
               f"both are analysed at {analysis_sr} Hz and the mix keeps {song.sample_rate} Hz")
    ref_lufs, ref_tp = loudness_np(ref, ref_sr), true_peak_db(ref)
    out_lufs = ref_lufs if loudness == "reference" else float(loudness)
    ceiling = ceiling_for(ref_tp, ref_lufs, out_lufs, peak_dbtp)
    baseline, levels = equal_loudness(song, PAPER_LUFS, peak_dbtp, notify, level_notify=quiet)
    # start: equal loudness (thresholds at each input's level, ratio 1: same sound)
    start = start_settings(baseline, levels, PAPER_LUFS)
    loaded = time.perf_counter() - t0
    refined = refine(song, ref, ref_sr, start, opts, out_lufs, ceiling, notify=notify, progress=progress,
                     console_fn=console_fn)
    timings = {"prepare": loaded + refined.seconds["prepare"], "optimize": refined.seconds.get("optimize", 0.0)}
    settings = refined.settings
    mix = np.zeros((2, 0), np.float32)
    if render:
        t_r = time.perf_counter()
        mix, _ = finish_song(song, settings, out_lufs, ceiling, refined.push_db, notify)
        timings["render"] = time.perf_counter() - t_r
    # the paper's measure on the whole songs (what results are judged by)
    ref_song = song_features(ref, ref_sr)
    song_afs = {"equal_loudness": song_af(linear_mix(song.audio, baseline), song.sample_rate, ref_song, ref_sr, weights)}
    if render:
        song_afs["optimized"] = song_af(mix, song.sample_rate, ref_song, ref_sr, weights)
    timings["total"] = time.perf_counter() - t0
    feats, af = refined.features, refined.af
    return MixResult(
        settings=settings, baseline=baseline, mix=mix, sample_rate=song.sample_rate, history=refined.history,
        features={"reference": feats["reference"], "equal_loudness": feats["start"], "optimized": feats["refined"]},
        af={"equal_loudness": af["start"], "optimized": af["refined"]},
        song_af=song_afs, windows_s=refined.windows_s, timings=timings,
        options=dict(opts.__dict__), reference_label=ref_label,
        reference_level={"lufs": round(ref_lufs, 2), "true_peak_dbtp": round(ref_tp, 2)},
        target={"lufs": round(out_lufs, 2), "ceiling_dbtp": round(ceiling, 2)},
    )
