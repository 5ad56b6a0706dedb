"""Per-song optimisation: diffmst's console vs the paper's dasp-pytorch console.

Run from the repository root (dasp-pytorch is a benchmark-only dependency)::

    pip install -e .[bench]
    python benchmarks/optimize_speed.py                  # 8 tracks x 3 min (several minutes)
    python benchmarks/optimize_speed.py --seconds 20 --dasp-steps 20 --steps 20   # smoke run

Both runs use the same song (8 tracks), reference (another song, random settings), analysis
windows, loudness normalisation, AF loss, start (equal loudness), projected Adam and
learning-rate schedule: ``diffmst.optimize`` with ``console_fn`` swapped. The only difference
is the console in the loop: ours, or the paper's dasp-pytorch console (``benchmarks/
console_speed.py``: gain -> parametric_eq -> compressor -> panner, master eq -> compressor ->
gain; frequencies clamped below Nyquist as ours does).

Printed: the AF loss that ``--dasp-steps`` (150) Adam steps with dasp reach (best so far,
as the optimiser keeps), the wall time they took, and the time our run needs to reach the
same loss (first step whose best-so-far AF loss is at or below it), and the ratio. Both are
measured side by side in one process, with the same thread count.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from _songs import SR, reference, song
from console_speed import dasp_console

from diffmst.console.params import EQ_BANDS, MASTER_INDEX, TRACK_INDEX
from diffmst.optimize import Options, optimize


def _clamp_freqs(p: torch.Tensor, index: dict, sr: float) -> torch.Tensor:
    cols = [index[f"eq.{key}.freq_hz"] for key, *_ in EQ_BANDS]
    p = p.clone()
    p[..., cols] = p[..., cols].clamp(max=0.49 * sr)
    return p


def dasp_fn(x, tp, mp, sr):
    return dasp_console(x, _clamp_freqs(tp, TRACK_INDEX, sr), _clamp_freqs(mp, MASTER_INDEX, sr), sr)


def best_so_far(history):
    best, out = float("inf"), []
    for h in history:
        best = min(best, h["af"])
        out.append((h["t"], best))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--steps", type=int, default=Options.steps, help="our steps (default: optimize's)")
    ap.add_argument("--dasp-steps", type=int, default=150)
    ap.add_argument("--window", type=float, default=Options.window_s, help="analysis window length, s (default: optimize's)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    names, audio = song(args.seed, args.seconds)
    ref = reference(args.seed, args.seconds)
    common = dict(sample_rate=SR, reference_sr=SR, track_names=names, seed=args.seed, window_s=args.window)
    print(f"song: {len(names)} tracks x {args.seconds:.0f} s at {SR} Hz; {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads; windows {Options.windows} x {args.window:g} s at "
          f"{Options.analysis_sr} Hz", flush=True)

    t0 = time.perf_counter()
    ours = optimize(audio, ref, steps=args.steps, **common)
    ours_total = time.perf_counter() - t0
    print(f"ours: {args.steps} steps, optimisation {ours.timings['optimize']:.1f} s, whole command "
          f"{ours_total:.1f} s (prepare {ours.timings['prepare']:.1f}, render {ours.timings.get('render', 0):.1f}); "
          f"AF {ours.af['equal_loudness']['total']:.4f} -> {ours.af['optimized']['total']:.4f}", flush=True)

    dasp = optimize(audio, ref, steps=args.dasp_steps, console_fn=dasp_fn, render=False, **common)
    d_curve = best_so_far(dasp.history)
    target = d_curve[-1][1]
    d_time = dasp.timings["optimize"]
    print(f"dasp: {args.dasp_steps} steps, optimisation {d_time:.1f} s; best AF {target:.4f}", flush=True)

    o_curve = best_so_far(ours.history)
    reach = next(((i, t) for i, (t, b) in enumerate(o_curve) if b <= target), None)
    per_step = lambda r: r.timings["optimize"] / max(1, len(r.history))  # noqa: E731
    print()
    print("| console | steps | s / step | time to AF <= dasp@{0} | best AF |".format(args.dasp_steps))
    print("|---|---|---|---|---|")
    print(f"| dasp-pytorch | {args.dasp_steps} | {per_step(dasp):.2f} | {d_time:.1f} s | {target:.4f} |")
    if reach is None:
        print(f"| diffmst | {args.steps} | {per_step(ours):.2f} | not reached in {args.steps} steps "
              f"({ours.timings['optimize']:.1f} s) | {o_curve[-1][1]:.4f} |")
    else:
        print(f"| diffmst | {reach[0] + 1} of {args.steps} | {per_step(ours):.2f} | {reach[1]:.1f} s | "
              f"{o_curve[-1][1]:.4f} |")
        print(f"\nratio: diffmst reaches dasp's {args.dasp_steps}-step AF loss in {reach[1] / d_time:.3f} of the time "
              f"({d_time / reach[1]:.1f}x faster)")


if __name__ == "__main__":
    main()
