"""What a multitrack corpus covers: counts, durations, sources, instruments, tempi,
stem loudness and feature distributions, and one summary plot.

Works on any "one folder per song" corpus; ``meta.json`` (written by the generator) adds
source, tempo and instrument names, otherwise the file names stand in for instruments.
Per stem: LUFS (BS.1770), peak, RMS, crest factor, spectral centroid, stereo width.
Per song: the same style features of the plain sum of its stems (mono stems centred),
plus its Bark spectrum, with :mod:`diffmst.features` when present (numpy otherwise).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np

from ..audio import AUDIO_EXTENSIONS, read_audio
from ..errors import DiffmstError
from ..fileio import atomic_path

MAX_ANALYSIS_S = 120.0  # features of at most this much of each stem (the middle)
SUM_ANALYSIS_S = 30.0   # style features of the middle 30 s of the sum of stems


def song_folders(corpus: str | Path) -> list[Path]:
    root = Path(corpus)
    if root.exists() and not root.is_dir():
        raise DiffmstError(f"{root}: is a file; expected a corpus folder")
    if not root.is_dir():
        raise DiffmstError(f"{root}: no such folder")
    songs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                   and any(f.suffix.lower() in AUDIO_EXTENSIONS for f in p.iterdir()))
    if not songs:
        raise DiffmstError(f"{root}: no song folders with audio files found (expected {root}/<song>/<stem>.flac)")
    return songs


def _lufs(x: np.ndarray, sr: int) -> float:
    try:
        from ..loudness import loudness_np
    except ImportError:  # pragma: no cover - older trees
        import pyloudnorm

        return float(pyloudnorm.Meter(sr).integrated_loudness(x.T.astype(np.float64)))
    return loudness_np(x, sr)


def _stem_features(x: np.ndarray, sr: int) -> dict:
    """Numpy features of ``x (channels, samples)``."""
    x = x.astype(np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    ms = float((x ** 2).mean())
    peak = float(np.abs(x).max())
    mono = x.mean(axis=0)
    n = min(len(mono), 1 << 15)
    hop = n // 2
    frames = np.lib.stride_tricks.sliding_window_view(mono, n)[::hop] if len(mono) >= n else mono[None]
    spec = (np.abs(np.fft.rfft(frames * np.hanning(frames.shape[1]), axis=1)) ** 2).mean(axis=0)
    f = np.fft.rfftfreq(frames.shape[1], 1 / sr)
    keep = f >= 20
    centroid = float((f[keep] * spec[keep]).sum() / (spec[keep].sum() + 1e-30))
    width = float(((x[0] - x[1]) ** 2).mean() / (((x[0] + x[1]) ** 2).mean() + 1e-30)) if x.shape[0] == 2 else 0.0
    return {"rms_db": 10 * math.log10(ms + 1e-20), "peak_db": 20 * math.log10(peak + 1e-20),
            "crest_db": 20 * math.log10(peak + 1e-20) - 10 * math.log10(ms + 1e-20),
            "centroid_hz": centroid, "width": width}


def _middle(x: np.ndarray, sr: int) -> np.ndarray:
    n = int(MAX_ANALYSIS_S * sr)
    if x.shape[1] <= n:
        return x
    a = (x.shape[1] - n) // 2
    return x[:, a:a + n]


def _song_features(mix: np.ndarray, sr: int) -> dict:
    """Style features of a stereo sum: diffmst.features if available, else numpy."""
    try:
        import torch

        from ..features import style_features, to_python
    except ImportError:
        out = _stem_features(mix, sr)
        return {"rms_db": out["rms_db"], "crest_db": out["crest_db"], "width": out["width"], "bark": None}
    with torch.no_grad():
        feats = to_python(style_features(torch.from_numpy(mix.astype(np.float32))[None], sr))
    return {"rms_db": feats["rms"], "crest_db": feats["crest"], "width": feats["width"],
            "bark": [float(v) for v in np.asarray(feats["bark"])[0]]}  # mid Bark spectrum (Np)


def analyse_song(folder: str | Path) -> dict:
    """Stats of one song folder (``meta.json`` optional)."""
    folder = Path(folder)
    meta = {}
    if (folder / "meta.json").exists():
        try:
            meta = json.loads((folder / "meta.json").read_text())
        except ValueError:
            raise DiffmstError(f"{folder / 'meta.json'}: not valid JSON") from None
    by_file = {s.get("file"): s for s in meta.get("stems", [])}
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in AUDIO_EXTENSIONS and not f.name.startswith("."))
    stems, mix, sr0 = [], None, None
    for f in files:
        x, sr = read_audio(f)
        info = by_file.get(f.name, {})
        y = _middle(x, sr)
        feats = _stem_features(y, sr)
        feats["lufs"] = _lufs(y, sr)
        stems.append({"name": f.stem, "instrument": info.get("instrument", f.stem.rstrip("0123456789._- ") or f.stem),
                      "family": info.get("family", "unknown"), "channels": x.shape[0],
                      "duration_s": x.shape[1] / sr, "sample_rate": sr, **feats})
        st = np.repeat(y, 2, axis=0) * (0.5 ** 0.5) if y.shape[0] == 1 else y
        if mix is None:
            mix, sr0 = st.astype(np.float64), sr
        elif sr == sr0:
            n = max(mix.shape[1], st.shape[1])
            mix = np.pad(mix, ((0, 0), (0, n - mix.shape[1]))) + np.pad(st, ((0, 0), (0, n - st.shape[1])))
    song = {"song": folder.name, "source": meta.get("source", "unknown"), "tempo_bpm": meta.get("tempo_bpm"),
            "duration_s": max(s["duration_s"] for s in stems), "stems": stems}
    if mix is not None:
        n = int(SUM_ANALYSIS_S * sr0)
        a = max(0, (mix.shape[1] - n) // 2)
        song["sum"] = _song_features(mix[:, a:a + n], sr0)
        song["sum"]["lufs"] = _lufs(mix, sr0)
    return song


def _pct(values, qs=(0, 10, 50, 90, 100)) -> dict:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], float)
    if not len(v):
        return {}
    return {f"p{q}": round(float(np.percentile(v, q)), 2) for q in qs}


def corpus_stats(corpus: str | Path, max_songs: int = 0, jobs: int = 1) -> dict:
    """``{"songs": [per-song stats], "summary": {...}}`` for a corpus folder."""
    folders = song_folders(corpus)
    if max_songs:
        folders = folders[:max_songs]
    if jobs > 1 and len(folders) > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(min(jobs, len(folders))) as pool:
            songs = pool.map(analyse_song, folders)
    else:
        songs = [analyse_song(f) for f in folders]
    stems = [s for song in songs for s in song["stems"]]
    summary = {
        "corpus": str(corpus),
        "songs": len(songs),
        "stems": len(stems),
        "hours": round(sum(s["duration_s"] for s in songs) / 3600, 3),
        "stem_hours": round(sum(s["duration_s"] for s in stems) / 3600, 3),
        "sources": dict(Counter(s["source"] for s in songs).most_common()),
        "sample_rates": dict(Counter(str(s["sample_rate"]) for s in stems).most_common()),
        "stereo_stems": sum(s["channels"] == 2 for s in stems),
        "stems_per_song": _pct([len(s["stems"]) for s in songs]),
        "duration_s": _pct([s["duration_s"] for s in songs]),
        "tempo_bpm": _pct([s["tempo_bpm"] for s in songs]),
        "families": dict(Counter(s["family"] for s in stems).most_common()),
        "instruments": dict(Counter(s["instrument"] for s in stems).most_common()),
        "stem_lufs": _pct([s["lufs"] for s in stems]),
        "stem_peak_db": _pct([s["peak_db"] for s in stems]),
        "stem_crest_db": _pct([s["crest_db"] for s in stems]),
        "stem_centroid_hz": _pct([s["centroid_hz"] for s in stems]),
        "stereo_stem_width": _pct([s["width"] for s in stems if s["channels"] == 2]),
        "sum_lufs": _pct([s["sum"]["lufs"] for s in songs if "sum" in s]),
        "sum_crest_db": _pct([s["sum"]["crest_db"] for s in songs if "sum" in s]),
        "sum_width": _pct([s["sum"]["width"] for s in songs if "sum" in s]),
    }
    return {"songs": songs, "summary": summary}


def format_stats(stats: dict) -> str:
    s = stats["summary"]

    def rng(d: dict, unit: str = "") -> str:
        if not d:
            return "-"
        return f"{d['p0']:g} .. {d['p100']:g}{unit} (median {d['p50']:g}, 10-90 % {d['p10']:g} .. {d['p90']:g})"

    top = ", ".join(f"{k} {v}" for k, v in list(s["instruments"].items())[:15])
    lines = [
        f"corpus          {s['corpus']}",
        f"songs           {s['songs']}  ({s['hours']:.2f} h of songs, {s['stem_hours']:.2f} h of stems)",
        f"stems           {s['stems']}  ({s['stereo_stems']} stereo); per song {rng(s['stems_per_song'])}",
        "sources         " + ", ".join(f"{k} {v}" for k, v in s["sources"].items()),
        f"duration        {rng(s['duration_s'], ' s')}",
        f"tempo           {rng(s['tempo_bpm'], ' bpm')}",
        "sample rates    " + ", ".join(f"{k} Hz: {v}" for k, v in s["sample_rates"].items()),
        "families        " + ", ".join(f"{k} {v}" for k, v in s["families"].items()),
        f"instruments     {top}" + (" ..." if len(s["instruments"]) > 15 else ""),
        f"stem loudness   {rng(s['stem_lufs'], ' LUFS')}",
        f"stem peak       {rng(s['stem_peak_db'], ' dBFS')}",
        f"stem crest      {rng(s['stem_crest_db'], ' dB')}",
        f"stem centroid   {rng(s['stem_centroid_hz'], ' Hz')}",
        f"stereo width    {rng(s['stereo_stem_width'])} (stereo stems)",
        f"sum of stems    loudness {rng(s['sum_lufs'], ' LUFS')}",
        f"                crest {rng(s['sum_crest_db'], ' dB')}; width {rng(s['sum_width'])}",
    ]
    return "\n".join(lines)


def plot_stats(stats: dict, path: str | Path, title: str = "") -> Path:
    """A 3x3 figure of the corpus's distributions, written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    songs = stats["songs"]
    stems = [s for song in songs for s in song["stems"]]
    s = stats["summary"]
    fig, ax = plt.subplots(3, 3, figsize=(13, 10))
    ax = ax.ravel()
    src = s["sources"]
    ax[0].bar(list(src), list(src.values()), color="tab:blue")
    ax[0].set_title("songs per source")
    ax[1].hist([x["duration_s"] for x in songs], bins=20, color="tab:blue")
    ax[1].set_title("song duration (s)")
    ax[2].hist([len(x["stems"]) for x in songs], bins=np.arange(0.5, max(len(x["stems"]) for x in songs) + 1.5),
               color="tab:blue")
    ax[2].set_title("stems per song")
    kinds = Counter(x["instrument"] if x["family"] == "drums" else x["family"] for x in stems)
    fam = kinds.most_common(22)[::-1]
    ax[3].barh([k for k, _ in fam], [v for _, v in fam], color="tab:green")
    ax[3].set_title("stems per instrument family (drums by piece)")
    ax[3].tick_params(axis="y", labelsize=7)
    tempi = [x["tempo_bpm"] for x in songs if x["tempo_bpm"]]
    if tempi:
        ax[4].hist(tempi, bins=20, color="tab:blue")
    ax[4].set_title("tempo (bpm)")
    lufs = [x["lufs"] for x in stems if np.isfinite(x["lufs"])]
    ax[5].hist(lufs, bins=30, color="tab:orange")
    ax[5].set_title("stem loudness (LUFS)")
    ax[6].hist(np.log10([max(20.0, x["centroid_hz"]) for x in stems]), bins=30, color="tab:orange")
    ticks = [100, 300, 1000, 3000, 10000]
    ax[6].set_xticks(np.log10(ticks), [f"{t:g}" for t in ticks])
    ax[6].set_title("stem spectral centroid (Hz)")
    ax[7].hist([x["crest_db"] for x in stems], bins=30, color="tab:orange", alpha=0.7, label="stems")
    ax[7].hist([x["sum"]["crest_db"] for x in songs if "sum" in x], bins=30, color="tab:purple", alpha=0.7,
               label="sum of stems")
    ax[7].set_title("crest factor (dB)")
    ax[7].legend(fontsize=7)
    barks = np.array([x["sum"]["bark"] for x in songs if x.get("sum", {}).get("bark")])
    if len(barks):
        db = barks * 20 / math.log(10)  # nepers -> dB
        db = db - np.median(db, axis=1, keepdims=True)
        try:
            from ..features import BARK_EDGES_HZ
            centres = np.sqrt(np.array(BARK_EDGES_HZ[:-1]) * np.array(BARK_EDGES_HZ[1:]))
        except ImportError:  # pragma: no cover
            centres = np.arange(db.shape[1])
        ax[8].fill_between(centres, np.percentile(db, 10, 0), np.percentile(db, 90, 0), alpha=0.3,
                           color="tab:purple", label="10-90 %")
        ax[8].plot(centres, np.median(db, 0), color="tab:purple", label="median")
        ax[8].set_xscale("log")
        ax[8].set_title("Bark spectrum of the sum of stems (dB, rel.)")
        ax[8].legend(fontsize=7)
    else:
        ax[8].hist([x["width"] for x in stems if x["channels"] == 2], bins=30, color="tab:orange")
        ax[8].set_title("stereo width (stereo stems)")
    fig.suptitle(title or f"{s['songs']} songs, {s['stems']} stems, {s['hours']:.2f} h  ({s['corpus']})")
    fig.tight_layout()
    path = Path(path)
    if not path.parent.exists():
        raise DiffmstError(f"{path.parent}: output folder does not exist")
    try:
        with atomic_path(path, suffix=".png") as tmp:  # mode from the umask, like any new file
            fig.savefig(tmp, dpi=70)
    finally:
        plt.close(fig)
    return path
