"""Notes, parts and scores: what every music source produces and every renderer plays.

A :class:`Score` is a list of :class:`Part` (one per stem), each a list of
:class:`Note` with times in seconds. Sources (procedural, MMA, music21) build scores;
renderers (fluidsynth, numpy synth) turn one part into one stem.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# ----------------------------------------------------------------------------- instruments

#: family -> General MIDI programs (0-based) that sound sensible for it. A part names a
#: family; the renderer picks a program from it at random (seeded) unless one is given.
GM_FAMILIES: dict[str, list[int]] = {
    "piano": [0, 1, 2, 3, 4, 5],
    "keys": [4, 5, 6, 7, 11, 12],          # electric pianos, harpsichord, clavinet, vibes, marimba
    "mallets": [8, 9, 10, 11, 12, 13, 14],
    "organ": [16, 17, 18, 19, 20],
    "guitar": [24, 25, 26, 27, 28],
    "distorted_guitar": [29, 30],
    "bass": [32, 33, 34, 35, 36, 37, 38, 39],
    "upright_bass": [32, 43],
    "violin": [40],
    "viola": [41],
    "cello": [42],
    "contrabass": [43],
    "strings": [48, 49, 44],
    "synth_strings": [50, 51],
    "harp": [46],
    "choir": [52, 53, 54],
    "trumpet": [56, 59],
    "trombone": [57],
    "tuba": [58],
    "horn": [60],
    "brass": [61, 62, 63],
    "sax": [64, 65, 66, 67],
    "oboe": [68, 69],
    "bassoon": [70],
    "clarinet": [71],
    "flute": [72, 73, 74, 75],
    "lead": [80, 81, 82, 84, 85, 87],
    "pad": [88, 89, 90, 91, 92, 94, 95],
    "drums": [0, 8, 16, 24, 25, 32, 40],   # drum kits (bank 128)
}

#: drum stems: stem name -> General MIDI percussion keys
DRUM_KEYS: dict[str, list[int]] = {
    "kick": [35, 36],
    "snare": [37, 38, 39, 40],
    "hats": [42, 44, 46],
    "toms": [41, 43, 45, 47, 48, 50],
    "cymbals": [49, 51, 52, 53, 55, 57, 59],
    "perc": [54, 56, 58, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 73, 74, 75, 76, 77],
}

#: expected band (Hz) of most of a drum stem's energy; pitched parts use their notes' range
DRUM_BANDS: dict[str, tuple[float, float]] = {
    "kick": (25.0, 300.0),
    "snare": (120.0, 12000.0),
    "hats": (2500.0, 20000.0),
    "toms": (50.0, 1000.0),
    "cymbals": (1500.0, 20000.0),
    "perc": (150.0, 16000.0),
}


def drum_class(key: int) -> str:
    """The drum stem a GM percussion key belongs to (``perc`` for anything unlisted)."""
    for name, keys in DRUM_KEYS.items():
        if key in keys:
            return name
    return "perc"


def midi_hz(pitch: float | np.ndarray) -> float | np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(pitch, dtype=float) - 69.0) / 12.0)


# ----------------------------------------------------------------------------- notes


@dataclass
class Note:
    """One note: ``start`` and ``duration`` in seconds, MIDI ``pitch`` (drum key for
    drum parts), ``velocity`` 1..127."""

    start: float
    duration: float
    pitch: int
    velocity: int


@dataclass
class Part:
    """One stem's notes. ``family`` is a key of :data:`GM_FAMILIES` (``drums`` for drum
    stems); ``instrument`` is a readable name; ``program`` a GM program or None (pick)."""

    name: str
    family: str
    instrument: str
    notes: list[Note] = field(default_factory=list)
    program: int | None = None
    drum: bool = False
    stereo: bool = False

    def band_hz(self, sr: int) -> tuple[float, float]:
        """Band (Hz) that should hold most of this part's energy once rendered."""
        nyq = sr / 2 * 0.95
        if self.drum:
            lo, hi = DRUM_BANDS.get(self.name.rstrip("0123456789"), DRUM_BANDS["perc"])
            return lo, min(hi, nyq)
        pitches = np.array([n.pitch for n in self.notes] or [60])
        # organ presets add sub-octave ranks (16'), so allow energy an octave below
        lo = float(midi_hz(pitches.min())) / (2.5 if self.family == "organ" else 1.5)
        hi = float(midi_hz(pitches.max())) * 10.0
        return max(20.0, lo), min(max(hi, lo * 4), nyq)

    @property
    def end(self) -> float:
        return max((n.start + n.duration for n in self.notes), default=0.0)


