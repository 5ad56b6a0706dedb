"""The network's numbers for docs/model.md: same-song accuracy, a better start, and speed.

    python benchmarks/model_eval.py same-song [--weights W] [--items 24] [--corpus data/corpus22]
    python benchmarks/model_eval.py start [--weights W] [--refs-json docs/real_refs.json] [--steps 25]
    python benchmarks/model_eval.py speed [--weights W] [--tracks 16] [--minutes 3]

``same-song``: held-back Method 1 examples (the corpus's last 20 songs, never trained on;
a seed of their own): the tracks ``T_B`` and the reference ``M_rA`` (the same settings on
the segment's first half) go in; the mix of ``T_B`` with the network's settings is compared
with the true mix ``M_rB`` (MRSTFT, and the paper's AF measure with its terms), beside
the equal-loudness mix and the true settings rendered the same way (the differentiable
console's FFT EQ against the IIR one that made the target: the floor).

``start``: for each (song, reference) pair of ``benchmarks/real_refs.py``, how many
refinement steps from the network's settings reach the AF (on the analysis windows) that
``diffmst.optimize`` reaches in its default steps from equal loudness, read from the
``ours`` rows of ``--refs-json`` (write it with ``real_refs.py --json``).

``speed``: :func:`diffmst.model.predict.predict_settings` on ``--tracks`` noise-and-tone
tracks of ``--minutes`` at 44.1 kHz and a reference (weights loaded before timing; best
of 3), and its real-time factor.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def same_song(args) -> None:
    import torch

    from diffmst.data.samplers import Method1Dataset, collate
    from diffmst.data.sources import GeneratedSource
    from diffmst.evaluate.metrics import paper_distance, paper_features
    from diffmst.losses import MRSTFTLoss
    from diffmst.model.weights import load_model
    from diffmst.console.params import MASTER_PARAMS, TRACK_PARAMS, normalize
    from diffmst.train.data import split_songs
    from diffmst.train.module import equal_loudness_u, mix_with

    model, meta = load_model(args.weights)
    sr = model.config.sample_rate
    source = GeneratedSource(args.corpus)
    _, val_songs = split_songs(source, args.val_songs)
    data = Method1Dataset(source, max_tracks=args.tracks, segment_s=10.0, sample_rate=sr,
                          items_per_epoch=args.items, seed=args.seed, songs=val_songs)
    mrstft = MRSTFTLoss()
    rows: dict[str, list[dict]] = {"network": [], "equal loudness": [], "true settings": []}
    print(f"{args.items} held-back Method 1 examples ({len(val_songs)} songs), up to {args.tracks} tracks, "
          f"5 s at {sr} Hz; weights {args.weights or 'shipped'} {meta}", flush=True)
    with torch.no_grad():
        for i in range(0, args.items, 4):
            b = collate([data[j] for j in range(i, min(i + 4, args.items))])
            n, t = b["mask"].shape
            net = model(b["tracks"][:, :, 0], b["reference"], b["mask"])
            true = (normalize(b["track_params"], TRACK_PARAMS), normalize(b["master_params"], MASTER_PARAMS))
            for name, (tu, mu) in (("network", net), ("equal loudness", equal_loudness_u(b["track_names"])),
                                   ("true settings", true)):
                mix = mix_with(b["tracks"], tu, mu, sr)
                for k in range(n):
                    af, terms = paper_distance(paper_features(mix[k:k + 1].double(), sr),
                                               paper_features(b["target"][k:k + 1].double(), sr))
                    rows[name].append({"mrstft": float(mrstft(mix[k:k + 1], b["target"][k:k + 1])),
                                       "af": float(af), **{key: float(v) for key, v in terms.items()}})
    keys = ["mrstft", "af", "rms", "crest", "width", "imbalance", "bark"]
    print("\n| settings | " + " | ".join(keys) + " | median AF |")
    print("|---|" + "---:|" * (len(keys) + 1))
    for name, rs in rows.items():
        print(f"| {name} | " + " | ".join(f"{statistics.fmean(r[k] for r in rs):.4f}" for k in keys)
              + f" | {statistics.median(r['af'] for r in rs):.4f} |")
    ratio = statistics.fmean(r["mrstft"] for r in rows["network"]) / statistics.fmean(
        r["mrstft"] for r in rows["equal loudness"])
    print(f"\nnetwork MRSTFT / equal loudness MRSTFT: {ratio:.3f} (bar 0.7, goal 0.5)")


def start(args) -> None:
    from real_refs import REFERENCES, song_dirs

    from diffmst import mix

    rows = json.loads(Path(args.refs_json).read_text())["rows"]
    ours = {(r["song"], r["reference"]): r for r in rows if r["method"] == "ours" and r.get("af")}
    songs = song_dirs(Path(args.songs_dir))
    print("| song | reference | optimize: steps | optimize AF (windows) | network AF (windows) | "
          "steps from the network to reach it |")
    print("|---|---|---:|---:|---:|---:|")
    reached = []
    for song, ref in zip(songs, REFERENCES):
        row = ours.get((song.name, ref.name))
        if row is None or not os.path.isfile(ref.path):
            continue
        target = row["extra"]["af_windows"]["optimized"]["total"]
        steps = len(row["extra"].get("history", [])) or 100
        res = mix(song, ref.path, method="network", refine=args.steps, model=args.weights, render=False)
        hist = [h["af"] for h in res.history]
        k = next((i for i, a in enumerate(hist) if a <= target), None)
        net_af = hist[0] if hist else res.af["optimized"]["total"]
        reached.append(k)
        print(f"| {song.name} | {ref.name} | {steps} | {target:.4f} | {net_af:.4f} | "
              f"{k if k is not None else f'> {args.steps}'} |", flush=True)
    done = [k for k in reached if k is not None]
    print(f"\nreached within {args.steps} steps on {len(done)}/{len(reached)} pairs"
          + (f"; median {statistics.median(done)} steps" if done else ""))


def speed(args) -> None:
    import numpy as np
    import torch

    from diffmst.audio import Tracks
    from diffmst.model.predict import predict_settings
    from diffmst.model.weights import load_model

    model, _ = load_model(args.weights)
    sr, n = 44100, int(args.minutes * 60 * 44100)
    rng = np.random.default_rng(0)
    t = np.arange(n) / sr
    audio = np.stack([0.05 * rng.standard_normal(n) * (1 + np.sin(2 * np.pi * (0.5 + k) * t))
                      + 0.1 * np.sin(2 * np.pi * 55 * (k + 1) * t) for k in range(args.tracks)]).astype(np.float32)
    song = Tracks([f"t{k}" for k in range(args.tracks)], audio, sr, [])
    ref = np.stack([audio[::2].sum(0), audio[1::2].sum(0)]) * 0.1
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        predict_settings(model, song, ref, sr)
        times.append(time.perf_counter() - t0)
    best = min(times)
    print(f"predict_settings: {args.tracks} tracks x {args.minutes:g} min at 44.1 kHz, {torch.get_num_threads()} "
          f"threads: best of 3 {best:.2f} s (all: {', '.join(f'{x:.2f}' for x in times)}); "
          f"real-time factor {best / (args.minutes * 60):.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", nargs="?", default="speed", choices=["same-song", "start", "speed"],
                    help="which table (default: speed, the one that needs no corpus)")
    ap.add_argument("--weights", default=None, help="weights file (default: the shipped model)")
    ap.add_argument("--corpus", default="data/corpus22")
    ap.add_argument("--val-songs", type=int, default=20)
    ap.add_argument("--items", type=int, default=24)
    ap.add_argument("--tracks", type=int, default=None, help="same-song: max tracks (8); speed: tracks (16)")
    ap.add_argument("--seed", type=int, default=777, help="same-song items' seed (training's val uses 10000)")
    ap.add_argument("--refs-json", default="docs/real_refs.json")
    ap.add_argument("--songs-dir", default="data/bench-songs")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.what == "same-song":
        args.tracks = args.tracks or 8
        same_song(args)
    elif args.what == "start":
        start(args)
    else:
        args.tracks = args.tracks or 16
        speed(args)


if __name__ == "__main__":
    main()
