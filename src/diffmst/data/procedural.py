"""The project's own procedural song generator: drum grooves, bass lines, chord comping,
melodies, pads and arpeggios with random key, mode, tempo, meter, swing and form.

Everything is drawn from one ``numpy.random.Generator``, so a seed fixes the song.
Parts drop in and out per section (intro, verse, chorus, bridge, outro) as in real
arrangements, so stems have silent stretches but are never silent overall.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .score import Note, Part, Score, split_drums

SCALES = {
    "major": [0, 2, 4, 5, 7, 9, 11],
    "minor": [0, 2, 3, 5, 7, 8, 10],
    "dorian": [0, 2, 3, 5, 7, 9, 10],
    "mixolydian": [0, 2, 4, 5, 7, 9, 10],
    "harmonic_minor": [0, 2, 3, 5, 7, 8, 11],
}
# progressions as scale degrees (0-based), chosen per section
PROGRESSIONS = [
    [0, 4, 5, 3], [5, 3, 0, 4], [0, 3, 4, 3], [1, 4, 0, 0], [0, 5, 1, 4], [0, 3, 0, 4],
    [0, 6, 5, 6], [0, 3, 4, 0], [5, 4, 3, 4], [0, 2, 3, 4], [3, 4, 0, 5], [0, 0, 3, 4],
]
METERS = [  # (beats per bar, steps per beat, label, probability)
    (4, 4, "4/4", 0.70), (3, 4, "3/4", 0.12), (2, 3, "6/8", 0.10), (4, 3, "12/8", 0.04), (5, 4, "5/4", 0.04),
]
FORMS = [
    ["intro", "verse", "chorus", "verse", "chorus", "bridge", "chorus", "outro"],
    ["intro", "verse", "verse", "chorus", "verse", "chorus", "outro"],
    ["verse", "chorus", "verse", "chorus", "chorus", "outro"],
    ["intro", "a", "a", "b", "a", "outro"],
]


@dataclass
class Ctx:
    rng: np.random.Generator
    step_s: float
    steps_per_beat: int
    beats: int
    swing: float
    root: int
    scale: list[int]
    chords: list[list[int]]      # per bar: chord tones as MIDI pitch classes offsets (root first, absolute pc)
    sections: list[tuple[str, int, int]]  # (name, first bar, bars)

    @property
    def steps_per_bar(self) -> int:
        return self.beats * self.steps_per_beat

    @property
    def bars(self) -> int:
        return len(self.chords)

    def t(self, bar: int, step: float) -> float:
        s = bar * self.steps_per_bar + step
        if self.swing and int(step) % 2 == 1 and step == int(step):
            s += self.swing
        return s * self.step_s

    def section_of(self, bar: int) -> str:
        for name, first, n in self.sections:
            if first <= bar < first + n:
                return name
        return "outro"


def _chord(scale: list[int], root: int, degree: int, seventh: bool) -> list[int]:
    idx = [degree, degree + 2, degree + 4] + ([degree + 6] if seventh else [])
    return [root + scale[i % 7] + 12 * (i // 7) for i in idx]


def _strength(ctx: Ctx, step: int) -> float:
    """Metric weight of a step in the bar: 1 downbeat .. small for off-16ths."""
    spb = ctx.steps_per_beat
    if step == 0:
        return 1.0
    if step % spb == 0:
        return 0.75 if (step // spb) % 2 == 0 else 0.6
    if spb == 4 and step % 2 == 0:
        return 0.4
    return 0.2


# ----------------------------------------------------------------------------- parts


def _drums(ctx: Ctx, active: set[str], style: str) -> list[Note]:
    rng, notes = ctx.rng, []
    spb, sbar = ctx.steps_per_beat, ctx.steps_per_bar
    # one-bar patterns drawn once per song, varied per section
    kick = np.zeros(sbar, bool)
    snare = np.zeros(sbar, bool)
    if style == "four":
        kick[::spb] = True
        snare[spb::2 * spb] = True
    elif style == "half":
        kick[0] = True
        snare[(ctx.beats // 2) * spb if ctx.beats > 2 else spb] = True
    else:
        for s in range(sbar):
            kick[s] = rng.random() < {1.0: 1.0, 0.75: 0.7, 0.6: 0.15, 0.4: 0.25, 0.2: 0.08}[_strength(ctx, s)]
        snare[spb::2 * spb] = True
        if ctx.beats == 3:
            snare[:] = False
            snare[2 * spb] = True
    kick[snare] = False
    kick[0] = True
    hat_every = rng.choice([1, 2]) if spb == 4 else 1
    ride = rng.random() < 0.25
    ghost = rng.random() < 0.4
    for bar in range(ctx.bars):
        sec = ctx.section_of(bar)
        if sec not in active:
            continue
        last = bar == ctx.bars - 1 or ctx.section_of(bar + 1) != sec
        fill_from = sbar - spb * int(rng.integers(1, 3)) if last and rng.random() < 0.6 else sbar
        for s in range(sbar):
            if s >= fill_from:  # tom fill at a section's end
                if s % max(1, spb // 2) == 0:
                    key = [50, 48, 47, 45, 43, 41][min(5, (s - fill_from) * 6 // max(1, sbar - fill_from))]
                    notes.append(Note(ctx.t(bar, s), ctx.step_s, key, int(rng.integers(80, 115))))
                continue
            if kick[s] or (rng.random() < 0.04 and _strength(ctx, s) <= 0.4):
                notes.append(Note(ctx.t(bar, s), ctx.step_s, 36, int(rng.integers(95, 125))))
            if snare[s]:
                notes.append(Note(ctx.t(bar, s), ctx.step_s, 38 if rng.random() > 0.1 else 40, int(rng.integers(95, 125))))
            elif ghost and rng.random() < 0.08:
                notes.append(Note(ctx.t(bar, s), ctx.step_s, 38, int(rng.integers(25, 50))))
            if s % hat_every == 0:
                acc = 100 if s % spb == 0 else 70
                key = 51 if ride else (46 if (s == sbar - 2 and rng.random() < 0.3) else 42)
                notes.append(Note(ctx.t(bar, s), ctx.step_s, key, int(np.clip(acc + rng.normal(0, 10), 20, 127))))
        first = ctx.section_of(bar - 1) != sec if bar else True
        if first and bar:
            notes.append(Note(ctx.t(bar, 0), 4 * ctx.step_s, 49, int(rng.integers(90, 120))))
        if rng.random() < 0.5:  # percussion (shaker / tambourine / conga) on offbeats
            key = int(rng.choice([54, 69, 70, 63, 64]))
            for s in range(spb // 2, sbar, spb):
                if rng.random() < 0.8:
                    notes.append(Note(ctx.t(bar, s), ctx.step_s, key, int(rng.integers(50, 90))))
    return notes


def _bass(ctx: Ctx, active: set[str], style: str) -> list[Note]:
    rng, notes = ctx.rng, []
    spb, sbar = ctx.steps_per_beat, ctx.steps_per_bar
    low = 28 + int(rng.integers(0, 8))
    for bar in range(ctx.bars):
        if ctx.section_of(bar) not in active:
            continue
        chord = ctx.chords[bar]
        root = low + (chord[0] - low) % 12
        nxt = ctx.chords[(bar + 1) % ctx.bars][0]
        if style == "walk":
            steps = list(range(0, sbar, spb))
            target = low + (nxt - low) % 12
            for i, s in enumerate(steps):
                if i == 0:
                    p = root
                elif i == len(steps) - 1:
                    p = target + int(rng.choice([-1, 1]))
                else:
                    p = root + int(rng.choice([3, 4, 5, 7, 9, 10, 12]))
                notes.append(Note(ctx.t(bar, s), spb * ctx.step_s * 0.9, p, int(rng.integers(80, 110))))
        elif style == "pedal":
            notes.append(Note(ctx.t(bar, 0), sbar * ctx.step_s * 0.95, root, int(rng.integers(85, 110))))
        else:  # rhythmic: root/fifth/octave on a one-bar rhythm
            for s in range(sbar):
                w = _strength(ctx, s)
                if s == 0 or rng.random() < {1.0: 1, 0.75: 0.6, 0.6: 0.5, 0.4: 0.3, 0.2: 0.1}[w]:
                    iv = 0 if w >= 0.75 or rng.random() < 0.6 else int(rng.choice([7, 12, -5]))
                    dur = ctx.step_s * (spb if w >= 0.6 else 1) * 0.9
                    notes.append(Note(ctx.t(bar, s), dur, root + iv, int(rng.integers(80, 115))))
    return notes


def _comp(ctx: Ctx, active: set[str], style: str, low: int) -> list[Note]:
    rng, notes = ctx.rng, []
    spb, sbar = ctx.steps_per_beat, ctx.steps_per_bar
    rhythm = [s for s in range(sbar) if s == 0 or rng.random() < 0.45 * _strength(ctx, s)]
    for bar in range(ctx.bars):
        if ctx.section_of(bar) not in active:
            continue
        voicing = sorted(low + (p - low) % 12 for p in ctx.chords[bar])
        if rng.random() < 0.3:
            voicing = voicing[1:] + [voicing[0] + 12]  # inversion
        vel = int(rng.integers(60, 100))
        if style == "sustain":
            for p in voicing:
                notes.append(Note(ctx.t(bar, 0), sbar * ctx.step_s * 0.98, p, vel))
        elif style == "arp":
            every = max(1, spb // 2)
            for k, s in enumerate(range(0, sbar, every)):
                p = voicing[k % len(voicing)] + (12 if (k // len(voicing)) % 2 else 0)
                notes.append(Note(ctx.t(bar, s), every * ctx.step_s * 1.5, p, vel + int(rng.integers(-10, 10))))
        else:  # rhythmic stabs / strums
            for i, s in enumerate(rhythm):
                end = rhythm[i + 1] if i + 1 < len(rhythm) else sbar
                strum = rng.uniform(0, 0.012) if style == "strum" else 0.0
                for j, p in enumerate(voicing):
                    notes.append(Note(ctx.t(bar, s) + j * strum, (end - s) * ctx.step_s * 0.85, p,
                                      int(np.clip(vel + 10 * _strength(ctx, s) + rng.normal(0, 5), 1, 127))))
    return notes


def _melody(ctx: Ctx, active: set[str], low: int, density: float) -> list[Note]:
    rng, notes = ctx.rng, []
    spb, sbar = ctx.steps_per_beat, ctx.steps_per_bar
    pcs = [(ctx.root + s) % 12 for s in ctx.scale]
    pitches = [p for p in range(low, low + 20) if p % 12 in pcs]
    motifs = []
    for _ in range(3):  # a few one-bar rhythms, reused: melodies repeat
        grid = max(1, spb // 2)
        motifs.append([s for s in range(0, sbar, grid) if rng.random() < density * (0.5 + _strength(ctx, s))])
    idx = len(pitches) // 2
    for bar in range(ctx.bars):
        if ctx.section_of(bar) not in active or rng.random() < 0.15:
            continue
        rhythm = motifs[int(rng.integers(0, len(motifs)))] if bar % 2 == 0 or rng.random() < 0.3 else motifs[0]
        chord_pcs = {p % 12 for p in ctx.chords[bar]}
        for i, s in enumerate(rhythm):
            end = rhythm[i + 1] if i + 1 < len(rhythm) else sbar
            idx = int(np.clip(idx + rng.choice([-2, -1, -1, 0, 1, 1, 2, 3, -3]), 0, len(pitches) - 1))
            if _strength(ctx, s) >= 0.6:  # chord tone on strong beats
                near = [k for k in range(len(pitches)) if pitches[k] % 12 in chord_pcs]
                if near:
                    idx = min(near, key=lambda k: abs(k - idx))
            dur = (end - s) * ctx.step_s * rng.uniform(0.6, 0.95)
            notes.append(Note(ctx.t(bar, s), dur, pitches[idx], int(rng.integers(70, 110))))
    return notes


# ----------------------------------------------------------------------------- song

LEADS = ["lead", "sax", "flute", "trumpet", "violin", "guitar", "clarinet", "mallets", "organ"]
COMPS = [("piano", "rhythm"), ("piano", "sustain"), ("keys", "rhythm"), ("guitar", "strum"),
         ("organ", "sustain"), ("distorted_guitar", "rhythm"), ("keys", "arp"), ("harp", "arp")]
PADS = ["pad", "strings", "synth_strings", "choir", "organ", "brass"]


def procedural_score(rng: np.random.Generator, seconds: float, max_stems: int = 16) -> Score:
    """A random song of about ``seconds`` seconds with 4..``max_stems`` parts."""
    beats, spb, meter, _ = METERS[int(rng.choice(len(METERS), p=[m[3] for m in METERS]))]
    bpm = float(rng.uniform(70, 165)) if spb == 4 else float(rng.uniform(50, 110))
    step_s = 60.0 / bpm / spb
    swing = float(rng.choice([0.0, 0.0, 0.0, rng.uniform(0.15, 0.35)])) if spb == 4 else 0.0
    mode = str(rng.choice(list(SCALES)))
    root = int(rng.integers(0, 12))
    scale = SCALES[mode]
    bar_s = beats * spb * step_s
    form = list(FORMS[int(rng.integers(0, len(FORMS)))])
    sections: list[tuple[str, int, int]] = []
    progs: dict[str, list[int]] = {}
    chords: list[list[int]] = []
    sevenths = rng.random() < 0.35
    bar = 0
    while bar * bar_s < seconds + bar_s:
        name = form[len(sections) % len(form)]
        n = int(rng.choice([4, 8])) if name not in ("intro", "outro") else 4
        sections.append((name, bar, n))
        if name not in progs:
            progs[name] = PROGRESSIONS[int(rng.integers(0, len(PROGRESSIONS)))]
        per_bar = 2 if rng.random() < 0.15 else 1
        for b in range(n):
            deg = progs[name][(b // per_bar) % 4]
            chords.append(_chord(scale, 48 + root, deg, sevenths))
        bar += n
    ctx = Ctx(rng, step_s, spb, beats, swing, root, scale, chords, sections)
    all_secs = {s[0] for s in sections}
    body = all_secs - {"intro", "outro"}

    def some(p_keep: float) -> set[str]:
        # one draw per section in a fixed order: iterating the set itself would follow string
        # hashing, which PYTHONHASHSEED varies between processes (same --seed, other songs)
        keep = {s for s in sorted(all_secs) if rng.random() < p_keep} | {"chorus", "a"}
        return keep & all_secs or set(body or all_secs)

    n_stems = int(rng.integers(4, max(5, max_stems + 1)))
    parts: list[Part] = []
    # drums: 3..6 stems
    if rng.random() < 0.9 and n_stems >= 5:
        style = str(rng.choice(["groove", "groove", "four", "half"]))
        kit = split_drums(_drums(ctx, some(0.8) | body, style))
        order = {"kick": 0, "snare": 1, "hats": 2, "cymbals": 3, "toms": 4, "perc": 5}
        kit.sort(key=lambda p: order.get(p.name, 9))
        parts += kit[: max(2, min(len(kit), n_stems - 3))]
    parts.append(Part("bass", str(rng.choice(["bass", "bass", "upright_bass"])), "bass",
                      _bass(ctx, some(0.85) | {"chorus"}, str(rng.choice(["rhythm", "rhythm", "walk", "pedal"])))))
    fam, style = COMPS[int(rng.integers(0, len(COMPS)))]
    parts.append(Part(fam if fam != "distorted_guitar" else "guitar", fam, fam,
                      _comp(ctx, some(0.9), style, int(rng.integers(50, 60)))))
    lead = str(rng.choice(LEADS))
    parts.append(Part(lead, lead, lead, _melody(ctx, some(0.6) - {"intro"} or body, int(rng.integers(60, 70)),
                                                float(rng.uniform(0.3, 0.7)))))
    while len(parts) < n_stems:
        kind = rng.random()
        if kind < 0.4:
            fam = str(rng.choice(PADS))
            notes = _comp(ctx, some(0.5), "sustain", int(rng.integers(55, 64)))
        elif kind < 0.7:
            fam, style = COMPS[int(rng.integers(0, len(COMPS)))]
            notes = _comp(ctx, some(0.5), style, int(rng.integers(48, 64)))
        else:
            fam = str(rng.choice(LEADS))
            notes = _melody(ctx, some(0.5), int(rng.integers(55, 76)), float(rng.uniform(0.2, 0.6)))
        if notes:
            name = fam if fam != "distorted_guitar" else "guitar"
            parts.append(Part(name, fam, fam, notes))
    parts = [p for p in parts if p.notes]
    info = {"key": f"{['C', 'C#', 'D', 'Eb', 'E', 'F', 'F#', 'G', 'Ab', 'A', 'Bb', 'B'][root]} {mode}",
            "meter": meter, "swing": round(swing, 3), "form": [s[0] for s in sections]}
    return Score(parts, bpm, "procedural", "CC0-1.0 (generated by diffmst)", "procedural song", info)
