"""Multitrack corpora and folders of finished songs, read a segment at a time.

A :class:`MultitrackSource` lists songs, lists each song's stems (audio files) and reads
a segment of chosen stems at a chosen sample rate, seeking in the files so that whole
files are never loaded. One class per corpus layout:

=========================  ======================================================
:class:`GeneratedSource`   the project's synthetic corpus: ``DIR/<song>/<stem>.flac``
                           + ``DIR/<song>/meta.json`` (a song folder without
                           ``meta.json`` is unfinished and skipped)
:class:`FolderSource`      one folder per song holding its tracks as audio files
:class:`MedleyDBSource`    MedleyDB: ``<Song>/<Song>_RAW/*.wav`` (or ``_STEMS``) and
                           ``<Song>_METADATA.yaml``
:class:`MUSDBSource`       MUSDB18-HQ: ``{train,test}/<song>/{drums,bass,other,vocals}.wav``
:class:`CambridgeSource`   Cambridge-MT style downloads: one folder per song, the
                           tracks possibly inside a nested folder, named ``01_Kick.wav``
=========================  ======================================================

:func:`open_multitrack` picks the layout of a folder. A :class:`ReferenceSource` lists
the finished songs (mixes) in a folder and reads stereo segments of them.

Conventions (as in :mod:`diffmst.audio`): audio is numpy float32 ``(channels, samples)``
and a set of tracks ``(tracks, samples)`` of mono rows; a stereo stem ``name`` becomes
the two tracks ``name.L`` and ``name.R``. Times are in seconds, so stems at different
native rates read together; a segment reaching past the end of a file is zero-padded.
Sources hold only paths and header information, so they pickle cheaply into data-loader
workers.
"""

from __future__ import annotations

import json
import math
import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import soundfile as sf
import soxr

from ..audio import AUDIO_EXTENSIONS, channel_names
from ..errors import DiffmstError

#: file names (without extension, case-insensitive) that are a mix, not a track, in
#: folder layouts: ``mix``, ``mixture``, ``master``, ``reference``, ``*_mix``, ``*_MIX``.
MIX_NAME = re.compile(r"^(mix|mixture|master|reference|ref|.*[_ -]mix(down)?)$", re.IGNORECASE)

#: context read on each side of a segment before resampling, so that the filter sees
#: real signal rather than a cut (seconds)
RESAMPLE_MARGIN_S = 0.02


# ----------------------------------------------------------------------------- stems


@dataclass(frozen=True)
class Stem:
    """One audio file of a song: a mono or stereo stem, with its header information."""

    name: str
    path: Path
    channels: int
    sample_rate: int
    frames: int
    instrument: str = ""
    family: str = ""

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    @property
    def track_names(self) -> tuple[str, ...]:
        """The mono tracks this stem becomes: ``(name,)`` or ``(name.L, name.R)``."""
        return tuple(channel_names(self.name, self.channels))


def probe_stem(path: Path, name: str, instrument: str = "", family: str = "") -> Stem:
    """A :class:`Stem` from a file's header; :class:`DiffmstError` naming the file if it
    cannot be read, is empty, or has more than two channels."""
    try:
        info = sf.info(str(path))
    except FileNotFoundError:
        raise DiffmstError(f"{path}: no such file") from None
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise DiffmstError(f"{path}: cannot read audio ({e})") from None
    if info.frames <= 0:
        raise DiffmstError(f"{path}: file has no samples (zero length)")
    if info.channels > 2:
        raise DiffmstError(f"{path}: has {info.channels} channels; stems must be mono or stereo")
    return Stem(name, Path(path), int(info.channels), int(info.samplerate), int(info.frames), instrument, family)


def _align(sr_in: int, sr_out: int, seconds: float) -> int:
    """Input frames >= ``seconds`` that map to a whole number of output frames."""
    step = sr_in // math.gcd(sr_in, sr_out)
    return step * max(1, math.ceil(seconds * sr_in / step))


