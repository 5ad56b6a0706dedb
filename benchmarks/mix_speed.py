"""`diffmst.mix` speed and memory on whole songs: seconds per stage, real-time factor, peak RSS.

    python benchmarks/mix_speed.py                         # 4/8/16/32 tracks x 1/3/10 min, network, --refine 0
    python benchmarks/mix_speed.py --tracks 16 --minutes 3 --refine 0 20

Each (tracks, minutes, refine) runs in a fresh process (so its peak RSS is its own) on
synthetic tracks at 44.1 kHz (noise bursts and tones, each track its own level and
rhythm) and a stereo reference of the same length, with the shipped weights, on
``--threads`` threads. Prints a markdown table: the pipeline's own stage timings
(``MixResult.timings``: prepare = loading and analysis set-up, network, optimize =
refinement steps, render = the whole song finished), the total, its real-time factor
(total / song length) and the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
SR = 44100


def one(tracks: int, minutes: float, refine: int, threads: int, method: str) -> dict:
    sys.path.insert(0, SRC)
    import numpy as np
    import torch

    import diffmst

    torch.set_num_threads(threads)
    n = int(minutes * 60 * SR)
    rng = np.random.default_rng(tracks)
    t = np.arange(n, dtype=np.float32) / SR
    audio = np.empty((tracks, n), np.float32)
    for k in range(tracks):
        beat = (np.sin(2 * np.pi * (0.5 + 0.25 * k) * t) > 0.3).astype(np.float32)
        audio[k] = 10 ** (-(6 + 2 * k % 12) / 20) * (0.3 * rng.standard_normal(n).astype(np.float32) * beat
                                                      + 0.5 * np.sin(2 * np.pi * 55 * (1 + k % 7) * t))
    ref = np.stack([audio[::2].sum(0), audio[1::2].sum(0)]) * 0.2
    t0 = time.perf_counter()
    res = diffmst.mix(audio, ref, sample_rate=SR, reference_sr=SR, method=method, refine=refine)
    total = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"tracks": tracks, "minutes": minutes, "refine": refine, "total_s": round(total, 2),
            "rtf": round(total / (minutes * 60), 4), "peak_rss_mb": round(rss),
            **{f"{k}_s": round(v, 2) for k, v in res.timings.items() if k != "total"}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tracks", type=int, nargs="+", default=[4, 8, 16, 32])
    ap.add_argument("--minutes", type=float, nargs="+", default=[1, 3, 10])
    ap.add_argument("--refine", type=int, nargs="+", default=[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--method", default="network", help="mix's start (default: network)")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.tracks[0], args.minutes[0], args.refine[0], args.threads, args.method)))
        return
    print(f"{os.cpu_count()} logical CPUs, {args.threads} threads; synthetic tracks at {SR} Hz; method {args.method}")
    print("| tracks | minutes | refine | prepare s | network s | optimize s | render s | total s | RTF | peak RSS MB |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for refine in args.refine:
        for minutes in args.minutes:
            for tracks in args.tracks:
                cmd = [sys.executable, __file__, "--one", "--tracks", str(tracks), "--minutes", str(minutes),
                       "--refine", str(refine), "--threads", str(args.threads), "--method", args.method]
                res = subprocess.run(cmd, capture_output=True, text=True)
                if res.returncode:
                    print(f"| {tracks} | {minutes:g} | {refine} | failed: {res.stderr.strip().splitlines()[-1]} |")
                    continue
                r = json.loads(res.stdout.strip().splitlines()[-1])
                print(f"| {tracks} | {minutes:g} | {refine} | {r.get('prepare_s', 0):.1f} | {r.get('network_s', 0):.1f} | "
                      f"{r.get('optimize_s', 0):.1f} | {r.get('render_s', 0):.1f} | {r['total_s']:.1f} | "
                      f"{r['rtf']:.3f} | {r['peak_rss_mb']} |", flush=True)


if __name__ == "__main__":
    main()
