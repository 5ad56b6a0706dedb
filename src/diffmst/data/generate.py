"""Generate a multitrack corpus: ``DIR/<song>/<stem>.flac`` + ``DIR/<song>/meta.json``.

Each song comes from one music source (``procedural``, ``mma``, ``music21``), is rendered
per part to separate stems (fluidsynth + a GM soundfont when installed, the numpy synth
otherwise, and the numpy synth for some stems anyway so timbres differ), and each stem gets
its own recording character. Stems are written when complete and ``meta.json`` last, so a
song folder with ``meta.json`` is finished: a rerun skips it (resume).

Song ``i`` depends only on ``(seed, i)`` and the tools installed, never on ``jobs``.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import DiffmstError
from ..fileio import atomic_write_text
from . import fluid
from .character import apply_character
from .layout import DEFAULT_OUT, FORMAT, META, RENDERERS, SOURCES, VERSION
from .score import GM_FAMILIES, Part, Score, crop, humanise, unique_names
from .synth import render_numpy

SOURCE_WEIGHTS = {"procedural": 0.4, "mma": 0.35, "music21": 0.25}
STEREO_FAMILIES = {"piano", "keys", "organ", "strings", "synth_strings", "pad", "choir", "harp", "brass", "mallets"}
TAIL_S = 1.5

Progress = Callable[[int, int], None]


def _quiet(*_a) -> None:
    pass


@dataclass
class Config:
    """What ``diffmst data generate`` does; every field has the CLI's default."""

    songs: int = 200
    out: Path = Path(DEFAULT_OUT)
    seed: int = 0
    jobs: int = 1
    seconds: tuple[float, float] = (30.0, 90.0)
    stems: tuple[int, int] = (4, 16)
    sample_rate: int = 44100
    sources: tuple[str, ...] = ()          # empty: every installed source
    renderer: str = "auto"
    numpy_share: float = 0.15              # with fluidsynth, share of stems the numpy synth renders
    bit_depth: str = "24"
    first: int = 0                          # index of the first song (song names are global)


# ----------------------------------------------------------------------------- tools


def source_available(name: str) -> str | None:
    """None when source ``name`` can run here, else why not (with the fix)."""
    if name == "procedural":
        return None
    if name == "mma":
        if shutil.which("mma") is None:
            return "the `mma` program is not installed (Debian/Ubuntu: apt-get install mma)"
        try:
            import mido  # noqa: F401
        except ImportError:
            return "the Python package `mido` is not installed (pip install 'diffmst[data]')"
        return None
    if name == "music21":
        try:
            import music21  # noqa: F401
        except ImportError:
            return "the Python package `music21` is not installed (pip install 'diffmst[data]')"
        return None
    return f"unknown source {name!r} (choose from {', '.join(SOURCES)})"


def resolve(cfg: Config, notify: Callable[[str], None] = _quiet) -> tuple[list[str], str]:
    """Sources and renderer this run uses; raises :class:`DiffmstError` for impossible requests."""
    if cfg.songs < 0:
        raise DiffmstError(f"--songs must be >= 0, got {cfg.songs}")
    if cfg.jobs < 1:
        raise DiffmstError(f"--jobs must be >= 1, got {cfg.jobs}")
    lo, hi = cfg.seconds
    if not (1.0 <= lo <= hi <= 1800):
        raise DiffmstError(f"--seconds must be MIN MAX with 1 <= MIN <= MAX <= 1800, got {lo:g} {hi:g}")
    smin, smax = cfg.stems
    if not (1 <= smin <= smax <= 64):
        raise DiffmstError(f"--stems must be MIN MAX with 1 <= MIN <= MAX <= 64, got {smin} {smax}")
    if cfg.sample_rate < 8000 or cfg.sample_rate > 192000:
        raise DiffmstError(f"--sample-rate must be 8000..192000 Hz, got {cfg.sample_rate}")
    if cfg.renderer not in RENDERERS:
        raise DiffmstError(f"--renderer must be one of {', '.join(RENDERERS)}, got {cfg.renderer!r}")
    if cfg.sources:
        for s in cfg.sources:
            why = source_available(s)
            if why:
                raise DiffmstError(f"source {s}: {why}")
        sources = list(cfg.sources)
    else:
        sources = []
        for s in SOURCES:
            why = source_available(s)
            if why:
                notify(f"source {s} skipped: {why}")
            else:
                sources.append(s)
    renderer = cfg.renderer
    if renderer == "fluidsynth" and not fluid.available():
        raise DiffmstError("renderer fluidsynth: libfluidsynth or a General MIDI soundfont is missing "
                           "(Debian/Ubuntu: apt-get install fluidsynth fluid-soundfont-gm)")
    if renderer == "auto":
        renderer = "fluidsynth" if fluid.available() else "numpy"
        if renderer == "numpy":
            notify("fluidsynth or its soundfont is not installed: rendering with the numpy synth "
                   "(apt-get install fluidsynth fluid-soundfont-gm for sampled instruments)")
    return sources, renderer