def read_stem(stem: Stem, start_s: float, duration_s: float, sample_rate: int | None = None) -> np.ndarray:
    """Read ``duration_s`` seconds of a stem from ``start_s`` at ``sample_rate``.

    Only the frames needed are read (soundfile seeks). Resampling (soxr, high quality)
    reads a little context either side and trims it, so a segment matches the same
    stretch of the whole file resampled. Parts before the start or past the end of the
    file are silence.

    Returns:
        float32 ``(stem.channels, round(duration_s * sample_rate))``.
    """
    sr_out = int(sample_rate or stem.sample_rate)
    n_out = int(round(duration_s * sr_out))
    sr_in = stem.sample_rate
    start = int(round(start_s * sr_in))
    if sr_out == sr_in:
        margin, n_in = 0, n_out
    else:
        margin = _align(sr_in, sr_out, RESAMPLE_MARGIN_S)
        n_in = int(math.ceil(n_out * sr_in / sr_out)) + 2 * margin
    a, b = start - margin, start - margin + n_in
    lo, hi = max(a, 0), min(b, stem.frames)
    chunk = np.zeros((n_in, stem.channels), dtype=np.float32)
    if hi > lo:
        try:
            data = sf.read(str(stem.path), start=lo, stop=hi, dtype="float32", always_2d=True)[0]
        except (sf.LibsndfileError, RuntimeError, ValueError) as e:
            raise DiffmstError(f"{stem.path}: cannot read audio ({e})") from None
        chunk[lo - a : lo - a + data.shape[0]] = data
    if sr_out != sr_in:
        chunk = soxr.resample(chunk, sr_in, sr_out, quality="HQ")
        skip = margin * sr_out // sr_in
        chunk = chunk[skip : skip + n_out]
    out = np.zeros((stem.channels, n_out), dtype=np.float32)
    m = min(n_out, chunk.shape[0])
    out[:, :m] = chunk[:m].T
    if not np.isfinite(out).all():
        raise DiffmstError(f"{stem.path}: contains NaN or infinite samples near {start_s:.2f} s")
    return out


# ----------------------------------------------------------------------------- songs


@dataclass(frozen=True)
class Song:
    """A song of a multitrack corpus: its name, folder and stems (in a fixed order)."""

    name: str
    path: Path
    stems: tuple[Stem, ...]
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def duration(self) -> float:
        """Length of the longest stem (seconds)."""
        return max(s.duration for s in self.stems)

    @property
    def sample_rate(self) -> int:
        """Highest native rate among the stems (the default rate of a read)."""
        return max(s.sample_rate for s in self.stems)

    @property
    def track_names(self) -> list[str]:
        return [t for s in self.stems for t in s.track_names]


@dataclass
class Segment:
    """Tracks read from a song: ``audio (tracks, samples)`` float32 mono rows, one per
    track name (a stereo stem gives two consecutive rows ``name.L``, ``name.R``)."""

    song: str
    track_names: list[str]
    audio: np.ndarray
    sample_rate: int
    start_s: float
    stems: list[Stem]


def _audio_files(folder: Path, recursive: bool = False) -> list[Path]:
    it = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        f for f in it
        if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS and not f.name.startswith(".")
        and not any(part.startswith(".") for part in f.relative_to(folder).parts)
    )


def _unique_names(names: Sequence[str], fallback: Sequence[str]) -> list[str]:
    """``names`` where unique, else the matching ``fallback`` (e.g. the full file name)."""
    return [n if names.count(n) == 1 else f for n, f in zip(names, fallback)]


def _check_root(root: str | os.PathLike) -> Path:
    root = Path(root)
    if not root.exists():
        raise DiffmstError(f"{root}: no such folder")
    if not root.is_dir():
        raise DiffmstError(f"{root}: not a folder")
    return root


