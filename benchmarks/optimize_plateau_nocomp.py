"""Plateau probe: diffmst.optimize on the 3-minute benchmark song with every compressor
parameter frozen at its start (ratio 1). Prints the best AF loss and the final terms.

    python benchmarks/optimize_plateau_nocomp.py
"""
import sys, torch, importlib
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from _songs import SR, reference, song
M = importlib.import_module("diffmst.optimize")
from diffmst.optimize import optimize
torch.set_num_threads(2)
names, audio = song(0, 180.0); ref = reference(0, 180.0)
common = dict(sample_rate=SR, reference_sr=SR, track_names=names, seed=0, render=False)
orig = M._bounds
def nocomp(u0, specs, sr):
    lo, hi = orig(u0, specs, sr)
    for i, p in enumerate(specs):
        if p.name.startswith("compressor."):
            lo[..., i] = u0[..., i]; hi[..., i] = u0[..., i]
    return lo, hi
M._bounds = nocomp
r = optimize(audio, ref, steps=100, **common)
last = r.history[-1]
print("no compressors: best AF", round(min(h["af"] for h in r.history), 4), {k: last[k] for k in ("rms","crest","width","imbalance","bark")}, flush=True)