# ----------------------------------------------------------------------------- one song


def song_name(index: int) -> str:
    return f"song{index:05d}"


def make_score(source: str, rng: np.random.Generator, seconds: float, max_stems: int) -> Score:
    if source == "procedural":
        from .procedural import procedural_score

        return procedural_score(rng, seconds, max_stems)
    if source == "mma":
        from .mma import mma_score

        return mma_score(rng, seconds, max_stems)
    if source == "music21":
        from .music21src import music21_score

        return music21_score(rng, seconds, max_stems)
    raise ValueError(source)


def band_fraction(audio: np.ndarray, sr: int, band: tuple[float, float]) -> float:
    """Share of a stem's energy (mono sum, above 20 Hz) inside ``band`` Hz."""
    from scipy.signal import welch

    x = np.asarray(audio, np.float64).reshape(-1, audio.shape[-1]).mean(axis=0)
    f, spec = welch(x, sr, nperseg=min(8192, len(x)))
    total = spec[f >= 20].sum() + 1e-30
    return float(spec[(f >= band[0]) & (f <= band[1])].sum() / total)


def stem_problem(audio: np.ndarray, sr: int, band: tuple[float, float] | None = None) -> str | None:
    """Why a rendered stem is unusable (silent, clipped, not finite, energy outside its
    instrument's band), or None."""
    if not np.isfinite(audio).all():
        return "not finite"
    peak = float(np.abs(audio).max())
    if peak >= 1.0:
        return "clipped"
    rms = float(np.sqrt((audio.astype(np.float64) ** 2).mean()))
    if peak < 1e-4 or rms < 1e-5:
        return "silent"
    if band is not None and band_fraction(audio, sr, band) < 0.5:
        return f"energy outside its band {band[0]:.0f}..{band[1]:.0f} Hz"
    return None


def _pick_program(part: Part, rng: np.random.Generator, kit: int) -> int:
    if part.drum:
        return kit if rng.random() < 0.85 else int(rng.choice(GM_FAMILIES["drums"]))
    if part.program is not None and rng.random() < 0.5:
        return part.program
    progs = GM_FAMILIES.get(part.family) or GM_FAMILIES["piano"]
    return int(rng.choice(progs))