class MultitrackSource(ABC):
    """A multitrack corpus on disk: songs, their stems, and segment reads.

    Subclasses implement :meth:`_scan` for one folder layout. The folder is scanned once
    (file headers only) when the source is made; a missing folder or one with no songs
    raises :class:`DiffmstError` naming the folder.
    """

    layout: str = "?"
    #: what a song looks like in this layout, for error messages
    expects: str = ""

    def __init__(self, root: str | os.PathLike):
        self.root = _check_root(root)
        songs = self._scan()
        if not songs:
            raise DiffmstError(f"{self.root}: no songs found for the {self.layout} layout (expected {self.expects})")
        self._songs: dict[str, Song] = {}
        for s in songs:
            name = s.name if s.name not in self._songs else str(s.path.relative_to(self.root))
            self._songs[name] = Song(name, s.path, s.stems, s.meta)

    @abstractmethod
    def _scan(self) -> list[Song]:
        """All songs of the corpus (songs with no stems left out)."""

    def __len__(self) -> int:
        return len(self._songs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r}, {len(self)} songs)"

    def songs(self) -> list[str]:
        """Song names, sorted."""
        return sorted(self._songs)

    def song(self, name: str) -> Song:
        try:
            return self._songs[name]
        except KeyError:
            raise DiffmstError(f"{self.root}: no song named {name!r}") from None

    def stems(self, song: str) -> list[Stem]:
        return list(self.song(song).stems)

    def tracks(self, song: str) -> list[str]:
        """Mono track names of a song (stereo stems as ``name.L``, ``name.R``)."""
        return self.song(song).track_names

    def duration(self, song: str) -> float:
        return self.song(song).duration

    def read(
        self,
        song: str,
        stems: Iterable[str | Stem] | None = None,
        start_s: float = 0.0,
        duration_s: float | None = None,
        sample_rate: int | None = None,
    ) -> Segment:
        """Read a segment of some stems of a song.

        Args:
            song: a name from :meth:`songs`.
            stems: stem names or :class:`Stem` objects, read in this order (default: all,
                in song order).
            start_s: start time in seconds.
            duration_s: seconds to read (default: to the end of the song).
            sample_rate: output rate (default: the song's highest native rate); stems at
                other rates are resampled with soxr.
        """
        s = self.song(song)
        by_name = {st.name: st for st in s.stems}
        chosen: list[Stem] = []
        for st in (s.stems if stems is None else stems):
            name = st.name if isinstance(st, Stem) else st
            if name not in by_name:
                raise DiffmstError(f"{s.path}: song {song!r} has no stem {name!r} "
                                   f"(stems: {', '.join(by_name)})")
            chosen.append(by_name[name])
        sr = int(sample_rate or s.sample_rate)
        if duration_s is None:
            duration_s = max(s.duration - start_s, 0.0)
        n = int(round(duration_s * sr))
        rows = [read_stem(st, start_s, duration_s, sr) for st in chosen]
        audio = np.concatenate(rows, axis=0) if rows else np.zeros((0, n), np.float32)
        names = [t for st in chosen for t in st.track_names]
        return Segment(song, names, audio, sr, float(start_s), chosen)


# ----------------------------------------------------------------------------- layouts


class GeneratedSource(MultitrackSource):
    """The project's synthetic corpus: ``DIR/<song>/meta.json`` lists the stems::

        {"song", "source", "tempo_bpm", "sample_rate", "duration_s", "licence",
         "stems": [{"name", "file", "instrument", "family", "channels"}, ...]}

    A song folder without ``meta.json`` is still being written and is skipped.
    """

    layout = "generated"
    expects = "DIR/<song>/meta.json with its stems"

    def _scan(self) -> list[Song]:
        songs = []
        for d in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            meta_path = d / "meta.json"
            if not meta_path.is_file():
                continue
            try:
                meta = json.loads(meta_path.read_text())
                entries = meta["stems"]
                stems = tuple(
                    probe_stem(d / e["file"], str(e["name"]), str(e.get("instrument", "")), str(e.get("family", "")))
                    for e in entries
                )
            except json.JSONDecodeError as e:
                raise DiffmstError(f"{meta_path}: invalid JSON at line {e.lineno}: {e.msg}") from None
            except (KeyError, TypeError) as e:
                raise DiffmstError(f"{meta_path}: malformed song metadata (missing {e})") from None
            if stems:
                songs.append(Song(d.name, d, stems, meta))
        return songs


