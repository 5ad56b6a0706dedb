"""Multi-part scores from the music21 corpus (chorales, madrigals, masses, string quartets,
trecento pieces, baroque sonatas), one stem per voice, orchestrated at random for
strings, winds, brass, voices or a mixed ensemble, sometimes with doublings (a continuo
keyboard, a contrabass an octave down, a flute an octave up). Needs ``music21``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from .score import Note, Part, Score

# composer groups -> (weight, tempo range in quarter notes per minute)
GROUPS = {
    "bach": (0.3, (60, 96)),
    "palestrina": (0.15, (60, 100)),
    "monteverdi": (0.15, (60, 100)),
    "trecento": (0.1, (70, 120)),
    "quartets": (0.2, (70, 140)),
    "baroque": (0.1, (60, 110)),
}
COMPOSERS = {"bach": ["bach"], "palestrina": ["palestrina"], "monteverdi": ["monteverdi"],
             "trecento": ["trecento", "luca", "ciconia"], "quartets": ["haydn", "mozart"],
             "baroque": ["corelli", "handel"]}
SUFFIXES = {".mxl": 60_000, ".xml": 400_000, ".musicxml": 400_000, ".krn": 100_000}
ENSEMBLES = {  # register (soprano, alto, tenor, bass) -> families
    "strings": [["violin"], ["violin", "viola"], ["viola", "cello"], ["cello", "contrabass"]],
    "winds": [["flute", "oboe"], ["clarinet", "oboe"], ["clarinet", "horn", "bassoon"], ["bassoon"]],
    "brass": [["trumpet"], ["trumpet", "horn"], ["horn", "trombone"], ["trombone", "tuba"]],
    "voices": [["choir"], ["choir"], ["choir"], ["choir"]],
    "mixed": [["violin", "flute", "oboe", "trumpet", "clarinet"], ["viola", "clarinet", "horn", "sax"],
              ["cello", "horn", "trombone", "bassoon"], ["cello", "contrabass", "bassoon", "tuba"]],
}
LICENCE = ("composition in the public domain; encoding from the music21 corpus ({path}), see "
           "music21/corpus/license.txt (some encodings restrict commercial use)")


@lru_cache(maxsize=None)
def candidates(group: str) -> tuple[str, ...]:
    from music21 import corpus

    out = []
    for comp in COMPOSERS[group]:
        for p in corpus.getComposer(comp):
            p = Path(p)
            limit = SUFFIXES.get(p.suffix.lower())
            if limit and p.stat().st_size <= limit:
                out.append(str(p))
    return tuple(sorted(out))


def _part_notes(part, qsec: float, rng: np.random.Generator) -> list[Note]:
    notes = []
    base_vel = int(rng.integers(60, 100))
    for el in part.stripTies().flatten().notes:
        start = float(el.offset) * qsec
        dur = max(0.05, float(el.quarterLength) * qsec)
        vel = el.volume.velocity if el.volume is not None and el.volume.velocity else base_vel
        for p in el.pitches:
            notes.append(Note(start, dur * 0.97, int(p.midi), int(vel)))
    return notes


def _rel(path: str) -> str:
    return path.split("corpus/", 1)[-1]


def music21_score(rng: np.random.Generator, seconds: float, max_stems: int = 16) -> Score:
    """A random multi-part corpus work, about ``seconds`` long (excerpted or repeated)."""
    from music21 import corpus

    groups = [g for g in GROUPS if candidates(g)]
    if not groups:
        raise RuntimeError("the music21 corpus has no usable files")
    w = np.array([GROUPS[g][0] for g in groups])
    for _ in range(6):
        group = str(rng.choice(groups, p=w / w.sum()))
        files = candidates(group)
        path = files[int(rng.integers(0, len(files)))]
        try:
            score = corpus.parse(path)
        except Exception:  # noqa: BLE001 - a corpus file this music21 cannot read: try another
            continue
        parts = list(getattr(score, "parts", []))
        parts = [p for p in parts if len(p.flatten().notes) > 4]
        if len(parts) >= 2:
            break
    else:
        raise RuntimeError("no readable multi-part work found in the music21 corpus")
    lo, hi = GROUPS[group][1]
    qpm = float(rng.uniform(lo, hi))
    qsec = 60.0 / qpm
    voices = [_part_notes(p, qsec, rng) for p in parts]
    voices = [v for v in voices if v][:max_stems]
    total = max(n.start + n.duration for v in voices for n in v)
    # excerpt (random start) or repeat the piece to fill ``seconds``
    if total > seconds:
        t0 = float(rng.uniform(0, total - seconds))
        onsets = sorted({n.start for v in voices for n in v})
        t0 = min(onsets, key=lambda t: abs(t - t0))  # start on a note onset
        voices = [[Note(n.start - t0, n.duration, n.pitch, n.velocity) for n in v if n.start >= t0] for v in voices]
    elif total < seconds:
        reps = int(np.ceil(seconds / (total + qsec)))
        voices = [[Note(n.start + r * (total + qsec), n.duration, n.pitch, n.velocity)
                   for r in range(reps) for n in v] for v in voices]
    ensemble = str(rng.choice(list(ENSEMBLES)))
    out: list[Part] = []
    for v in voices:
        if not v:
            continue
        med = float(np.median([n.pitch for n in v]))
        reg = 0 if med >= 67 else 1 if med >= 57 else 2 if med >= 50 else 3
        fam = str(rng.choice(ENSEMBLES[ensemble][reg]))
        out.append(Part(fam, fam, fam, v))
    # phrase dynamics: a slow random swell across the piece
    swell = rng.uniform(-15, 15, 4)
    end = max(n.start for p in out for n in p.notes) + 1e-6
    for p in out:
        for n in p.notes:
            n.velocity = int(np.clip(n.velocity + np.interp(n.start / end, [0, 0.33, 0.66, 1], swell), 20, 120))
    if len(out) < 4 or rng.random() < 0.35:  # doublings, as arrangers do
        extra = []
        if rng.random() < 0.6 or len(out) + len(extra) < 4:
            fam = str(rng.choice(["organ", "piano", "keys", "harp"]))
            notes = [Note(n.start, n.duration, n.pitch, max(30, n.velocity - 15)) for p in out for n in p.notes]
            extra.append(Part(fam, fam, "continuo " + fam, sorted(notes, key=lambda n: n.start)))
        if rng.random() < 0.5 or len(out) + len(extra) < 4:
            low = min(out, key=lambda p: np.median([n.pitch for n in p.notes]))
            notes = [Note(n.start, n.duration, max(28, n.pitch - 12), n.velocity) for n in low.notes]
            extra.append(Part("contrabass", "contrabass", "contrabass", notes))
        if rng.random() < 0.4 or len(out) + len(extra) < 4:
            high = max(out, key=lambda p: np.median([n.pitch for n in p.notes]))
            notes = [Note(n.start, n.duration, min(96, n.pitch + 12), n.velocity) for n in high.notes]
            extra.append(Part("flute", "flute", "flute", notes))
        out += extra[: max(0, max_stems - len(out))]
    info = {"work": _rel(path), "group": group, "ensemble": ensemble, "quarter_bpm": round(qpm, 1)}
    return Score(out, qpm, "music21", LICENCE.format(path=_rel(path)), _rel(path), info)