def _render_song(cfg: Config, index: int, renderer: str, sources: list[str]) -> tuple[list[dict], list[np.ndarray], dict]:
    sr = cfg.sample_rate
    ss = np.random.SeedSequence([cfg.seed, index])
    r_choice, r_score, r_render, r_char, r_retry = (np.random.default_rng(s) for s in ss.spawn(5))
    w = np.array([SOURCE_WEIGHTS.get(s, 0.3) for s in sources])
    source = str(r_choice.choice(sources, p=w / w.sum()))
    seconds = float(r_choice.uniform(*cfg.seconds))
    body = max(0.5, seconds - TAIL_S)
    smin, smax = cfg.stems
    notes: list[str] = []
    for attempt in range(4):
        src = source if attempt < 2 else "procedural"  # a source that keeps failing falls back
        rng_s = r_score if attempt == 0 else np.random.default_rng(r_retry.integers(2 ** 63))
        try:
            score = make_score(src, rng_s, body, smax)
        except DiffmstError:
            raise
        except Exception as e:  # a corpus file music21 cannot read, an mma failure ...
            notes.append(f"{src} failed ({type(e).__name__}: {e})")
            continue
        crop(score, body)
        score.parts = [p for p in score.parts if p.notes]
        if len(score.parts) > smax:
            keep = sorted(r_choice.choice(len(score.parts), smax, replace=False))
            score.parts = [score.parts[i] for i in keep]
        unique_names(score.parts)
        n = int(round(seconds * sr))
        stems, audios, dropped = [], [], []
        kit = int(r_render.choice(GM_FAMILIES["drums"]))  # one drum kit per song, mostly
        for part in score.parts:
            humanise(part, r_render, float(r_render.uniform(2, 12)), float(r_render.uniform(3, 10)))
            program = _pick_program(part, r_render, kit)
            stereo = part.stereo or (part.family in STEREO_FAMILIES and r_render.random() < 0.6) or \
                (part.name.startswith("cymbals") and r_render.random() < 0.5)
            part.stereo = stereo
            use_fluid = renderer == "fluidsynth" and r_render.random() >= cfg.numpy_share
            stem_rng = np.random.default_rng(r_render.integers(2 ** 63))
            if use_fluid:
                dry = fluid.render_fluid(part, program, n, sr)
                if not stereo:
                    dry = dry.mean(axis=0, keepdims=True)
            else:
                dry = render_numpy(part, n, sr, stem_rng)
            if float(np.abs(dry).max()) < 1e-6:
                dropped.append(f"{part.name}: silent")  # e.g. a preset without these keys
                continue
            audio, char = apply_character(dry, sr, stem_rng, stereo, clean=r_char.random() < 0.1)
            band = part.band_hz(sr)
            why = stem_problem(audio, sr, band)
            if why:
                dropped.append(f"{part.name}: {why} ({'fluidsynth' if use_fluid else 'numpy'})")
                continue
            stems.append({"name": part.name, "file": f"{part.name}.flac", "instrument": part.instrument,
                          "family": part.family, "channels": int(audio.shape[0]),
                          "program": None if not use_fluid else program, "drum": part.drum,
                          "renderer": "fluidsynth" if use_fluid else "numpy", "notes": len(part.notes),
                          "band_hz": [round(band[0], 1), round(band[1], 1)], "character": char})
            audios.append(audio)
        if len(stems) >= min(smin, max(1, len(score.parts))) and stems:
            meta = {"source": src, "title": score.title, "tempo_bpm": round(score.tempo_bpm, 2),
                    "licence": score.licence, "info": score.info}
            if notes:
                meta["notes"] = notes
            if dropped:
                meta["dropped"] = dropped
            return stems, audios, meta
    raise RuntimeError(f"{song_name(index)}: no usable stems after 4 attempts")


def _write_json(path: Path, obj: dict) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1) + "\n")


def make_song(cfg: Config, index: int, renderer: str, sources: list[str]) -> dict:
    """Generate and write song ``index``; returns its meta (skips a finished song)."""
    from .. import __version__
    from ..audio import write_audio

    folder = Path(cfg.out) / song_name(index)
    meta_path = folder / META
    if meta_path.exists():
        return json.loads(meta_path.read_text())
    t0, c0 = time.perf_counter(), time.process_time()
    stems, audios, info = _render_song(cfg, index, renderer, sources)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():  # leftovers of an interrupted run
        if old.is_file() and (old.suffix == ".flac" or old.name.endswith(".part")):
            old.unlink()
    meta = {"format": FORMAT, "version": VERSION, "song": folder.name, "source": info.pop("source"),
            "title": info.pop("title"), "tempo_bpm": info.pop("tempo_bpm"), "sample_rate": cfg.sample_rate,
            "duration_s": round(audios[0].shape[1] / cfg.sample_rate, 3), "samples": int(audios[0].shape[1]),
            "licence": info.pop("licence"),
            "instruments": sorted({s["instrument"] for s in stems}), "stems": stems, **info,
            "generator": {"diffmst": __version__, "seed": cfg.seed, "index": index, "renderer": renderer,
                          "soundfont": _soundfont_info() if renderer == "fluidsynth" else None,
                          "seconds": list(cfg.seconds), "stems": list(cfg.stems),
                          "sources": list(sources)}}
    for s, a in zip(stems, audios):
        write_audio(folder / s["file"], a, cfg.sample_rate, cfg.bit_depth, overwrite=True)
    # wall and CPU seconds of this song (CPU: this process only; both vary between runs)
    meta["generator"].update(wall_s=round(time.perf_counter() - t0, 2), cpu_s=round(time.process_time() - c0, 2))
    _write_json(meta_path, meta)
    return meta