class FolderSource(MultitrackSource):
    """One folder per song, each holding the song's tracks as audio files (not
    recursive). Files named like a mix (:data:`MIX_NAME`) are left out. A folder that
    holds audio files itself (no song folders) is one song."""

    layout = "folder-per-song"
    expects = "one folder per song with audio files in it"

    def __init__(self, root: str | os.PathLike, exclude: re.Pattern | None = MIX_NAME):
        self.exclude = exclude
        super().__init__(root)

    def _song(self, d: Path, files: list[Path]) -> Song | None:
        files = [f for f in files if not (self.exclude and self.exclude.match(f.stem))]
        if not files:
            return None
        names = _unique_names([f.stem for f in files], [f.name for f in files])
        return Song(d.name, d, tuple(probe_stem(f, n) for f, n in zip(files, names)))

    def _scan(self) -> list[Song]:
        own = _audio_files(self.root)
        if own:
            song = self._song(self.root, own)
            return [song] if song else []
        songs = []
        for d in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            song = self._song(d, _audio_files(d))
            if song:
                songs.append(song)
        return songs


_NUMBER_PREFIX = re.compile(r"^\d+[\s_.\-]*")


class CambridgeSource(FolderSource):
    """Cambridge-MT ("Mixing Secrets") style downloads: one folder per song whose audio
    files may sit in a nested folder (``Artist_Song/Artist_Song_Full/01_Kick.wav``).
    Stem names drop the leading track number (``01_Kick`` -> ``Kick``) where that keeps
    them unique; files named like a mix are left out."""

    layout = "Cambridge-MT"
    expects = "one folder per song, tracks like 01_Kick.wav possibly in a sub-folder"

    def _song(self, d: Path, files: list[Path]) -> Song | None:
        files = [f for f in files if not (self.exclude and self.exclude.match(f.stem))]
        if not files:
            return None
        short = [_NUMBER_PREFIX.sub("", f.stem) or f.stem for f in files]
        names = _unique_names(short, _unique_names([f.stem for f in files], [str(f.relative_to(d)) for f in files]))
        return Song(d.name, d, tuple(probe_stem(f, n) for f, n in zip(files, names)))

    def _scan(self) -> list[Song]:
        songs = []
        for d in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            song = self._song(d, _audio_files(d, recursive=True))
            if song:
                songs.append(song)
        return songs


class MUSDBSource(MultitrackSource):
    """MUSDB18-HQ: ``ROOT/{train,test}/<song>/{drums,bass,other,vocals}.wav`` (stereo,
    44.1 kHz; ``mixture.wav`` is the mix, read it with :meth:`ReferenceSource.musdb`).
    ``ROOT`` may also be one split folder."""

    layout = "MUSDB18-HQ"
    expects = "{train,test}/<song>/{drums,bass,other,vocals}.wav"
    STEMS = ("drums", "bass", "other", "vocals")

    def __init__(self, root: str | os.PathLike, subsets: Sequence[str] = ("train", "test")):
        self.subsets = tuple(subsets)
        super().__init__(root)

    def _song(self, d: Path) -> Song | None:
        stems = []
        for name in self.STEMS:
            f = next((d / f"{name}{ext}" for ext in (".wav", ".flac") if (d / f"{name}{ext}").is_file()), None)
            if f is not None:
                stems.append(probe_stem(f, name, name))
        return Song(d.name, d, tuple(stems), {"subset": d.parent.name}) if stems else None

    def _scan(self) -> list[Song]:
        splits = [self.root / s for s in self.subsets if (self.root / s).is_dir()] or [self.root]
        songs = []
        for split in splits:
            for d in sorted(p for p in split.iterdir() if p.is_dir() and not p.name.startswith(".")):
                song = self._song(d)
                if song:
                    songs.append(song)
        return songs


