"""Mixing methods against real finished songs, on the paper's AF measure.

Run from the repository root::

    apt-get install planetblupi-music-ogg colobot-common-sounds pushover-data   # the references
    pip install -e .[bench]                         # matchering (and dasp-pytorch), benchmark-only
    python benchmarks/real_refs.py                  # 12 songs x equal, matchering, ours (~15 min, idle 2 cores)
    python benchmarks/real_refs.py --songs 2 --methods equal,matchering    # smoke run (about a minute)
    python benchmarks/real_refs.py --songs 1 --methods ours                # ours alone (~1 min a song)
    python benchmarks/real_refs.py --songs 1 --methods ours --ours-steps 5 # wiring check of ours
    python benchmarks/real_refs.py --methods equal,dasp --dasp-steps 50 --json /tmp/real_refs.json
    python benchmarks/real_refs.py --pick 0,6 --methods ours,dasp --dasp-steps 20    # two pairs only

References: 12 real stereo songs (OGG, 44.1 kHz) from three Debian packages, all GPL-3+
(see ``/usr/share/doc/<package>/copyright``): ``pushover-data`` (music by Roberto Lorenz),
``colobot-common-sounds`` (EPSITEC SA & TerranovaTeam) and ``planetblupi-music-ogg``
(EPSITEC SA / Mathieu Schroeter); see :data:`REFERENCES`. A missing one is skipped with a
note (with its song).

Songs: the multitrack corpus of ``diffmst data generate --songs 12 --seconds 30 40 --stems
6 10 --seed 7 -o data/bench-songs`` (this script runs that command when ``--songs-dir``
holds fewer finished songs than asked for; it keeps the songs already there). Song ``i``
(sorted by folder name) is mixed in the style of reference ``i``.

Methods (columns; seconds are wall time per song, from the stems on disk):

* ``equal``: :func:`diffmst.equal_loudness_mix` (every source at the same loudness,
  centred, flat; -16 LUFS, peaks at most -1 dBFS): the baseline.
* ``matchering``: matchering 2.0.6 (``matchering.process``, default config except
  ``max_length``, raised to fit long references) on the equal-loudness mix with the
  reference as its reference, both passed as temporary float WAV files, the result read
  back from a 24-bit WAV (its limited, normalised output). Its seconds include the
  equal-loudness mix. A song it fails on is reported with the error and no numbers.
* ``ours``: :func:`diffmst.optimize` with its defaults (the command line's; ``--ours-steps``
  overrides the step count, for smoke runs only); its ``timings`` go to the JSON rows.
* ``network``: :func:`diffmst.mix` with ``method="network", refine=0``: the network alone
  (``--weights``, default the shipped model), finished like ``ours``.
* ``network+refine``: :func:`diffmst.mix` with its defaults (the network, then
  ``NETWORK_REFINE`` optimisation steps; ``--refine`` to change them).
* ``dasp`` (only with ``--dasp-steps N`` > 0; slow): plain Adam (``--dasp-lr``, no
  schedule, no prior, best-so-far kept) on the paper's dasp-pytorch console
  (``dasp_console`` of ``benchmarks/console_speed.py``) over the **whole** song at its own
  rate, from the equal-loudness settings, in normalised parameter units (clamped to
  [0, 1] after each step), against the paper's distance
  (:func:`diffmst.evaluate.metrics.paper_features` / ``paper_distance``) between the whole
  mix (DC removed, -16 LUFS) and the whole reference. The master limiter's parameters are
  unused (dasp's console has no limiter). The mix is then brought to the reference's
  loudness with one gain (peaks are left as they come). Memory-hungry: about 6 GB for 5
  tracks x 30 s, about 20 s a step on 2 cores.

Every result is scored by :func:`diffmst.evaluate.paper_af` (whole songs, DC removed, each
at -16 LUFS; weighted terms rms, crest, width, imbalance, bark, and their sum), and its
integrated loudness (LUFS, :func:`diffmst.loudness.loudness_np`) and 4x true peak (dBTP,
:func:`diffmst.console.limiter.true_peak_db`) are measured against the reference's. Prints
per-song progress, a markdown table per song and method, and a summary per method: mean of
each term and of the total, median total, and on how many songs the method is below equal
loudness, within 0.5 LU of the reference's loudness and at or below -1 dBTP (0.01 dB
tolerance); for ``ours`` also how often it is below matchering.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(REPO, "src")
sys.path.insert(0, SRC)  # runnable without installing the package (diffmst is imported where used)


@dataclass(frozen=True)
class Reference:
    name: str
    path: str
    package: str
    credit: str


_PUSHOVER = ("pushover-data", "Roberto Lorenz")
_COLOBOT = ("colobot-common-sounds", "EPSITEC SA & TerranovaTeam")
_BLUPI = ("planetblupi-music-ogg", "EPSITEC SA / Mathieu Schroeter")

#: the 12 references, in pairing order (song i <-> reference i); licence GPL-3+ for all
REFERENCES: tuple[Reference, ...] = (
    *(Reference(f"pushover/{n}", f"/usr/share/pushover/themes/{n}.ogg", *_PUSHOVER)
      for n in ("aztec", "electro", "greek", "japanese", "toxcity")),
    *(Reference(f"colobot/{n}", f"/usr/share/games/colobot/music/{n}.ogg", *_COLOBOT)
      for n in ("Constructive", "Hv2", "Proton", "Quite", "music003", "music007")),
    Reference("planetblupi/music004", "/usr/share/planetblupi/music/music004.ogg", *_BLUPI),
)

#: the corpus command (song i depends only on the seed and i, so a rerun extends a folder)
GENERATE_ARGS = ["data", "generate", "--songs", "12", "--seconds", "30", "40", "--stems", "6", "10", "--seed", "7"]
DEFAULT_SONGS_DIR = os.path.join(REPO, "data", "bench-songs")

METHODS = ("equal", "matchering", "ours", "network", "network+refine", "dasp")
TERMS = ("rms", "crest", "width", "imbalance", "bark")
LOUDNESS_TOL_LU = 0.5
PEAK_LIMIT_DBTP = -1.0
PEAK_TOL_DB = 0.01


@dataclass
class Row:
    """One method on one song (``af`` is None when the method failed: see ``error``)."""

    song: str
    reference: str
    method: str
    af: dict[str, float] | None = None
    lufs: float | None = None
    ref_lufs: float | None = None
    true_peak_dbtp: float | None = None
    ref_true_peak_dbtp: float | None = None
    seconds: float | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.af is not None

    @property
    def loudness_ok(self) -> bool:
        return self.ok and self.lufs is not None and abs(self.lufs - self.ref_lufs) <= LOUDNESS_TOL_LU

    @property
    def peak_ok(self) -> bool:
        return self.ok and self.true_peak_dbtp is not None and self.true_peak_dbtp <= PEAK_LIMIT_DBTP + PEAK_TOL_DB


# ----------------------------------------------------------------------------- inputs


def song_dirs(folder: Path) -> list[Path]:
    """Finished songs of a corpus folder (sub-folders with ``meta.json``), sorted by name."""
    if not folder.is_dir():
        return []
    return sorted(d for d in folder.iterdir() if (d / "meta.json").is_file())


def ensure_songs(folder: Path, wanted: int) -> list[Path]:
    """The corpus' songs, generating the fixed corpus first if fewer than ``wanted`` exist."""
    have = song_dirs(folder)
    if len(have) < wanted:
        cmd = [sys.executable, "-m", "diffmst.cli", *GENERATE_ARGS, "-o", str(folder)]
        print(f"{folder}: {len(have)} finished song(s), {wanted} wanted; running: "
              + " ".join(shlex.quote(a) for a in cmd), flush=True)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p))
        subprocess.run(cmd, check=True, env=env)
        have = song_dirs(folder)
    return have


