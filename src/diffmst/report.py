"""Tables and plots of style features and optimisation runs (matplotlib, Agg backend).

Feature dicts here are the plain-Python form of :func:`diffmst.features.to_python`:
``rms``, ``crest`` (dB), ``width``, ``imbalance`` (ratios) and ``bark`` (``[[24 mid],
[24 side]]`` in nepers; plotted in dB, 1 Np = 8.686 dB).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Mapping, Sequence

from .fileio import atomic_path

NP_TO_DB = 20 / math.log(10)
SCALARS = (("rms", "RMS", "dB"), ("crest", "crest factor", "dB"), ("width", "stereo width", ""),
           ("imbalance", "stereo imbalance", ""))
BAND_NAMES = ("sub", "bass", "low-mid", "mid", "high-mid", "presence", "air")


def band_centres() -> list[float]:
    from .features import BARK_EDGES_HZ

    return [math.sqrt(a * b) for a, b in zip(BARK_EDGES_HZ[:-1], BARK_EDGES_HZ[1:])]


def paper_band_centres() -> list[float]:
    """Peak frequencies (Hz) of the paper measure's 24 Bark filters."""
    import numpy as np

    from .evaluate.metrics import F_MAX, F_MIN, N_BANDS, _bark_to_hz, _hz_to_bark

    return _bark_to_hz(np.linspace(_hz_to_bark(F_MIN), _hz_to_bark(F_MAX), N_BANDS + 2))[1:-1].tolist()


def _band_summary(bark: Sequence[float], centres: Sequence[float]) -> dict[str, float]:
    """Mean level (dB) of a Bark spectrum in a few broad regions (by band centre), for tables."""
    regions = {"<100 Hz": (0, 100), "100-500": (100, 510), "0.5-2k": (510, 2000), "2-6k": (2000, 6400),
               "6k+": (6400, 30000)}
    out = {}
    for name, (lo, hi) in regions.items():
        if not any(lo <= c < hi for c in centres):
            continue  # no band of this measure is centred there
        vals = [v for v, c in zip(bark, centres) if lo <= c < hi and v > -11]
        out[name] = NP_TO_DB * sum(vals) / len(vals) if vals else float("nan")  # nan: silent
    return out


def _scalars(f: Mapping, key: str) -> list[tuple[str, float]]:
    """A feature's values with a suffix each: one for a scalar, ``L`` and ``R`` for the
    paper measure's per-channel RMS and crest."""
    v = f[key]
    return list(zip(("L", "R"), v)) if isinstance(v, (list, tuple)) else [("", v)]


def feature_rows(features: Mapping[str, Mapping], centres: Sequence[float] | None = None) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)`` of a feature table, one column per signal label; ``centres``:
    the Bark bands' frequencies (default: :mod:`diffmst.features`' bands)."""
    centres = centres or band_centres()
    labels = list(features)
    header = ["feature"] + labels
    rows = []
    for key, name, unit in SCALARS:
        fmt = "{:+.2f}" if key in ("rms", "imbalance") else "{:.2f}" if key == "crest" else "{:.3f}"
        for i, (suffix, _) in enumerate(_scalars(features[labels[0]], key)):
            rows.append([f"{name}{' ' + suffix if suffix else ''}{' (' + unit + ')' if unit else ''}"]
                        + [fmt.format(_scalars(features[lab], key)[i][1]) for lab in labels])
    for part, idx in (("mid", 0), ("side", 1)):
        summaries = [_band_summary(features[lab]["bark"][idx], centres) for lab in labels]
        for region in summaries[0]:
            rows.append([f"Bark {part} {region} (dB)"]
                        + [f"{s[region]:+.1f}" if math.isfinite(s[region]) else "silent" for s in summaries])
    return header, rows


def print_feature_table(features: Mapping[str, Mapping], title: str = "", extra: Sequence[Sequence[str]] = (),
                        centres: Sequence[float] | None = None) -> None:
    """Print :func:`feature_rows` (plus ``extra`` rows) with rich to stdout."""
    from rich.console import Console
    from rich.table import Table

    header, rows = feature_rows(features, centres)
    table = Table(title=title or None)
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i == 0 else "right")
    for r in list(rows) + [list(e) for e in extra]:
        table.add_row(*r)
    Console().print(table)


def check_plot_output(path: str | os.PathLike, overwrite: bool) -> Path:
    """A plot's output path, checked before any work: a ``.png`` file name that may be written."""
    from .audio import check_output
    from .errors import DiffmstError

    path = check_output(path, overwrite)
    if path.suffix.lower() != ".png":
        raise DiffmstError(f"{path}: plots are written as PNG; name the file .png")
    return path


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    return path


def _colours(labels: Sequence[str], reference: str | None) -> list[str]:
    """One colour per signal: black for the reference (in every plot), others in turn."""
    others = iter(["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"])
    return ["black" if lab == reference else next(others) for lab in labels]


