"""Options of the song pipeline: the single source of defaults (the command line derives its
flags' defaults from them) and their checks."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import DiffmstError


TARGET_LUFS = -16.0
PEAK_DBFS = -1.0
ANALYSIS_SR = 44100  # full band: the paper's Bark bands reach 20 kHz
MIN_ANALYSIS_SR = 16000  # below this the console's EQ ranges and most Bark bands are out of reach
BARK_FLOOR = 10 ** (-30 / 20)  # the optimiser's Bark floor, re each band of the reference
PREROLL_S = 0.25      # console warm-up before each window (compressor state), not measured


@dataclass(frozen=True)
class Options:
    """Refinement settings (defaults: a 3-minute 8-track song in about a minute on 2 cores)."""

    steps: int = 100
    lr: float = 0.05
    analysis_sr: int = ANALYSIS_SR
    windows: int = 4
    window_s: float = 5.0
    prior: float = 0.5
    weights: dict | None = None
    loudness: str | float = "reference"   # output loudness: "reference" or LUFS
    peak_dbtp: float = PEAK_DBFS          # the output's true peak never passes this
    seed: int = 0
    device: str = "cpu"
    link_stereo: bool = True              # a stereo file's L/R share gain, EQ and compressor (own pans)


def check_options(o: Options) -> None:
    """Refuse options the optimisation cannot run with (the CLI checks its own earlier)."""
    def finite(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    checks = [
        (isinstance(o.steps, int) and o.steps >= 0, "steps", "a whole number >= 0"),
        (finite(o.lr) and o.lr > 0, "lr", "a number > 0"),
        (isinstance(o.analysis_sr, int) and o.analysis_sr >= MIN_ANALYSIS_SR, "analysis_sr",
         f"a whole number of Hz >= {MIN_ANALYSIS_SR}"),
        (isinstance(o.windows, int) and o.windows >= 1, "windows", "a whole number >= 1"),
        (finite(o.window_s) and o.window_s > 0, "window_s", "a number of seconds > 0"),
        (finite(o.prior) and o.prior >= 0, "prior", "a number >= 0"),
        (finite(o.peak_dbtp) and -20 <= o.peak_dbtp <= 0, "peak_dbtp", "a number in [-20, 0] dBTP"),
        (o.loudness == "reference" or (finite(o.loudness) and -70 <= o.loudness <= 0), "loudness",
         "'reference' or a number in [-70, 0] LUFS"),
        (isinstance(o.seed, int) and 0 <= o.seed < 2**32, "seed", "a whole number in [0, 2**32)"),
    ]
    for ok, name, what in checks:
        if not ok:
            raise DiffmstError(f"{name} must be {what}, got {getattr(o, name)!r}")
