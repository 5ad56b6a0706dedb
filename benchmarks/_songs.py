"""Example songs for the optimisation benchmarks (deterministic, numpy only).

``song(seed, seconds)`` gives 8 tracks from :func:`diffmst.examples.example_song`: its five
mono stems, the lead of another seed, and a stereo pad (``pad.L``/``pad.R``, a third
seed's lead, decorrelated by a short delay). (The example's own stereo ``keys`` stem is
left out: in this version it holds only a click per bar.)
``reference(seed, seconds)`` mixes a *different* song with random plausible console settings
(normalised values drawn from [0.2, 0.8]) and returns the stereo mix: a reference whose
style is known but whose content is not the tracks'.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "src"))

from diffmst.console import MASTER_PARAMS, TRACK_PARAMS, denormalize, render  # noqa: E402
from diffmst.examples import SAMPLE_RATE, example_song  # noqa: E402

SR = SAMPLE_RATE


def song(seed: int, seconds: float) -> tuple[list[str], np.ndarray]:
    """``(names, audio (8, samples))`` at 44.1 kHz."""
    stems = example_song(seconds, seed)
    names, rows = [], []
    for k, v in stems.items():
        if v.shape[0] == 1:
            names.append(k)
            rows.append(v[0])
    names.append("lead2")
    rows.append(example_song(seconds, seed + 1000)["lead"][0])
    pad = example_song(seconds, seed + 2000)["lead"][0]
    names += ["pad.L", "pad.R"]
    rows += [pad, 0.9 * np.roll(pad, 397)]
    return names, np.stack(rows).astype(np.float32)


def random_settings(n_tracks: int, seed: int, lo: float = 0.2, hi: float = 0.8):
    g = torch.Generator().manual_seed(seed)
    u_t = lo + (hi - lo) * torch.rand(n_tracks, len(TRACK_PARAMS), generator=g, dtype=torch.float64)
    u_m = lo + (hi - lo) * torch.rand(len(MASTER_PARAMS), generator=g, dtype=torch.float64)
    return denormalize(u_t, TRACK_PARAMS).float(), denormalize(u_m, MASTER_PARAMS).float()


def reference(seed: int, seconds: float) -> np.ndarray:
    """A mix ``(2, samples)`` of song ``seed + 500`` with random settings (seeded)."""
    names, audio = song(seed + 500, seconds)
    tp, mp = random_settings(len(names), seed)
    mix = render(torch.from_numpy(audio)[None, :, None], tp[None], mp[None], SR)[0].numpy()
    return (mix / max(1e-9, np.abs(mix).max()) * 0.9).astype(np.float32)