def _feature_axes(fig, gs, features: Mapping[str, Mapping], centres: Sequence[float] | None = None,
                  reference: str | None = None) -> None:
    import numpy as np

    centres = centres or band_centres()
    colours = _colours(list(features), reference)
    for col, (idx, name) in enumerate(((0, "mid"), (1, "side"))):
        ax = fig.add_subplot(gs[0, col])
        for c, (label, f) in zip(colours, features.items()):
            vals = np.array(f["bark"][idx], dtype=float) * NP_TO_DB
            vals[vals < -11.4 * NP_TO_DB] = np.nan  # empty bands (above Nyquist)
            ax.semilogx(centres, vals, marker=".", color=c, label=label, lw=2 if c == "black" else 1.2)
        ax.set_title(f"Bark spectrum, {name}")
        ax.set_xlabel("Hz")
        ax.set_ylabel("dB")
        ax.grid(True, which="both", alpha=0.3)
        if col == 0:
            ax.legend(fontsize=8)
    labels = list(features)
    for col, keys in enumerate((("rms", "crest"), ("width", "imbalance"))):
        ax = fig.add_subplot(gs[1, col])
        width = 0.8 / max(1, len(labels))
        units = {k: u for k, _, u in SCALARS}
        names = {k: n for k, n, _ in SCALARS} | {"crest": "crest"}  # short: four bars share the axis
        ticks = [f"{names[k]} {sfx}".strip() + (f" ({units[k]})" if units[k] else "")
                 for k in keys for sfx, _ in _scalars(features[labels[0]], k)]
        for i, (c, label) in enumerate(zip(colours, labels)):
            vals = [v for k in keys for _, v in _scalars(features[label], k)]
            ax.bar(np.arange(len(ticks)) + (i - (len(labels) - 1) / 2) * width, vals, width, color=c, label=label,
                   alpha=0.85)
        ax.set_xticks(range(len(ticks)))
        ax.set_xticklabels(ticks)
        ax.legend(fontsize=8)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_title("dynamics" if col == 0 else "stereo")
        ax.grid(True, axis="y", alpha=0.3)


def plot_features(features: Mapping[str, Mapping], path: str | os.PathLike, title: str = "",
                  centres: Sequence[float] | None = None, reference: str | None = None) -> Path:
    """Bark spectra (mid, side) overlaid, dynamics and stereo numbers side by side; the
    signal labelled ``reference`` is drawn in black."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(11, 7.5))
    gs = fig.add_gridspec(2, 2, height_ratios=[1.4, 1])
    _feature_axes(fig, gs, features, centres, reference)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = _save(fig, path)
    plt.close(fig)
    return out


def plot_optimize_report(report: Mapping, path: str | os.PathLike) -> Path:
    """Plot an optimisation report (:meth:`diffmst.pipeline.result.MixResult.report`):
    features of reference, equal-loudness mix and result, and the loss per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    feats = report["features"]
    named = {"reference": feats["reference"], "equal loudness": feats["equal_loudness"],
             "optimised": feats["optimized"]}
    fig = plt.figure(figsize=(12, 10))
    gs = fig.add_gridspec(3, 2, height_ratios=[1.3, 1, 1])
    _feature_axes(fig, gs, named, paper_band_centres(), reference="reference")
    ax = fig.add_subplot(gs[2, :])
    hist = report.get("history") or []
    if hist:
        steps = [h["step"] for h in hist]
        ax.semilogy(steps, [max(h["af"], 1e-9) for h in hist], color="black", lw=2, label="AF loss")
        for key in ("rms", "crest", "width", "imbalance", "bark"):
            ax.semilogy(steps, [max(h[key], 1e-9) for h in hist], lw=1, label=key)
        base = report["af_loss"]["equal_loudness"]["total"]
        ax.axhline(base, color="tab:orange", ls="--", lw=1, label="equal loudness")
        ax.legend(fontsize=8, ncol=4)
    ax.set_xlabel("step")
    ax.set_ylabel("weighted loss")
    ax.set_title("AF loss per step")
    ax.grid(True, which="both", alpha=0.3)
    song = report.get("af_song") or report["af_loss"]
    el, op = song["equal_loudness"]["total"], song.get("optimized", report["af_loss"]["optimized"])["total"]
    fig.suptitle(f"reference (black): {report.get('reference', '')}\nAF (paper, whole song) {el:.4f} "
                 f"(equal loudness) -> {op:.4f} (optimised)")
    fig.tight_layout()
    out = _save(fig, path)
    plt.close(fig)
    return out


# The units of `analyze --json`: the same as the table's (the features themselves keep Bark
# levels in nepers, the log magnitude the losses use).
JSON_UNITS = {"rms": "dB", "crest": "dB", "width": "ratio", "imbalance": "ratio", "bark": "dB"}


def json_features(feats: Mapping[str, Mapping]) -> dict:
    """Feature dicts with Bark levels converted from nepers to dB, as the table shows them."""
    return {label: {**f, "bark": [[round(v * NP_TO_DB, 4) for v in part] for part in f["bark"]]}
            for label, f in feats.items()}


def reference_label(feats: Mapping) -> str | None:
    """With two files, the second is the reference."""
    labels = list(feats)
    return labels[1] if len(labels) == 2 else None


def plot_title(feats: Mapping, what: str) -> str:
    labels = list(feats)
    if len(labels) == 2:
        return f"{what}: {labels[0]} vs the reference {labels[1]} (black)"
    return f"{what}: {labels[0]}"