def song_rate(song: Path) -> int:
    return int(json.loads((song / "meta.json").read_text())["sample_rate"])


# ----------------------------------------------------------------------------- methods
# Each returns (mix (2, samples), sample rate, extra info for the JSON rows).

MixResult = tuple[np.ndarray, int, dict]


def run_equal(song: Path) -> MixResult:
    from diffmst import equal_loudness_mix

    mix, _settings = equal_loudness_mix(song)
    return mix, song_rate(song), {}


def run_matchering(target: np.ndarray, sr: int, ref: np.ndarray, ref_sr: int, tmp: Path) -> MixResult:
    """matchering on ``target`` (the equal-loudness mix) with ``ref`` as its reference."""
    import matchering as mg

    warnings: list[str] = []
    mg.log(warning_handler=warnings.append)  # its warnings go to the JSON rows
    t_path, r_path, out_path = tmp / "target.wav", tmp / "reference.wav", tmp / "result.wav"
    sf.write(t_path, target.T, sr, subtype="FLOAT")
    sf.write(r_path, ref.T, ref_sr, subtype="FLOAT")
    longest = max(target.shape[1] / sr, ref.shape[1] / ref_sr)
    config = mg.Config(max_length=max(mg.Config().max_length, math.ceil(longest) + 60))
    mg.process(target=str(t_path), reference=str(r_path), results=[mg.pcm24(str(out_path))], config=config)
    mix, out_sr = sf.read(out_path, dtype="float32", always_2d=True)
    return np.ascontiguousarray(mix.T), int(out_sr), {"warnings": warnings} if warnings else {}


