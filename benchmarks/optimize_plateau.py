"""Why does per-song optimisation plateau on the 3-minute benchmark song? Runs diffmst.optimize
with a few option variants and prints the best AF loss and the final per-feature terms.

    python benchmarks/optimize_plateau.py
"""
import sys, torch
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from _songs import SR, reference, song
from diffmst.optimize import optimize
torch.set_num_threads(2)
names, audio = song(0, 180.0); ref = reference(0, 180.0)
common = dict(sample_rate=SR, reference_sr=SR, track_names=names, seed=0, render=False)
for kw in [dict(prior=0.0), dict(lr=0.1), dict(prior=0.0, lr=0.1)]:
    r = optimize(audio, ref, steps=100, **common, **kw)
    best = min(h["af"] for h in r.history)
    last = r.history[-1]
    print(kw, "best AF", round(best, 4), {k: last[k] for k in last if k not in ("step", "t", "loss", "af", "prior")}, flush=True)