@dataclass
class Score:
    """A song as parts plus what ``meta.json`` records about it."""

    parts: list[Part]
    tempo_bpm: float
    source: str
    licence: str
    title: str = ""
    info: dict = field(default_factory=dict)

    @property
    def end(self) -> float:
        return max((p.end for p in self.parts), default=0.0)


def unique_names(parts: list[Part]) -> None:
    """Make part names unique and file-safe in place (``piano``, ``piano2``, ...)."""
    seen: dict[str, int] = {}
    for p in parts:
        base = "".join(c if c.isalnum() or c in "-_" else "_" for c in p.name.lower()).strip("_") or "part"
        seen[base] = seen.get(base, 0) + 1
        p.name = base if seen[base] == 1 else f"{base}{seen[base]}"
    # a second pass in case "piano2" collided with a literal "piano2"
    names = [p.name for p in parts]
    if len(set(names)) != len(names):
        for i, p in enumerate(parts):
            p.name = f"{p.name}_{i}"


def split_drums(notes: list[Note], prefix: str = "") -> list[Part]:
    """Split a drum kit's notes into stems (kick, snare, hats, ...); empty stems dropped."""
    by: dict[str, list[Note]] = {}
    for n in notes:
        by.setdefault(drum_class(n.pitch), []).append(n)
    return [Part(prefix + name, "drums", name, sorted(ns, key=lambda n: n.start), drum=True)
            for name, ns in by.items() if ns and name in DRUM_KEYS]


def humanise(part: Part, rng: np.random.Generator, timing_ms: float, velocity: float) -> None:
    """Jitter note starts (gaussian, ``timing_ms`` std) and velocities (``velocity`` std)
    in place, clipping to valid ranges."""
    if not part.notes:
        return
    k = len(part.notes)
    dt = rng.normal(0.0, timing_ms / 1000.0, k)
    dv = rng.normal(0.0, velocity, k)
    for n, t, v in zip(part.notes, dt, dv):
        n.start = max(0.0, n.start + float(t))
        n.velocity = int(np.clip(round(n.velocity + v), 1, 127))


def crop(score: Score, seconds: float) -> None:
    """Drop notes starting after ``seconds`` and shorten those running past it."""
    for p in score.parts:
        p.notes = [Note(n.start, min(n.duration, seconds - n.start), n.pitch, n.velocity)
                   for n in p.notes if n.start < seconds - 0.05]


def family_of_program(program: int) -> str:
    """The :data:`GM_FAMILIES` family for a GM program (0-based)."""
    for fam in ("piano", "keys", "organ", "guitar", "distorted_guitar", "bass", "violin", "viola", "cello",
                "contrabass", "harp", "strings", "synth_strings", "choir", "trumpet", "trombone", "tuba", "horn",
                "brass", "sax", "oboe", "bassoon", "clarinet", "flute", "lead", "pad", "mallets"):
        if program in GM_FAMILIES[fam]:
            return fam
    group = ["piano", "mallets", "organ", "guitar", "bass", "strings", "strings", "brass", "sax", "flute",
             "lead", "pad", "pad", "guitar", "mallets", "pad"][program // 8]
    return group