def run_ours(song: Path, ref_path: str, steps: int | None = None) -> MixResult:
    """:func:`diffmst.optimize` with its defaults (``steps`` only for smoke runs)."""
    from diffmst import optimize

    def notify(msg: str) -> None:
        print(f"    ours: {msg}", flush=True)

    def progress(step: int, total: int, af: float) -> None:
        if step % 50 == 0 or step == total:
            print(f"    ours: step {step}/{total}, AF (windows) {af:.4f}", flush=True)

    kwargs = {} if steps is None else {"steps": steps}
    res = optimize(song, ref_path, notify=notify, progress=progress, **kwargs)
    extra = {"timings": {k: round(v, 3) for k, v in res.timings.items()}, "target": res.target,
             "af_windows": res.af}
    return res.mix, res.sample_rate, extra


def run_network(song: Path, ref_path: str, refine: int | None, weights: str | None) -> MixResult:
    """:func:`diffmst.mix` from the network's settings, refined ``refine`` steps."""
    from diffmst import mix

    res = mix(song, ref_path, method="network", refine=refine, model=weights)
    extra = {"timings": {k: round(v, 3) for k, v in res.timings.items()}, "target": res.target,
             "af_windows": res.af, "refine": len(res.history)}
    return res.mix, res.sample_rate, extra


def _below_nyquist(p, index: dict, sr: float):
    """EQ frequencies clamped to 0.49 of the rate (dasp's filters need them below Nyquist)."""
    from diffmst.console.params import EQ_BANDS

    cols = [index[f"eq.{key}.freq_hz"] for key, *_ in EQ_BANDS]
    p = p.clone()
    p[..., cols] = p[..., cols].clamp(max=0.49 * sr)
    return p


