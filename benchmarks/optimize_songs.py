"""AF loss of the equal-loudness baseline vs per-song optimisation on example songs.

Run from the repository root::

    python benchmarks/optimize_songs.py                 # 6 songs, default settings
    python benchmarks/optimize_songs.py --songs 2 --steps 10 --seconds 10   # smoke run

Each song: 8 tracks (``benchmarks/_songs.py``), a reference mixed from a *different* song
with random console settings. ``diffmst.optimize`` runs with its defaults (the command
line's). The AF loss (paper weights; per feature) is measured afresh on the **whole**
rendered songs (baseline and result, each at -16 LUFS, at 24 kHz) against the whole
reference, so it includes the parts of the song the optimiser never saw; "windows" is the
loss on the optimiser's own analysis windows. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import soxr
import torch

from _songs import SR, reference, song

from diffmst.losses import AFLoss
from diffmst.loudness import normalize_np
from diffmst import equal_loudness_mix, optimize
from diffmst.pipeline.options import Options

FEATS = ("rms", "crest", "width", "imbalance", "bark")
ASR = 24000


def at_analysis(x: np.ndarray) -> torch.Tensor:
    x = soxr.resample(x.T, SR, ASR, quality="HQ").T
    x, _ = normalize_np(np.ascontiguousarray(x, dtype=np.float32), ASR, -16.0)
    return torch.from_numpy(np.ascontiguousarray(x))[None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--songs", type=int, default=6)
    ap.add_argument("--seconds", type=float, nargs="*", default=[30, 45, 60, 40, 50, 35])
    ap.add_argument("--steps", type=int, default=Options.steps)
    ap.add_argument("--windows", type=int, default=Options.windows, help="analysis windows (default: optimize's)")
    ap.add_argument("--window", type=float, default=Options.window_s, help="window length, s (default: optimize's)")
    ap.add_argument("--prior", type=float, default=Options.prior, help="settings prior (default: optimize's)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    af = AFLoss(ASR)
    rows = []
    for i in range(args.songs):
        seconds = args.seconds[i % len(args.seconds)]
        names, audio = song(i, seconds)
        ref = reference(i, seconds)
        t0 = time.perf_counter()
        res = optimize(audio, ref, sample_rate=SR, reference_sr=SR, track_names=names, steps=args.steps, seed=i,
                       windows=args.windows, window_s=args.window, prior=args.prior)
        took = time.perf_counter() - t0
        base, _ = equal_loudness_mix(audio, sample_rate=SR, names=names)
        r = at_analysis(ref)
        with torch.no_grad():
            el_total, el = af(at_analysis(base), r)
            op_total, op = af(at_analysis(res.mix), r)
        rows.append((i, seconds, float(el_total), {k: float(v) for k, v in el.items()}, float(op_total),
                     {k: float(v) for k, v in op.items()}, res.af, took))
        print(f"song {i}: {seconds:.0f} s, AF {float(el_total):.4f} -> {float(op_total):.4f} ({took:.1f} s)",
              flush=True)
    print()
    print("| song | length | mix | " + " | ".join(FEATS) + " | AF total | AF (windows) | time (s) |")
    print("|---|---|---|" + "---|" * len(FEATS) + "---|---|---|")
    for i, sec, elt, el, opt, op, win, took in rows:
        print(f"| {i} | {sec:.0f} s | equal loudness | " + " | ".join(f"{el[k]:.4f}" for k in FEATS)
              + f" | {elt:.4f} | {win['equal_loudness']['total']:.4f} | |")
        print("| | | optimised | " + " | ".join(f"{op[k]:.4f}" for k in FEATS)
              + f" | **{opt:.4f}** | {win['optimized']['total']:.4f} | {took:.0f} |")
    el_mean = np.mean([r[2] for r in rows])
    op_mean = np.mean([r[4] for r in rows])
    print(f"\nmean AF loss over {len(rows)} songs: equal loudness {el_mean:.4f}, optimised {op_mean:.4f} "
          f"({100 * (1 - op_mean / el_mean):.0f}% lower); optimised below equal loudness on "
          f"{sum(r[4] < r[2] for r in rows)}/{len(rows)} songs")


if __name__ == "__main__":
    main()
