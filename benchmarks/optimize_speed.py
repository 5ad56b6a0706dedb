"""Per-song optimisation: diffmst's console vs the paper's dasp-pytorch console.

Run from the repository root (dasp-pytorch is a benchmark-only dependency)::

    pip install -e .[bench]
    python benchmarks/optimize_speed.py --seeds 0 1 2    # 8 tracks x 3 min (~6 minutes a seed)
    python benchmarks/optimize_speed.py --seconds 20 --dasp-steps 20 --steps 30 20   # smoke run

Both runs use the same song (8 tracks), reference (another song, random settings), analysis
windows, loudness normalisation, AF loss, start (equal loudness), projected Adam and
learning-rate schedule: ``diffmst.optimize`` with ``console_fn`` swapped. The only difference
is the console in the loop: ours, or the paper's dasp-pytorch console (``benchmarks/
console_speed.py``: gain -> parametric_eq -> compressor -> panner, master eq -> compressor ->
gain; frequencies clamped below Nyquist as ours does).

Printed per window placement (``--seeds``): the AF loss that ``--dasp-steps`` (150) Adam
steps with dasp reach (best so far, as the optimiser keeps), the wall time they took, and
for each of our runs (``--steps``; default: ``diffmst.optimize``'s own default, as shipped,
and the same number of steps as dasp, i.e. the identical optimiser and schedule) the time
it needs to reach the same loss (first step whose best-so-far AF loss is at or below it),
and the ratio. All are measured side by side in one process, with the same thread count.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from _songs import SR, reference, song
from console_speed import dasp_console

from diffmst.console.params import EQ_BANDS, MASTER_INDEX, TRACK_INDEX
from diffmst import optimize
from diffmst.pipeline.options import Options


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


def run(audio, ref, names, args, seed: int) -> dict:
    common = dict(sample_rate=SR, reference_sr=SR, track_names=names, seed=seed, window_s=args.window)
    ours = {}
    for steps in args.steps:
        t0 = time.perf_counter()
        o = ours[steps] = optimize(audio, ref, steps=steps, **common)
        print(f"seed {seed}: ours: {steps} steps, optimisation {o.timings['optimize']:.1f} s, whole command "
              f"{time.perf_counter() - t0:.1f} s (prepare {o.timings['prepare']:.1f}, render "
              f"{o.timings.get('render', 0):.1f}); AF {o.af['equal_loudness']['total']:.4f} -> "
              f"{o.af['optimized']['total']:.4f}", flush=True)
    dasp = optimize(audio, ref, steps=args.dasp_steps, console_fn=dasp_fn, render=False, **common)
    target = best_so_far(dasp.history)[-1][1]
    print(f"seed {seed}: dasp: {args.dasp_steps} steps, optimisation {dasp.timings['optimize']:.1f} s; "
          f"best AF {target:.4f}", flush=True)
    runs = []
    for steps, o in ours.items():
        curve = best_so_far(o.history)
        reach = next(((i, t) for i, (t, b) in enumerate(curve) if b <= target), None)
        runs.append({"steps": steps, "result": o, "curve": curve, "reach": reach, "best": curve[-1][1]})
    return {"seed": seed, "dasp": dasp, "target": target, "ours": runs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--dasp-steps", type=int, default=150)
    ap.add_argument("--steps", type=int, nargs="+", default=None,
                    help=f"our runs' steps (default: {Options.steps}, optimize's default, and --dasp-steps)")
    ap.add_argument("--window", type=float, default=Options.window_s, help="analysis window length, s (default: optimize's)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="window placements (optimize's seed)")
    args = ap.parse_args()
    args.steps = args.steps or list(dict.fromkeys([Options.steps, args.dasp_steps]))
    torch.set_num_threads(args.threads)
    names, audio = song(0, args.seconds)
    ref = reference(0, args.seconds)
    print(f"song: {len(names)} tracks x {args.seconds:.0f} s at {SR} Hz; {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads; windows {Options.windows} x {args.window:g} s at "
          f"{Options.analysis_sr} Hz", flush=True)
    results = [run(audio, ref, names, args, seed) for seed in args.seeds]
    per_step = lambda r: r.timings["optimize"] / max(1, len(r.history))  # noqa: E731
    print()
    print(f"| seed | console | steps | s / step | time to AF <= dasp@{args.dasp_steps} | best AF | ratio |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        d = r["dasp"]
        print(f"| {r['seed']} | dasp-pytorch | {args.dasp_steps} | {per_step(d):.2f} | {d.timings['optimize']:.1f} s "
              f"| {r['target']:.4f} | |")
        for run_ in r["ours"]:
            o, steps = run_["result"], run_["steps"]
            if run_["reach"] is None:
                print(f"| | diffmst | {steps} | {per_step(o):.2f} | not reached in {steps} steps "
                      f"({o.timings['optimize']:.1f} s) | {run_['best']:.4f} | |")
            else:
                ratio = run_["reach"][1] / d.timings["optimize"]
                print(f"| | diffmst | {run_['reach'][0] + 1} of {steps} | {per_step(o):.2f} | {run_['reach'][1]:.1f} s "
                      f"| {run_['best']:.4f} | **{ratio:.3f}** ({1 / ratio:.1f}x faster) |")
    if len(results) > 1:
        summary(results, args)


def summary(results: list, args) -> None:
    """Over all placements: how many reach dasp's loss within a tenth of its time, and the
    mean best-so-far curve (per step, over placements) against dasp's mean loss."""
    n = len(results)
    dasp_af = sum(r["target"] for r in results) / n
    dasp_t = sum(r["dasp"].timings["optimize"] for r in results) / n
    print()
    print(f"over {n} placements: dasp@{args.dasp_steps} mean best AF {dasp_af:.4f} in {dasp_t:.1f} s (mean)")
    for i, steps in enumerate(args.steps):
        runs = [r["ours"][i] for r in results]
        within = sum(1 for r, run_ in zip(results, runs)
                     if run_["reach"] is not None and run_["reach"][1] <= 0.1 * r["dasp"].timings["optimize"])
        curves = [run_["curve"] for run_ in runs]
        m = min(len(c) for c in curves)
        mean_af = [sum(c[j][1] for c in curves) / n for j in range(m)]
        mean_t = [sum(c[j][0] for c in curves) / n for j in range(m)]
        hit = next((j for j in range(m) if mean_af[j] <= dasp_af), None)
        line = (f"diffmst {steps} steps: reached dasp's loss within a tenth of its time on {within} of {n}; "
                f"mean best AF {mean_af[-1]:.4f}; ")
        if hit is None:
            line += "mean curve does not reach dasp's mean"
        else:
            line += (f"mean curve reaches dasp's mean at step {hit + 1} ({mean_t[hit]:.1f} s): "
                     f"ratio **{mean_t[hit] / dasp_t:.3f}**")
        print(line)


if __name__ == "__main__":
    main()