def run_dasp(song: Path, ref: np.ndarray, ref_sr: int, steps: int, lr: float) -> MixResult:
    """Plain Adam on the dasp-pytorch console over the whole song (see the module docstring)."""
    # console_speed is importable: benchmarks/ is on sys.path when this runs as a script
    import torch
    from console_speed import dasp_console

    from diffmst.audio import load_tracks
    from diffmst.console import MASTER_PARAMS, TRACK_PARAMS, denormalize, normalize
    from diffmst.console.params import MASTER_INDEX, TRACK_INDEX
    from diffmst.evaluate.metrics import (
        PAPER_LUFS,
        paper_distance,
        paper_features,
        song_features,
    )
    from diffmst.loudness import loudness_normalize, loudness_np
    from diffmst.pipeline.baseline import equal_loudness_settings

    tracks = load_tracks([song])
    sr = tracks.sample_rate
    start = equal_loudness_settings(tracks)
    x = torch.from_numpy(tracks.audio)[None, :, None]  # (1, tracks, 1, samples)
    ref_feats = {k: v.float() for k, v in song_features(ref, ref_sr, sr).items()}
    u_t = normalize(start.track_params.double(), TRACK_PARAMS).clamp(0, 1).float()[None].requires_grad_(True)
    u_m = normalize(start.master_params.double(), MASTER_PARAMS).clamp(0, 1).float()[None].requires_grad_(True)
    opt = torch.optim.Adam([u_t, u_m], lr=lr)

    def mix_of(ut: torch.Tensor, um: torch.Tensor) -> torch.Tensor:
        tp = _below_nyquist(denormalize(ut, TRACK_PARAMS), TRACK_INDEX, sr)
        mp = _below_nyquist(denormalize(um, MASTER_PARAMS), MASTER_INDEX, sr)
        return dasp_console(x, tp, mp, sr)

    def af_of(mix: torch.Tensor) -> torch.Tensor:
        mix = mix - mix.mean(-1, keepdim=True)
        mix, _ = loudness_normalize(mix, sr, PAPER_LUFS)
        return paper_distance(paper_features(mix, sr), ref_feats)[0]

    history: list[float] = []
    best = (math.inf, u_t.detach().clone(), u_m.detach().clone())
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = af_of(mix_of(u_t, u_m))
        if not torch.isfinite(loss):
            break
        loss.backward()
        history.append(round(float(loss.detach()), 6))
        if history[-1] < best[0]:
            best = (history[-1], u_t.detach().clone(), u_m.detach().clone())
        opt.step()
        with torch.no_grad():
            u_t.clamp_(0, 1)
            u_m.clamp_(0, 1)
    with torch.no_grad():  # the last update is not measured yet
        mix = mix_of(u_t, u_m)
        last = float(af_of(mix))
        if not last < best[0]:
            mix = mix_of(best[1], best[2])
        best_af = min(last, best[0])
    took = time.perf_counter() - t0
    out = mix[0].numpy().astype(np.float32)
    gain_db = loudness_np(ref, ref_sr) - loudness_np(out, sr)
    if math.isfinite(gain_db):
        out = out * np.float32(10 ** (gain_db / 20))
    return out, sr, {"steps": len(history), "lr": lr, "best_af_in_loop": round(best_af, 6),
                     "optimize_s": round(took, 3), "history": history}


# ----------------------------------------------------------------------------- measuring


def score(row: Row, mix: np.ndarray, sr: int, ref: np.ndarray, ref_sr: int) -> None:
    from diffmst.console.limiter import true_peak_db
    from diffmst.evaluate import paper_af
    from diffmst.loudness import loudness_np

    if not np.isfinite(mix).all():
        row.error = "mix has NaN or infinite samples"
        return
    row.af = paper_af(mix, ref, sr, ref_sr)
    lufs = loudness_np(mix, sr)
    row.lufs = round(lufs, 2) if math.isfinite(lufs) else None
    tp = true_peak_db(mix)
    row.true_peak_dbtp = round(tp, 2) if math.isfinite(tp) else None


def run_method(row: Row, fn: Callable[[], MixResult], ref: np.ndarray, ref_sr: int,
               extra_seconds: float = 0.0) -> MixResult | None:
    """Runs ``fn`` (timed), scores its mix into ``row``; an exception is recorded in ``row``."""
    t0 = time.perf_counter()
    try:
        mix, sr, extra = fn()
    except Exception as e:  # noqa: BLE001  (a failing method is a result, not the end of the run)
        row.error = f"{type(e).__name__}: {e}".strip()
        row.extra["traceback"] = traceback.format_exc(limit=6)
        return None
    row.seconds = round(time.perf_counter() - t0 + extra_seconds, 2)
    row.extra.update(extra)
    score(row, mix, sr, ref, ref_sr)
    return mix, sr, extra


