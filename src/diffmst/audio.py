"""Audio in and out: find, read, check, resample (soxr), write atomically (soundfile).

Arrays here are numpy float32 ``(channels, samples)``; a set of tracks is
``(tracks, samples)`` mono rows (a stereo file becomes ``name.L`` and ``name.R``).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import soundfile as sf
import soxr

from .errors import DiffmstError

AUDIO_EXTENSIONS = {".wav", ".flac", ".aif", ".aiff", ".ogg", ".mp3", ".w64", ".caf"}
SUBTYPES = {"16": "PCM_16", "24": "PCM_24", "32f": "FLOAT"}

Notify = Callable[[str], None]


def _quiet(_msg: str) -> None:
    pass


def find_audio(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Audio files named by ``inputs``: files as given, folders listed (not recursive, sorted).

    Raises :class:`DiffmstError` for a missing path or when no audio file is found.
    """
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS
                           and not f.name.startswith("."))
            if not found:
                raise DiffmstError(f"{p}: no audio files found (looked for {', '.join(sorted(AUDIO_EXTENSIONS))})")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise DiffmstError(f"{p}: no such file or folder")
    if not files:
        raise DiffmstError("no audio files given")
    return files


def _check_channels(path: Path, channels: int, max_channels: int = 2) -> None:
    if channels > max_channels:
        raise DiffmstError(f"{path}: has {channels} channels; at most {max_channels} are supported "
                           "(split it into mono or stereo files)")


def channel_names(name: str, channels: int) -> list[str]:
    """The mono tracks a file becomes: ``[name]``, or ``[name.L, name.R]`` when stereo."""
    return [f"{name}.L", f"{name}.R"] if channels == 2 else [name]


def read_audio(path: str | os.PathLike, max_channels: int = 2) -> tuple[np.ndarray, int]:
    """Read a file as float32 ``(channels, samples)`` and its sample rate, checking it.

    Raises :class:`DiffmstError` naming the file for unreadable/corrupt files, zero
    length, more than ``max_channels`` channels and NaN/Inf samples.
    """
    path = Path(path)
    if not path.is_file():  # soundfile reports a missing file as a vague "System error"
        raise DiffmstError(f"{path}: no such file")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise DiffmstError(f"{path}: cannot read audio ({e})") from None
    if data.shape[0] == 0:
        raise DiffmstError(f"{path}: file has no samples (zero length)")
    _check_channels(path, data.shape[1], max_channels)
    if not np.isfinite(data).all():
        bad = int(np.argmax(~np.isfinite(data).all(axis=1)))
        raise DiffmstError(f"{path}: contains NaN or infinite samples (first at sample {bad})")
    return np.ascontiguousarray(data.T), int(sr)


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """``(channels, samples)`` -> resampled with soxr (high quality)."""
    if sr_in == sr_out:
        return x
    return np.ascontiguousarray(soxr.resample(x.T, sr_in, sr_out, quality="HQ").T.astype(np.float32))


@dataclass
class Tracks:
    """Mono tracks of one song: ``audio (tracks, samples)`` float32 at ``sample_rate``."""

    names: list[str]
    audio: np.ndarray
    sample_rate: int
    files: list[Path]

    @property
    def duration(self) -> float:
        return self.audio.shape[1] / self.sample_rate


def _track_names(files: Sequence[Path]) -> list[str]:
    stems = [f.stem for f in files]
    return [f.name if stems.count(f.stem) > 1 else f.stem for f in files]


def probe_track_names(inputs: Sequence[str | os.PathLike]) -> list[str]:
    """The track names :func:`load_tracks` would give, from the file headers only."""
    files = find_audio(inputs)
    names: list[str] = []
    for f, name in zip(files, _track_names(files)):
        try:
            channels = sf.info(str(f)).channels
        except (sf.LibsndfileError, RuntimeError) as e:
            raise DiffmstError(f"{f}: cannot read audio ({e})") from None
        _check_channels(f, channels)
        names += channel_names(name, channels)
    return names


def load_tracks(inputs: Sequence[str | os.PathLike], notify: Notify = _quiet) -> Tracks:
    """Load a song's tracks from folders/files.

    Stereo files become two mono tracks ``name.L`` and ``name.R``. Different sample rates
    are resampled to the highest, shorter tracks are zero-padded to the longest; both
    with a notice through ``notify``.
    """
    files = find_audio(inputs)
    loaded = [read_audio(f) for f in files]
    rates = {sr for _, sr in loaded}
    sr = max(rates)
    if len(rates) > 1:
        notify(f"tracks have different sample rates ({', '.join(str(r) for r in sorted(rates))} Hz); "
               f"resampling to {sr} Hz")
    loaded = [(resample(x, r, sr), sr) for x, r in loaded]
    n = max(x.shape[1] for x, _ in loaded)
    short = [f.name for f, (x, _) in zip(files, loaded) if x.shape[1] < n]
    if short:
        notify(f"{len(short)} track(s) shorter than the longest ({n / sr:.2f} s) are padded with silence: "
               + ", ".join(short[:5]) + (" ..." if len(short) > 5 else ""))
    names: list[str] = []
    rows: list[np.ndarray] = []
    for name, (x, _) in zip(_track_names(files), loaded):
        x = np.pad(x, ((0, 0), (0, n - x.shape[1])))
        names += channel_names(name, x.shape[0])
        rows += list(x)
    return Tracks(names, np.stack(rows).astype(np.float32), sr, files)


def check_output(path: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse to replace an existing output unless ``overwrite``; the folder must exist."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise DiffmstError(f"{path}: already exists (use --overwrite to replace it)")
    if not path.parent.exists():
        raise DiffmstError(f"{path.parent}: output folder does not exist")
    return path


def write_audio(
    path: str | os.PathLike,
    audio: np.ndarray,
    sample_rate: int,
    bit_depth: str = "24",
    overwrite: bool = False,
    notify: Notify = _quiet,
) -> Path:
    """Write ``audio (channels, samples)`` atomically: a temp file in the same folder,
    renamed when complete, so a failure never leaves a partial file.

    ``bit_depth`` is ``"16"``, ``"24"`` or ``"32f"``; integer formats are clipped to
    full scale with a notice (32-bit float keeps overs).
    """
    path = check_output(path, overwrite)
    if bit_depth not in SUBTYPES:
        raise DiffmstError(f"bit depth must be one of {', '.join(SUBTYPES)}, got {bit_depth!r}")
    audio = np.asarray(audio, dtype=np.float32)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if bit_depth != "32f" and peak > 1.0:
        notify(f"{path.name}: peak {20 * np.log10(peak):+.1f} dBFS clipped to 0 dBFS "
               "(lower the master gain, or use --bit-depth 32f)")
        audio = np.clip(audio, -1.0, 1.0)
    fmt = {".flac": "FLAC", ".wav": "WAV", ".aif": "AIFF", ".aiff": "AIFF"}.get(path.suffix.lower())
    if fmt is None:
        raise DiffmstError(f"{path}: unsupported output format (use .wav, .flac or .aiff)")
    if fmt == "FLAC" and bit_depth == "32f":
        raise DiffmstError(f"{path}: FLAC cannot store 32-bit float (use .wav)")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        sf.write(tmp, audio.T, sample_rate, subtype=SUBTYPES[bit_depth], format=fmt)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
