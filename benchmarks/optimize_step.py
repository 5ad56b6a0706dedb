"""Where the optimisation step's time went: one step (console + loss, forward and backward)
timed as it was and as it is, with and without the allocator setting.

Run from the repository root::

    python benchmarks/optimize_step.py          # ~2 minutes on 2 cores

This records how the *robust* loss of version 1 (24 kHz, :mod:`diffmst.features`) was made
cheap; ``diffmst.optimize`` now optimises the paper's measure at 44.1 kHz (its step:
``docs/optimize.md``, "Results on real finished songs").

Loss variants (same console, same windows: 4 x 5 s at 24 kHz, 8 tracks):

- ``before``: the mix scaled to -16 LUFS by :func:`diffmst.loudness.loudness_normalize`
  (its own K-weighting FFT pair), then the features with the Bark spectrum averaged over
  STFT frames (:func:`diffmst.features.bark_power`), and the EQ padded by 1 s, as the step
  was computed before;
- ``now``: :class:`diffmst.losses.AFLoss` with ``lufs`` (loudness from the features' own
  K-weighted signal, long-term Bark from one FFT), and the EQ's zero-padding cut from 1 s
  to the 0.25 s warm-up;
- ``kept``: ``now`` with the tracks' rfft computed once and reused every step
  (:func:`diffmst.console.eq.reuse_input_spectra`), as ``diffmst.optimize`` runs it.

All run the current console and feature code (``console(..., wet=False)``: the mix only);
the speed-ups inside them (the fused compressor, the EQ before the gain, ``prepare``'s
backward) count for both.

Allocator: glibc's defaults (``DIFFMST_MALLOC=default``) or
:func:`diffmst.allocator.reuse_freed_memory` (``kept``: only the latter). Each of the five runs in its own process
(the allocator state is per process), in two interleaved rounds; printed: median step time
and the ratio to ``before`` with glibc's defaults.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import torch


def measure(variant: str, steps: int, seconds: float) -> list[float]:
    from _songs import SR, reference, song

    from diffmst import features as F
    from diffmst.allocator import reuse_freed_memory
    from diffmst.console import MASTER_PARAMS, TRACK_PARAMS, console, denormalize, normalize
    from diffmst.console.eq import reuse_input_spectra
    from diffmst.losses import AFLoss
    from diffmst.loudness import loudness_normalize

    from diffmst.pipeline.baseline import equal_loudness
    from diffmst.pipeline.options import Options
    from diffmst.pipeline.refine import start_settings
    from diffmst.pipeline.song import analysis_windows, as_tracks

    names, audio = song(0, seconds)
    tracks = as_tracks(audio, SR, names)
    opts = Options(analysis_sr=24000)  # the robust loss's rate (optimize now runs the paper's at 44.1 kHz)
    x, pre, _ = analysis_windows(tracks, opts, lambda _m: None)
    base, levels = equal_loudness(tracks, -16.0, -1.0, lambda _m: None)
    start = start_settings(base, levels, -16.0)
    sr = opts.analysis_sr
    import soxr

    from diffmst.loudness import normalize_np

    ref_a = soxr.resample(reference(0, seconds).T, SR, sr, quality="HQ").T
    ref = torch.from_numpy(normalize_np(np.ascontiguousarray(ref_a, dtype=np.float32), sr, -16.0)[0])[None]
    af = AFLoss(sr, pool=True, lufs=-16.0)
    with torch.no_grad():
        ref_feats = F.style_features(ref, sr, pool=True)
    u_t = normalize(start.track_params.double(), TRACK_PARAMS).clamp(0, 1).float().requires_grad_(True)
    u_m = normalize(start.master_params.double(), MASTER_PARAMS).clamp(0, 1).float().requires_grad_(True)
    k = x.shape[0]

    def before(mix):
        mix, _ = loudness_normalize(mix, sr, -16.0, pool=True)
        ff = F.frame_features(mix, sr)
        ff["bark_mean"] = ff["bark_power"].mean(2)  # the Bark of STFT frames, averaged
        return F.summarize(ff, pool=True)

    feats = before if variant.startswith("before") else af.features

    tail = None if variant == "before" else (pre or None)  # optimize's EQ padding (the warm-up)
    # "kept": the tracks' rfft computed once and reused, as optimize runs the loop
    spectra = reuse_input_spectra() if variant == "kept" else contextlib.nullcontext()

    def step():
        tp, mp = denormalize(u_t[None], TRACK_PARAMS), denormalize(u_m[None], MASTER_PARAMS)
        mix = console(x, tp.expand(k, -1, -1), mp.expand(k, -1), sr, eq_tail=tail, wet=False)[0][..., pre:]
        total, _ = af(feats(mix), ref_feats)
        total.backward()

    times = []
    with reuse_freed_memory(), spectra:
        for i in range(steps + 3):
            t0 = time.perf_counter()
            step()
            if i >= 3:  # warm-up: numba, caches, the heap's first growth
                times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=60.0, help="song length (the step does not depend on it)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(2)
    if args.child:
        print(json.dumps(measure(args.child, args.steps, args.seconds)))
        return
    configs = [("before", "default"), ("before", ""), ("now", "default"), ("now", ""), ("kept", "")]
    times: dict[tuple[str, str], list[float]] = {c: [] for c in configs}
    for _ in range(args.rounds):
        for variant, malloc in configs:
            env = {**os.environ, "DIFFMST_MALLOC": malloc}
            out = subprocess.run([sys.executable, __file__, "--child", variant, "--steps", str(args.steps),
                                  "--seconds", str(args.seconds)], env=env, capture_output=True, text=True,
                                 check=True)
            times[(variant, malloc)] += json.loads(out.stdout.strip().splitlines()[-1])
    base = statistics.median(times[configs[0]])
    print(f"one step, 4 x 5 s windows at 24 kHz, 8 tracks, 2 threads; median of {args.rounds} x {args.steps} steps\n")
    print("| loss | allocator | s / step | relative |")
    print("|---|---|---|---|")
    for (variant, malloc), t in times.items():
        med = statistics.median(t)
        alloc = "glibc defaults" if malloc else "reuse_freed_memory"
        print(f"| {variant} | {alloc} | {med:.3f} (IQR {np.percentile(t, 25):.3f}-{np.percentile(t, 75):.3f}) "
              f"| {med / base:.2f} |")


if __name__ == "__main__":
    main()