def _report(r: Row) -> None:
    if r.ok:
        print(f"  {r.method}: AF {r.af['total']:.4f}, {_f(r.lufs, '.1f')} LUFS, "
              f"{_f(r.true_peak_dbtp, '.2f')} dBTP, {r.seconds:.1f} s", flush=True)
    else:
        print(f"  {r.method}: FAILED: {r.error}", flush=True)


def run_pair(song: Path, ref_info: Reference, methods: list[str], args: argparse.Namespace) -> list[Row]:
    """All ``methods`` on one song with one reference; a row per method."""
    from diffmst.audio import read_audio
    from diffmst.console.limiter import true_peak_db
    from diffmst.loudness import loudness_np

    ref, ref_sr = read_audio(ref_info.path)
    ref_lufs, ref_tp = round(loudness_np(ref, ref_sr), 2), round(true_peak_db(ref), 2)
    print(f"song {song.name} <- {ref_info.name} ({ref.shape[1] / ref_sr:.0f} s, {ref_lufs:.1f} LUFS, "
          f"{ref_tp:.1f} dBTP)", flush=True)
    rows: list[Row] = []

    def new_row(method: str) -> Row:
        return Row(song.name, ref_info.name, method, ref_lufs=ref_lufs, ref_true_peak_dbtp=ref_tp)

    def add(r: Row) -> None:
        rows.append(r)
        _report(r)

    equal, eq_row = None, new_row("equal")
    if "equal" in methods or "matchering" in methods:
        equal = run_method(eq_row, lambda: run_equal(song), ref, ref_sr)
        if "equal" in methods:
            add(eq_row)
        elif equal is None:
            print(f"  equal-loudness mix (for matchering) FAILED: {eq_row.error}", flush=True)
    if "matchering" in methods:
        r = new_row("matchering")
        if equal is None:
            r.error = "no equal-loudness mix to process"
        else:
            eq_mix, eq_sr, _ = equal
            with tempfile.TemporaryDirectory(prefix="real_refs_") as tmp:
                run_method(r, lambda: run_matchering(eq_mix, eq_sr, ref, ref_sr, Path(tmp)), ref, ref_sr,
                           extra_seconds=eq_row.seconds or 0.0)
        add(r)
    if "ours" in methods:
        r = new_row("ours")
        run_method(r, lambda: run_ours(song, ref_info.path, args.ours_steps), ref, ref_sr)
        add(r)
    if "network" in methods:
        r = new_row("network")
        run_method(r, lambda: run_network(song, ref_info.path, 0, args.weights), ref, ref_sr)
        add(r)
    if "network+refine" in methods:
        r = new_row("network+refine")
        run_method(r, lambda: run_network(song, ref_info.path, args.refine, args.weights), ref, ref_sr)
        add(r)
    if "dasp" in methods:
        r = new_row("dasp")
        run_method(r, lambda: run_dasp(song, ref, ref_sr, args.dasp_steps, args.dasp_lr), ref, ref_sr)
        add(r)
    return rows


# ----------------------------------------------------------------------------- tables


def _f(v: float | None, fmt: str) -> str:
    return "" if v is None else format(v, fmt)


def print_song_table(rows: list[Row]) -> None:
    print("\n| song | reference | method | " + " | ".join(TERMS)
          + " | AF total | LUFS | ref LUFS | dBTP | ref dBTP | s |")
    print("|---|---|---|" + "---:|" * len(TERMS) + "---:|---:|---:|---:|---:|---:|")
    last = None
    for r in rows:
        head = f"| {r.song} | {r.reference} |" if r.song != last else "| | |"
        last = r.song
        if r.ok:
            terms = " | ".join(f"{r.af[k]:.4f}" for k in TERMS)
            print(f"{head} {r.method} | {terms} | **{r.af['total']:.4f}** | {_f(r.lufs, '.1f')} | "
                  f"{_f(r.ref_lufs, '.1f')} | {_f(r.true_peak_dbtp, '.2f')} | {_f(r.ref_true_peak_dbtp, '.2f')} | "
                  f"{_f(r.seconds, '.1f')} |")
        else:
            short = (r.error or "").splitlines()[0][:80].replace("|", "/")
            print(f"{head} {r.method} | failed: {short} |" + " |" * (len(TERMS) + 1)
                  + f" {_f(r.ref_lufs, '.1f')} | | {_f(r.ref_true_peak_dbtp, '.2f')} | |")