class MedleyDBSource(MultitrackSource):
    """MedleyDB: each song folder ``<Song>/`` holds ``<Song>_RAW/`` (raw tracks,
    ``<Song>_RAW_01_01.wav``), ``<Song>_STEMS/`` and ``<Song>_MIX.wav``; the metadata
    ``<Song>_METADATA.yaml`` sits in the song folder or in a ``Metadata`` folder beside
    or above ``Audio``. Song folders are found up to three levels below ``ROOT``.

    Args:
        use: ``"raw"`` (default, the recorded tracks) or ``"stems"`` (MedleyDB's
            pre-mixed stems).

    Stems are named ``<number>_<instrument>`` (``01_01_electric_bass``) when the metadata
    names the instrument, else by their number.
    """

    layout = "MedleyDB"
    expects = "<Song>/<Song>_RAW/*.wav with <Song>_METADATA.yaml"

    def __init__(self, root: str | os.PathLike, use: str = "raw"):
        if use not in ("raw", "stems"):
            raise DiffmstError(f"MedleyDB: use must be 'raw' or 'stems', got {use!r}")
        self.use = use
        super().__init__(root)

    def _metadata(self, song_dir: Path, name: str) -> dict:
        fname = f"{name}_METADATA.yaml"
        places = [song_dir, self.root, self.root / "Metadata"] + [p / "Metadata" for p in song_dir.parents][:4]
        for place in places:
            f = place / fname
            if f.is_file():
                try:
                    import yaml
                except ImportError:  # pragma: no cover - pyyaml is a dependency
                    raise DiffmstError(f"{f}: reading MedleyDB metadata needs pyyaml (pip install pyyaml)") from None
                try:
                    data = yaml.safe_load(f.read_text())
                except yaml.YAMLError as e:
                    raise DiffmstError(f"{f}: invalid YAML ({e})") from None
                return data if isinstance(data, dict) else {}
        return {}

    def _instruments(self, meta: dict) -> dict[str, str]:
        """file name -> instrument, from the metadata's stems (and their raw tracks)."""
        out: dict[str, str] = {}
        for stem in (meta.get("stems") or {}).values():
            if not isinstance(stem, dict):
                continue
            if self.use == "stems" and stem.get("filename"):
                out[str(stem["filename"])] = str(stem.get("instrument", ""))
            for raw in (stem.get("raw") or {}).values():
                if isinstance(raw, dict) and raw.get("filename"):
                    out[str(raw["filename"])] = str(raw.get("instrument", stem.get("instrument", "")))
        return out

    def _scan(self) -> list[Song]:
        suffix = "_RAW" if self.use == "raw" else "_STEMS"
        folders: list[Path] = []
        frontier = [self.root]
        for _ in range(4):
            nxt = []
            for d in frontier:
                for p in sorted(d.iterdir()):
                    if p.is_dir() and not p.name.startswith("."):
                        if p.name.endswith(suffix):
                            folders.append(p)
                        else:
                            nxt.append(p)
            frontier = nxt
        songs = []
        for folder in sorted(folders):
            name = folder.name[: -len(suffix)]
            meta = self._metadata(folder.parent, name)
            instruments = self._instruments(meta)
            files = _audio_files(folder)
            stems = []
            for f in files:
                infix = "_RAW_" if self.use == "raw" else "_STEM_"
                number = f.stem.split(infix, 1)[-1]
                inst = instruments.get(f.name, "")
                label = f"{number}_{re.sub(r'[^A-Za-z0-9]+', '_', inst).strip('_')}" if inst else number
                stems.append((f, label, inst))
            names = _unique_names([s[1] for s in stems], [s[0].stem for s in stems])
            st = tuple(probe_stem(f, n, inst) for (f, _, inst), n in zip(stems, names))
            if st:
                songs.append(Song(name, folder.parent, st, meta))
        return songs


LAYOUTS: dict[str, type[MultitrackSource]] = {
    "generated": GeneratedSource,
    "folder": FolderSource,
    "medleydb": MedleyDBSource,
    "musdb": MUSDBSource,
    "cambridge": CambridgeSource,
}