def _soundfont_info() -> dict | None:
    sf2 = fluid.soundfont()
    if sf2 is None:
        return None
    return {"file": sf2.name, "licence": fluid.SOUNDFONT_LICENCE.get(sf2.name, "see the soundfont's documentation")}


def _worker(args: tuple) -> tuple[int, str | None]:
    cfg, index, renderer, sources = args
    try:
        make_song(cfg, index, renderer, sources)
        return index, None
    except DiffmstError as e:
        return index, str(e)
    except Exception as e:  # noqa: BLE001 - report and go on with the other songs
        return index, f"{type(e).__name__}: {e}"


def _check_existing(cfg: Config, indices: list[int]) -> list[int]:
    """Indices still to do; refuses a folder made with another seed, length or stem range,
    or sample rate."""
    todo = []
    for i in indices:
        meta_path = Path(cfg.out) / song_name(i) / META
        if not meta_path.exists():
            todo.append(i)
            continue
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            raise DiffmstError(f"{meta_path}: unreadable; delete the song folder to regenerate it") from None
        gen = meta.get("generator", {})
        # a corpus is one distribution: resuming with other options would mix two
        made = {"--seed": gen.get("seed"), "--seconds": gen.get("seconds"), "--stems": gen.get("stems"),
                "--sample-rate": meta.get("sample_rate")}
        asked = {"--seed": cfg.seed, "--seconds": [float(v) for v in cfg.seconds], "--stems": list(cfg.stems),
                 "--sample-rate": cfg.sample_rate}
        for opt, was in made.items():
            now = asked[opt]
            if was is not None and (was != now if opt != "--seconds" else [float(v) for v in was] != now):
                show = " ".join(str(v) for v in was) if isinstance(was, list) else was
                raise DiffmstError(f"{meta_path}: made with {opt} {show}, not "
                                   f"{' '.join(str(v) for v in now) if isinstance(now, list) else now} "
                                   "(use another output folder, or the same options to resume)")
    return todo


def generate(cfg: Config, progress: Progress = _quiet, notify: Callable[[str], None] = _quiet) -> dict:
    """Generate songs ``first .. first+songs-1`` into ``cfg.out``; returns a summary
    ``{"done", "skipped", "failed": {song: error}, "seconds", "sources", "renderer"}``."""
    sources, renderer = resolve(cfg, notify)
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise DiffmstError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    indices = list(range(cfg.first, cfg.first + cfg.songs))
    todo = _check_existing(cfg, indices)
    skipped = len(indices) - len(todo)
    if skipped:
        notify(f"{skipped} finished song(s) in {out} kept (resume)")
    t0 = time.perf_counter()
    failed: dict[str, str] = {}
    done = 0
    progress(skipped, len(indices))
    jobs = min(cfg.jobs, max(1, len(todo)))
    args = [(cfg, i, renderer, sources) for i in todo]
    if jobs == 1:
        results = map(_worker, args)
        pool = None
    else:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(jobs, maxtasksperchild=50)
        results = pool.imap_unordered(_worker, args)
    try:
        for index, err in results:
            done += 1
            if err:
                failed[song_name(index)] = err
                notify(f"{song_name(index)}: failed: {err}")
            progress(skipped + done, len(indices))
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    return {"done": done - len(failed), "skipped": skipped, "failed": failed,
            "seconds": round(time.perf_counter() - t0, 2), "sources": sources, "renderer": renderer}