def _by_song(rows: list[Row], method: str) -> dict[str, Row]:
    return {r.song: r for r in rows if r.method == method and r.ok}


def _beats(rows: list[Row], method: str, other: str) -> tuple[int, int]:
    """(songs where ``method``'s AF total is below ``other``'s, songs where both have one)."""
    a, b = _by_song(rows, method), _by_song(rows, other)
    both = [s for s in a if s in b]
    return sum(a[s].af["total"] < b[s].af["total"] for s in both), len(both)


def print_summary(rows: list[Row], methods: list[str]) -> None:
    print(f"\nSummary (means over the songs each method finished; 'below equal': AF total below the "
          f"equal-loudness mix's; loudness within {LOUDNESS_TOL_LU} LU of the reference's; true peak at "
          f"or below {PEAK_LIMIT_DBTP:g} dBTP)")
    print("| method | songs | " + " | ".join(TERMS) + " | mean AF | median AF | below equal | "
          f"within {LOUDNESS_TOL_LU} LU | <= {PEAK_LIMIT_DBTP:g} dBTP | both | failed | mean s |")
    print("|---|---:|" + "---:|" * len(TERMS) + "---:|---:|---:|---:|---:|---:|---:|---:|")
    for m in methods:
        done = [r for r in rows if r.method == m and r.ok]
        failed = sum(r.method == m and not r.ok for r in rows)
        if not done:
            print(f"| {m} | 0 |" + " |" * (len(TERMS) + 6) + f" {failed} | |")
            continue
        n = len(done)
        terms = " | ".join(f"{statistics.fmean(r.af[k] for r in done):.4f}" for k in TERMS)
        totals = [r.af["total"] for r in done]
        below = "" if m == "equal" or "equal" not in methods else "{}/{}".format(*_beats(rows, m, "equal"))
        loud = sum(r.loudness_ok for r in done)
        peak = sum(r.peak_ok for r in done)
        both = sum(r.loudness_ok and r.peak_ok for r in done)
        secs = statistics.fmean(r.seconds for r in done)
        print(f"| {m} | {n} | {terms} | **{statistics.fmean(totals):.4f}** | {statistics.median(totals):.4f} | "
              f"{below} | {loud}/{n} | {peak}/{n} | {both}/{n} | {failed} | {secs:.1f} |")
    for mine in ("ours", "network", "network+refine"):
        if mine not in methods:
            continue
        ours = [r for r in rows if r.method == mine and r.ok]
        parts = []
        for other in ("equal", "matchering", "ours"):
            if other in methods and other != mine:
                won, n = _beats(rows, mine, other)
                parts.append(f"AF total below {other}'s on {won}/{n} songs")
        n = len(ours)
        parts.append(f"loudness within {LOUDNESS_TOL_LU} LU of the reference's on {sum(r.loudness_ok for r in ours)}/{n}")
        parts.append(f"true peak at or below {PEAK_LIMIT_DBTP:g} dBTP on {sum(r.peak_ok for r in ours)}/{n}")
        print(f"\n{mine}: " + "; ".join(parts))


