"""A small example song, synthesised deterministically in numpy (no downloads).

Used by ``diffmst demo`` and the tests: six raw-sounding stems (kick, snare, hats, bass,
stereo keys, lead) at uneven levels, so there is something for a console to do.
The multitrack corpus generator (``diffmst.data``) makes larger and more varied sets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .audio import write_audio

SAMPLE_RATE = 44100


def _env(n: int, sr: int, attack: float, decay: float) -> np.ndarray:
    t = np.arange(n) / sr
    return np.minimum(t / max(attack, 1e-4), 1.0) * np.exp(-t / decay)


def _note(freq: float, dur: float, sr: int, rng: np.random.Generator, bright: float = 3.0) -> np.ndarray:
    """A saw-ish tone: a few harmonics with 1/k^bright-ish roll-off and slight detune."""
    n = int(dur * sr)
    t = np.arange(n) / sr
    y = np.zeros(n)
    for k in range(1, 9):
        y += np.sin(2 * np.pi * freq * k * (1 + rng.normal(0, 2e-4)) * t) / k ** (bright / 2)
    return y * _env(n, sr, 0.005, dur * 0.6)


def example_song(seconds: float = 12.0, seed: int = 0, sr: int = SAMPLE_RATE) -> dict[str, np.ndarray]:
    """Stems as ``name -> (channels, samples)`` float32 (keys are stereo)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    bpm = 100.0
    beat = 60.0 / bpm
    stems = {k: np.zeros(n) for k in ("kick", "snare", "hats", "bass", "lead")}
    keys = np.zeros((2, n))

    def put(track: np.ndarray, start: float, sig: np.ndarray) -> None:
        i = int(start * sr)
        if i < n:
            m = min(sig.shape[-1], n - i)
            track[..., i : i + m] += sig[..., :m]

    roots = [45, 41, 48, 43]  # A F C G (MIDI)
    hz = lambda m: 440.0 * 2 ** ((m - 69) / 12)  # noqa: E731
    n_beats = int(seconds / beat)
    for b in range(n_beats):
        t0 = b * beat
        bar, pos = divmod(b, 4)
        root = roots[bar % 4]
        if pos in (0, 2):  # kick: pitch-swept sine
            m = int(0.35 * sr)
            tt = np.arange(m) / sr
            put(stems["kick"], t0, np.sin(2 * np.pi * (45 + 90 * np.exp(-tt * 30)) * tt) * np.exp(-tt * 9))
        if pos in (1, 3):  # snare: noise + tone
            m = int(0.25 * sr)
            tt = np.arange(m) / sr
            put(stems["snare"], t0, (0.6 * rng.normal(0, 1, m) + np.sin(2 * np.pi * 190 * tt)) * np.exp(-tt * 18))
        for h in range(2):  # hats: high-passed noise bursts on eighths
            m = int(0.06 * sr)
            noise = np.diff(rng.normal(0, 1, m + 1)) * np.exp(-np.arange(m) / sr * 60)
            put(stems["hats"], t0 + h * beat / 2, noise * (0.5 if h else 0.8))
        put(stems["bass"], t0, _note(hz(root - 12 + (7 if pos == 3 else 0)), beat * 0.9, sr, rng, 2.5))
        if pos == 0:  # keys: a triad per bar, spread in stereo
            for j, iv in enumerate((12, 16, 19)):
                tone = _note(hz(root + iv), beat * 3.8, sr, rng, 4.0) * 0.5
                pan = (0.8, 0.5, 0.2)[j]
                put(keys, t0, np.stack([tone * pan, tone * (1 - pan)]))
        melody = (76, 74, 72, 69, 72, 74, 76, 79)[(b * 3 + bar) % 8]
        if rng.random() < 0.75:
            put(stems["lead"], t0, _note(hz(melody), beat * 0.8, sr, rng, 2.0) * 0.6)
    # uneven raw levels and a little noise floor, like unmixed recordings
    levels = {"kick": 0.5, "snare": 0.25, "hats": 0.08, "bass": 0.3, "lead": 0.12}
    out = {k: (v / (np.abs(v).max() + 1e-9) * levels[k] + rng.normal(0, 3e-5, n))[None] for k, v in stems.items()}
    out["keys"] = keys / (np.abs(keys).max() + 1e-9) * 0.2 + rng.normal(0, 3e-5, (2, n))
    return {k: v.astype(np.float32) for k, v in out.items()}


def write_example_song(folder: str | Path, seconds: float = 12.0, seed: int = 0, overwrite: bool = False) -> list[Path]:
    """Write :func:`example_song` stems as FLAC files into ``folder`` (created)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [
        write_audio(folder / f"{name}.flac", audio, SAMPLE_RATE, "24", overwrite=overwrite)
        for name, audio in example_song(seconds, seed).items()
    ]
