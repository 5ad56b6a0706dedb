"""Why per-song optimisation plateaued on the 3-minute benchmark song (docs/optimize.md).

Runs ``diffmst.optimize`` (default options otherwise, 100 steps) on the song and reference of
``optimize_speed.py`` with two RMS/crest summaries side by side:

- ``gated``: the summary as it was before, frames more than 30 dB below the power mean
  *left out* (a hard gate, re-implemented here);
- ``floor``: the summary in ``diffmst.features`` now: frames more than 20 dB below the
  power mean counted as lying 20 dB below it (continuous);

each with three compressor set-ups: ours (attack/release), ours with release tied to
attack (the attack-only smoothing of dasp-pytorch's compressor) and every compressor frozen
at ratio 1. Prints the best AF loss, the terms at the last step and the largest rise of
the loss from one step to the next (a jump means the loss is discontinuous).

    python benchmarks/optimize_plateau.py            # 6 runs, ~2 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import importlib

import torch

from _songs import SR, reference, song

import diffmst.console.dynamics as dynamics
import diffmst.features as features
from diffmst import optimize

optimize_mod = importlib.import_module("diffmst.pipeline.refine")  # where the refinement looks up `bounds`

FLOOR_SUMMARIZE = features.summarize
TIED_COMPRESSOR = dynamics.compressor
BOUNDS = optimize_mod.bounds
OLD_GATE_DB = -30.0  # the hard gate's level, dB below the power mean


def gated_summarize(ff: dict, pool: bool = False, lufs: float | None = None) -> dict:
    """The earlier summary: RMS and crest averaged over frames above -70 dBFS and within
    30 dB of their power mean; the others left out (weights without gradient)."""
    out = FLOOR_SUMMARIZE(ff, pool, lufs)
    power = ff["power"]
    if lufs is not None:
        power = power * features.loudness_gain(ff, lufs, pool).view(-1, 1)
    power = power.reshape(1, -1) if pool else power
    level = 10 * torch.log10(power + features.POWER_EPS)
    with torch.no_grad():
        loud = (level > features.SILENT_DB).to(power.dtype)
        mean_loud = (power * loud).sum(-1, keepdim=True) / loud.sum(-1, keepdim=True).clamp_min(1)
        loud = loud * (level > 10 * torch.log10(mean_loud + features.POWER_EPS) + OLD_GATE_DB)
        weight = torch.where(loud.sum(-1, keepdim=True) == 0, torch.ones_like(loud), loud)
        weight = weight / weight.sum(-1, keepdim=True)
    crest = ff["crest"].reshape(1, -1) if pool else ff["crest"]  # a ratio: the gain cancels
    return {**out, "rms": (level * weight).sum(-1), "crest": (crest * weight).sum(-1)}


def tied_compressor(x, params, sample_rate, link=False, state=None):
    """Our compressor with release := attack (one time constant, like dasp-pytorch's)."""
    p = torch.cat([params[:, :3], params[:, 2:3], params[:, 4:]], dim=1)
    return TIED_COMPRESSOR(x, p, sample_rate, link=link, state=state)


def frozen_bounds(u0, specs, sample_rate):
    lo, hi = BOUNDS(u0, specs, sample_rate)
    for i, spec in enumerate(specs):
        if spec.name.startswith("compressor."):
            lo[..., i] = u0[..., i]
            hi[..., i] = u0[..., i]
    return lo, hi


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--steps", type=int, default=100)
    args = ap.parse_args()
    torch.set_num_threads(2)
    names, audio = song(0, args.seconds)
    ref = reference(0, args.seconds)
    common = dict(sample_rate=SR, reference_sr=SR, track_names=names, seed=0, render=False, steps=args.steps)
    print("| summary | compressors | best AF | last step: rms, crest, width, imbalance, bark | largest rise |")
    print("|---|---|---|---|---|")
    for summary, summarize in (("gated", gated_summarize), ("floor", FLOOR_SUMMARIZE)):
        for comp in ("attack/release", "release = attack", "frozen"):
            features.summarize = summarize
            dynamics.compressor = tied_compressor if comp == "release = attack" else TIED_COMPRESSOR
            optimize_mod.bounds = frozen_bounds if comp == "frozen" else BOUNDS
            try:
                r = optimize(audio, ref, **common)
            finally:
                features.summarize, dynamics.compressor, optimize_mod.bounds = FLOOR_SUMMARIZE, TIED_COMPRESSOR, BOUNDS
            af = [h["af"] for h in r.history]
            last = r.history[-1]
            terms = ", ".join(f"{last[k]:.4f}" for k in ("rms", "crest", "width", "imbalance", "bark"))
            rise = max(b - a for a, b in zip(af, af[1:]))
            print(f"| {summary} | {comp} | {min(af):.4f} | {terms} | {rise:+.3f} |", flush=True)


if __name__ == "__main__":
    main()