# ----------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--songs", type=int, default=len(REFERENCES), help="number of (song, reference) pairs (max 12)")
    ap.add_argument("--methods", default="equal,matchering,ours",
                    help=f"comma-separated, of {','.join(METHODS)} (default: equal,matchering,ours)")
    ap.add_argument("--pick", default="", metavar="I,J", help="only these pairs (0-based indices among --songs)")
    ap.add_argument("--threads", type=int, default=2, help="torch and numba threads")
    ap.add_argument("--songs-dir", default=DEFAULT_SONGS_DIR, help="corpus folder (default: data/bench-songs)")
    ap.add_argument("--json", default="", metavar="PATH", help="write all rows (and the run's details) as JSON")
    ap.add_argument("--ours-steps", type=int, default=None,
                    help="Adam steps of ours (default: diffmst.optimize's; fewer only for smoke runs)")
    ap.add_argument("--reuse", default="", metavar="JSON",
                    help="also tabulate the rows of methods not run now from an earlier --json file (runs are "
                         "deterministic: e.g. ours, which takes most of the time)")
    ap.add_argument("--weights", default=None, help="network weights (default: the shipped model)")
    ap.add_argument("--refine", type=int, default=None, help="refinement steps of network+refine "
                    "(default: diffmst.mix's)")
    ap.add_argument("--dasp-steps", type=int, default=0, help="Adam steps of the dasp method (0: dasp skipped)")
    ap.add_argument("--dasp-lr", type=float, default=0.05, help="Adam learning rate of the dasp method")
    args = ap.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        ap.error(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    if "dasp" in methods and args.dasp_steps <= 0:
        print("dasp skipped: give --dasp-steps N (> 0) to run it", flush=True)
        methods.remove("dasp")
    if not 1 <= args.songs <= len(REFERENCES):
        ap.error(f"--songs must be 1..{len(REFERENCES)}")

    import numba
    import torch

    torch.set_num_threads(args.threads)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    versions = {"python": platform.python_version(), "torch": torch.__version__, "numba": numba.__version__}
    if "matchering" in methods:
        import matchering

        versions["matchering"] = matchering.__version__
    print("command:", " ".join(shlex.quote(a) for a in [os.path.basename(sys.executable)] + sys.argv))
    print(f"{os.cpu_count()} logical CPUs, threads {args.threads}; "
          + ", ".join(f"{k} {v}" for k, v in versions.items()), flush=True)

    songs = ensure_songs(Path(args.songs_dir), args.songs)
    if len(songs) < args.songs:
        print(f"note: only {len(songs)} song(s) in {args.songs_dir}", flush=True)
    rows: list[Row] = []
    picked = {int(i) for i in args.pick.split(",") if i.strip()} if args.pick else None
    for i, (song, ref_info) in enumerate(zip(songs, REFERENCES[: args.songs])):
        if picked is not None and i not in picked:
            continue
        if os.path.isfile(ref_info.path):
            rows += run_pair(song, ref_info, methods, args)
        else:
            print(f"note: {ref_info.path} is missing (package {ref_info.package}); song {song.name} skipped",
                  flush=True)

    if args.reuse:
        earlier = json.loads(Path(args.reuse).read_text())
        pairs = {(r.song, r.reference) for r in rows}
        old = [Row(**r) for r in earlier["rows"] if r["method"] not in methods and (r["song"], r["reference"]) in pairs]
        methods += [m for m in earlier["methods"] if m not in methods and any(r.method == m for r in old)]
        order = {m: i for i, m in enumerate(methods)}
        rows = sorted(rows + old, key=lambda r: (r.song, order[r.method]))
        print(f"\nreused from {args.reuse}: {len(old)} rows ({', '.join(sorted({r.method for r in old}))})")
    print_song_table(rows)
    print_summary(rows, methods)
    failed = [r for r in rows if not r.ok]
    for r in failed:
        print(f"\nfailed: {r.method} on {r.song} ({r.reference}): {r.error}")
    if args.json:
        out = {"command": sys.argv, "versions": versions, "threads": args.threads, "methods": methods,
               "songs_dir": str(args.songs_dir), "generate": GENERATE_ARGS,
               "references": [asdict(ref) for ref in REFERENCES], "rows": [asdict(r) for r in rows]}
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
        print(f"\nrows written to {args.json}")


if __name__ == "__main__":
    main()