def detect_layout(root: str | os.PathLike) -> str:
    """Guess the layout of a corpus folder (a key of :data:`LAYOUTS`)."""
    root = _check_root(root)
    subdirs = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if any((d / "meta.json").is_file() for d in subdirs):
        return "generated"
    level = subdirs + [q for d in subdirs for q in d.iterdir() if q.is_dir()]
    if any(p.name.endswith("_RAW") for p in level) or any(
        q.is_dir() and q.name.endswith("_RAW") for p in level for q in p.iterdir() if p.is_dir()
    ):
        return "medleydb"
    splits = [d for d in subdirs if d.name in ("train", "test")] or [root]
    def musdb_like(d: Path) -> bool:
        return sum(any((d / f"{n}{e}").is_file() for e in (".wav", ".flac")) for n in MUSDBSource.STEMS) >= 3

    if any(musdb_like(s) for split in splits for s in split.iterdir() if s.is_dir()):
        return "musdb"
    if any(_audio_files(d) == [] and _audio_files(d, recursive=True) for d in subdirs):
        return "cambridge"
    return "folder"


def open_multitrack(root: str | os.PathLike, layout: str = "auto", **kwargs) -> MultitrackSource:
    """Open a multitrack corpus; ``layout`` is a key of :data:`LAYOUTS` or ``"auto"``."""
    if layout == "auto":
        layout = detect_layout(root)
    if layout not in LAYOUTS:
        raise DiffmstError(f"unknown corpus layout {layout!r} (known: {', '.join(LAYOUTS)}, auto)")
    return LAYOUTS[layout](root, **kwargs)


# ----------------------------------------------------------------------------- references


_GENERIC = {"mix", "mixture", "master", "reference", "ref"}


class ReferenceSource:
    """A folder of finished songs (mixes) for use as references.

    Every audio file below ``root`` (recursive) matching ``pattern`` is a song, named by
    its path relative to ``root`` without the extension; a file with a generic name
    (``mixture.wav``) is named by its folder. Reads are stereo: a mono file is
    duplicated to both channels.
    """

    def __init__(self, root: str | os.PathLike, pattern: str = "*"):
        self.root = _check_root(root)
        files = [f for f in _audio_files(self.root, recursive=True) if f.match(pattern)]
        if not files:
            raise DiffmstError(f"{self.root}: no audio files found (looked for {pattern} with extensions "
                               f"{', '.join(sorted(AUDIO_EXTENSIONS))})")
        self._songs: dict[str, Stem] = {}
        for f in files:
            rel = f.relative_to(self.root)
            base = rel.parent if f.stem.lower() in _GENERIC and rel.parent != Path(".") else rel.with_suffix("")
            name = base.as_posix()
            self._songs[name] = probe_stem(f, name)

    @classmethod
    def musdb(cls, root: str | os.PathLike) -> "ReferenceSource":
        """The ``mixture.wav`` files of MUSDB18-HQ, named by song folder."""
        return cls(root, "mixture.*")

    @classmethod
    def medleydb(cls, root: str | os.PathLike) -> "ReferenceSource":
        """The ``<Song>_MIX.wav`` files of MedleyDB."""
        return cls(root, "*_MIX.*")

    def __len__(self) -> int:
        return len(self._songs)

    def __repr__(self) -> str:
        return f"ReferenceSource({str(self.root)!r}, {len(self)} songs)"

    def songs(self) -> list[str]:
        return sorted(self._songs)

    def song_name(self, song: str) -> str:
        """The last part of a song's name (its file or folder name), to compare with
        the names of a multitrack corpus."""
        return song.rsplit("/", 1)[-1]

    def stem(self, song: str) -> Stem:
        try:
            return self._songs[song]
        except KeyError:
            raise DiffmstError(f"{self.root}: no song named {song!r}") from None

    def duration(self, song: str) -> float:
        return self.stem(song).duration

    def read(self, song: str, start_s: float = 0.0, duration_s: float | None = None,
             sample_rate: int | None = None) -> np.ndarray:
        """Stereo float32 ``(2, samples)`` segment of a song (see :func:`read_stem`)."""
        st = self.stem(song)
        if duration_s is None:
            duration_s = max(st.duration - start_s, 0.0)
        x = read_stem(st, start_s, duration_s, sample_rate)
        return np.repeat(x, 2, axis=0) if x.shape[0] == 1 else x
