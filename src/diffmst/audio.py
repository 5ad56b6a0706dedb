"""Audio in and out: find, read, check, resample (soxr), write atomically (soundfile).

Arrays here are numpy float32 ``(channels, samples)``; a set of tracks is
``(tracks, samples)`` mono rows (a stereo file becomes ``name.L`` and ``name.R``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import soundfile as sf
import soxr

from .errors import DiffmstError
from .fileio import atomic_path

AUDIO_EXTENSIONS = {".wav", ".flac", ".aif", ".aiff", ".ogg", ".mp3", ".w64", ".caf"}
SUBTYPES = {"16": "PCM_16", "24": "PCM_24", "32f": "FLOAT"}
OUTPUT_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".aif": "AIFF", ".aiff": "AIFF"}
CLIP_TOLERANCE = 10 ** (0.001 / 20)  # overs this small are round-off: clipped silently

Notify = Callable[[str], None]


def _quiet(_msg: str) -> None:
    pass


def find_audio(inputs: Sequence[str | os.PathLike], notify: Notify = _quiet) -> list[Path]:
    """Audio files named by ``inputs``: files as given, folders listed (not recursive, sorted).

    Raises :class:`DiffmstError` for a missing path or when no audio file is found.
    """
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            try:
                entries = sorted(p.iterdir())
            except PermissionError:
                raise DiffmstError(f"{p}: cannot read this folder (permission denied)") from None
            found = [f for f in entries if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS
                     and not f.name.startswith(".")]
            nested = [d.name for d in entries if d.is_dir() and not d.name.startswith(".")
                      and any(f.suffix.lower() in AUDIO_EXTENSIONS for f in d.iterdir() if f.is_file())]
            if nested:
                notify(f"{p}: sub-folders are not searched ({', '.join(nested[:3])}{' ...' if len(nested) > 3 else ''}"
                       "); name them too to use their files")
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


def check_input_file(path: str | os.PathLike, what: str = "file") -> Path:
    """An input that must be one readable, non-empty file: the same error for the same
    fault in every command (a folder, a missing path, 0 bytes, no permission)."""
    path = Path(path)
    if path.is_dir():
        raise DiffmstError(f"{path}: is a folder; expected {'an audio' if what == 'file' else 'a'} {what}")
    if not path.exists():
        raise DiffmstError(f"{path}: no such file")
    if not path.is_file():
        raise DiffmstError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise DiffmstError(f"{path}: empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise DiffmstError(f"{path}: cannot read (permission denied)")
    return path


def _wav_shortfall(path: Path) -> tuple[int, int] | None:
    """For a RIFF/WAVE file whose data chunk claims more bytes than the file holds:
    ``(claimed, present)``; else None. (libsndfile reads such a file silently as shorter.)
    Walks the chunk list by hand: no library reports it."""
    import struct

    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            cid, n = struct.unpack("<4sI", f.read(8))
            if cid == b"data":
                present = size - pos - 8
                return (n, present) if n > present and n != 0xFFFFFFFF else None
            pos += 8 + n + (n & 1)
    return None


def _reason(e: Exception) -> str:
    """libsndfile's message without its "Error opening '...': " prefix, in our words where
    it has a vague one."""
    msg = str(e).split(": ", 1)[-1].strip() if str(e).startswith("Error opening") else str(e).strip()
    if "Format not recognised" in msg:
        return "not an audio format this tool reads (wav, flac, aiff, ogg, mp3, ...)"
    if "psf_fseek" in msg or "lost sync" in msg or "Internal" in msg:
        return "the file ends early or is damaged"
    return msg.removeprefix("Error : ").strip() or type(e).__name__


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
    check_input_file(path)
    short = _wav_shortfall(path)
    if short:
        raise DiffmstError(f"{path}: cannot read audio: truncated or corrupt (its data chunk claims "
                           f"{short[0]} bytes, the file holds {short[1]})")
    try:
        with sf.SoundFile(str(path)) as f:
            _check_channels(path, f.channels, max_channels)
            try:
                data = f.read(dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as e:
                raise DiffmstError(f"{path}: cannot read audio: truncated or corrupt ({_reason(e)})") from None
            sr = f.samplerate
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise DiffmstError(f"{path}: cannot read audio: {_reason(e)}") from None
    if data.shape[0] == 0:
        raise DiffmstError(f"{path}: file has no samples (zero length)")
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


def track_names(files: Sequence[Path], channels: Sequence[int]) -> list[list[str]]:
    """Unique track names for ``files`` (with their channel counts): per file, its channels'
    names (:func:`channel_names`).

    A file is named by its stem (``kick``); files whose names would collide (``kick.wav``
    and ``kick.flac``; a stereo ``keys.flac``'s ``keys.L`` and a mono ``keys.L.wav``) are
    named by their file name (``kick.wav``, ``keys.flac.L``), and where that still collides
    (``drums/kick.flac`` and ``perc/kick.flac``) by their path from the folder the files
    share. Raises :class:`DiffmstError` for the same file given twice.
    """
    resolved = [f.resolve() for f in files]
    for i, r in enumerate(resolved):
        if r in resolved[:i]:
            raise DiffmstError(f"{files[i]}: given twice as a track")
    root = Path(os.path.commonpath([r.parent for r in resolved])) if files else Path()
    ways = [lambda f, r: f.stem, lambda f, r: f.name, lambda f, r: r.relative_to(root).as_posix()]
    level = [0] * len(files)
    while True:
        names = [channel_names(ways[lv](f, r), c) for f, r, lv, c in zip(files, resolved, level, channels)]
        flat = [n for ns in names for n in ns]
        clash = [i for i, ns in enumerate(names) if any(flat.count(n) > 1 for n in ns)]
        if not clash:
            return names
        if all(level[i] == len(ways) - 1 for i in clash):  # cannot happen for distinct files
            raise DiffmstError(f"{files[clash[0]]}: its track name collides with another file's")
        for i in clash:
            level[i] = min(level[i] + 1, len(ways) - 1)


def probe_track_names(inputs: Sequence[str | os.PathLike]) -> list[str]:
    """The track names :func:`load_tracks` would give (the files are read and checked as it does)."""
    files = find_audio(inputs)
    # read, not only probed: a file `params` accepts must be one `render` accepts
    channels = [read_audio(f)[0].shape[0] for f in files]
    return [n for ns in track_names(files, channels) for n in ns]


def load_tracks(inputs: Sequence[str | os.PathLike], notify: Notify = _quiet) -> Tracks:
    """Load a song's tracks from folders/files.

    Stereo files become two mono tracks ``name.L`` and ``name.R``. Different sample rates
    are resampled to the highest, shorter tracks are zero-padded to the longest; both
    with a notice through ``notify``.
    """
    files = find_audio(inputs, notify)
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
    for file_names, (x, _) in zip(track_names(files, [x.shape[0] for x, _ in loaded]), loaded):
        names += file_names
        rows += list(np.pad(x, ((0, 0), (0, n - x.shape[1]))))
    return Tracks(names, np.stack(rows).astype(np.float32), sr, files)


def check_output(path: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse to replace an existing output unless ``overwrite`` (and a folder even then);
    the folder it goes in must exist."""
    path = Path(path)
    if path.is_dir():
        raise DiffmstError(f"{path}: is a folder; expected a file name")
    if path.exists() and not overwrite:
        raise DiffmstError(f"{path}: already exists (use --overwrite to replace it)")
    if not path.parent.is_dir():
        raise DiffmstError(f"{path.parent}: output folder does not exist")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise DiffmstError(f"{path.parent}: cannot write in this folder (permission denied)")
    return path


def check_distinct(outputs: Sequence[str | os.PathLike], inputs: Sequence[str | os.PathLike]) -> None:
    """Refuse an output that is one of the inputs (or two outputs that are one file): with
    ``--overwrite`` it would replace a file the command is reading."""
    seen: dict[Path, str] = {}
    ins = {Path(i).resolve() for i in inputs}
    for o in outputs:
        r = Path(o).resolve()
        if r in ins:
            raise DiffmstError(f"{o}: is one of the inputs; choose another output file")
        if r in seen:
            raise DiffmstError(f"{o}: given for two outputs ({seen[r]} and this one)")
        seen[r] = str(o)


def output_format(path: str | os.PathLike, bit_depth: str = "24") -> str:
    """soundfile's format name for an output audio file, from its extension; raises
    :class:`DiffmstError` for an extension or bit depth it cannot store (checked before
    any audio work, so a long render never ends in this error)."""
    path = Path(path)
    if bit_depth not in SUBTYPES:
        raise DiffmstError(f"bit depth must be one of {', '.join(SUBTYPES)}, got {bit_depth!r}")
    fmt = OUTPUT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DiffmstError(f"{path}: unsupported output format {path.suffix or '(no extension)'!s} "
                           f"(use {', '.join(OUTPUT_FORMATS)})")
    if fmt == "FLAC" and bit_depth == "32f":
        raise DiffmstError(f"{path}: FLAC cannot store 32-bit float (use .wav, or --bit-depth 16 or 24)")
    return fmt


def check_audio_output(path: str | os.PathLike, overwrite: bool, bit_depth: str = "24") -> Path:
    """:func:`check_output` and :func:`output_format` together: what every command that
    writes audio checks before it starts."""
    path = check_output(path, overwrite)
    output_format(path, bit_depth)
    return path


def write_audio(
    path: str | os.PathLike,
    audio: np.ndarray,
    sample_rate: int,
    bit_depth: str = "24",
    overwrite: bool = False,
) -> Path:
    """Write ``audio (channels, samples)`` atomically: a temp file in the same folder,
    renamed when complete, so a failure never leaves a partial file.

    ``bit_depth`` is ``"16"``, ``"24"`` or ``"32f"``. An integer format is never written
    clipped: a peak above full scale (more than round-off) raises :class:`DiffmstError`
    (32-bit float keeps overs).
    """
    path = check_output(path, overwrite)
    fmt = output_format(path, bit_depth)
    audio = np.asarray(audio, dtype=np.float32)
    if not np.isfinite(audio).all():
        raise DiffmstError(f"{path}: the audio to write has NaN or infinite samples; nothing written")
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if bit_depth != "32f" and peak > CLIP_TOLERANCE:
        # never a clipped file: every mix diffmst makes ends in a limiter, so this is a
        # caller's level error, not something to hide
        raise DiffmstError(f"{path}: peak {20 * np.log10(peak):+.2f} dBFS would clip in {bit_depth}-bit; "
                           "nothing written (lower the level, or use --bit-depth 32f)")
    audio = np.clip(audio, -1.0, 1.0) if bit_depth != "32f" else audio
    with atomic_path(path) as tmp:
        try:
            sf.write(tmp, audio.T, sample_rate, subtype=SUBTYPES[bit_depth], format=fmt)
        except (sf.LibsndfileError, OSError) as e:  # a full disk reads "System error"
            raise DiffmstError(f"{path}: cannot write ({_reason(e)}; is the disk full?)") from None
    return path
