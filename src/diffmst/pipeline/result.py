"""The result of mixing one song: settings, mix, and the report (``report.json`` and
``report.png``), written by :meth:`MixResult.save`."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..fileio import atomic_write_text

OUTPUT_FILES = {"mix": "mix.wav", "settings": "settings.json", "report": "report.json", "plot": "report.png"}


@dataclass
class MixResult:
    """What :func:`optimize` returns; :meth:`save` writes it as the CLI does."""

    settings: Any                 # diffmst.console.Settings, optimised
    baseline: Any                 # equal-loudness Settings
    mix: np.ndarray               # (2, samples) float32 at sample_rate
    sample_rate: int
    history: list[dict]           # per step: t (s since start), loss (AF + prior), af, prior, terms
    features: dict                # reference / equal_loudness / optimized -> feature dict (floats)
    af: dict                      # equal_loudness / optimized -> {"total", per-feature terms}, on the windows
    windows_s: list[float]        # window start times in the song
    timings: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    reference_label: str = "reference"
    song_af: dict = field(default_factory=dict)           # the same, the paper's measure on the whole songs
    reference_level: dict = field(default_factory=dict)   # lufs, true_peak_dbtp of the reference
    target: dict = field(default_factory=dict)            # lufs, ceiling_dbtp asked of the mix

    def report(self) -> dict:
        return {
            "format": "diffmst-optimize-report", "version": 2,
            "reference": self.reference_label,
            "reference_level": self.reference_level,
            "target": self.target,
            "options": self.options,
            "windows_s": [round(w, 3) for w in self.windows_s],
            "af_loss": self.af,
            "af_song": self.song_af,
            "features": self.features,
            "history": self.history,
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
            "output": {"sample_rate": self.sample_rate, "lufs": lufs_or_none(self.mix, self.sample_rate),
                       "peak_dbfs": peak_db_or_none(self.mix), "true_peak_dbtp": true_peak_or_none(self.mix)},
        }

    def save(self, outdir: str | os.PathLike, overwrite: bool = False, bit_depth: str = "24",
             plot: bool = True, report: dict | None = None) -> dict[str, Path]:
        """Write ``mix.wav``, ``settings.json``, ``report.json`` and ``report.png`` into
        ``outdir`` (created; existing files are kept unless ``overwrite``). ``report``:
        :meth:`report`'s result when the caller has it already (it measures the whole mix)."""
        from ..audio import check_output, write_audio

        out = Path(outdir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {key: out / name for key, name in OUTPUT_FILES.items() if plot or key != "plot"}
        for p in paths.values():
            check_output(p, overwrite)
        write_audio(paths["mix"], self.mix, self.sample_rate, bit_depth, overwrite)
        self.settings.save(paths["settings"], overwrite=overwrite)
        report = report or self.report()  # measures the whole mix (loudness, true peak): once
        atomic_write_text(paths["report"], json.dumps(report, indent=1) + "\n")
        if plot:
            from ..report import plot_optimize_report

            plot_optimize_report(report, paths["plot"])
        for key, name in OUTPUT_FILES.items():  # the folder describes this run only
            if key not in paths and overwrite:
                (out / name).unlink(missing_ok=True)
        return paths


def lufs_or_none(x: np.ndarray, sr: int) -> float:
    from ..loudness import loudness_np

    v = loudness_np(x, sr)
    return round(v, 2) if math.isfinite(v) else None


def peak_db_or_none(x: np.ndarray) -> float:
    p = float(np.abs(x).max()) if x.size else 0.0
    return round(20 * math.log10(p), 2) if p > 0 else None


def true_peak_or_none(x: np.ndarray) -> float | None:
    from ..console.limiter import true_peak_db

    v = true_peak_db(x) if x.size else float("-inf")
    return round(v, 2) if math.isfinite(v) else None


def terms_dict(total, terms) -> dict:
    d = {"total": float(total)}
    d.update({k: float(v) for k, v in terms.items()})
    return d


def song_af(mix: np.ndarray, sr: int, ref_feats: dict, ref_sr: int, weights: dict | None) -> dict:
    """The paper's AF distance of a whole mix to the reference's whole-song features."""
    from ..evaluate.metrics import paper_distance, song_features

    total, terms = paper_distance(song_features(mix, sr, ref_sr), ref_feats, weights)
    return terms_dict(total, terms)
