"""Pure-numpy synthesiser: the fallback renderer when fluidsynth is not installed.

Pitched parts use band-limited wavetables built per note from a family's harmonic
spectrum (piano-like, organ drawbars, saw/square leads, formant-shaped voices, ...),
cross-faded from a bright to a dull table by a brightness envelope (struck and plucked
sounds darken as they decay, brass opens up), with vibrato and detuned unison where the
family has them. Drums are one-shot samples synthesised per song (swept sines, filtered
noise, metallic oscillator banks) and placed at each hit. Deterministic given the rng.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, sosfilt

from .score import Part, drum_class, midi_hz

TABLE = 4096


@dataclass
class Timbre:
    spectrum: str          # saw | square | triangle | organ | struck | voice | flute | reed
    attack: float          # s
    decay: float           # s, amplitude time constant while held (inf = sustain)
    release: float         # s
    bright_decay: float    # s, brightness time constant (inf = constant)
    dull_cutoff: float     # harmonic cutoff (Hz) of the dull table
    vibrato: float = 0.0   # semitones
    unison: int = 1        # detuned copies
    breath: float = 0.0    # noise level (flute, voice)


def _timbre(family: str, rng: np.random.Generator) -> Timbre:
    u = rng.uniform
    if family in ("piano", "keys", "harp", "guitar", "mallets"):
        decay = {"piano": u(1.0, 2.5), "keys": u(0.8, 2.0), "harp": u(0.8, 1.6),
                 "guitar": u(0.5, 1.4), "mallets": u(0.3, 1.0)}[family]
        return Timbre("struck", 0.002, decay, 0.08, u(0.08, 0.4), u(600, 1500))
    if family in ("bass", "upright_bass", "contrabass"):
        return Timbre(str(rng.choice(["saw", "square", "struck"])), 0.004, u(0.4, 2.0), 0.05, u(0.05, 0.3), u(250, 600))
    if family == "distorted_guitar":
        return Timbre("square", 0.003, u(1.5, 4.0), 0.05, u(0.5, 2.0), u(1500, 3000), unison=2)
    if family == "organ":
        return Timbre("organ", 0.01, np.inf, 0.03, np.inf, 1e5)
    if family in ("strings", "synth_strings", "violin", "viola", "cello", "pad"):
        return Timbre("saw", u(0.08, 0.4), np.inf, u(0.2, 0.6), np.inf, u(1500, 4000),
                      vibrato=u(0.05, 0.15), unison=2 if family in ("strings", "synth_strings", "pad") else 1)
    if family in ("choir",):
        return Timbre("voice", u(0.1, 0.3), np.inf, 0.3, np.inf, 1e5, vibrato=u(0.1, 0.25), unison=2, breath=0.02)
    if family in ("trumpet", "trombone", "tuba", "horn", "brass"):
        return Timbre("saw", u(0.02, 0.06), np.inf, 0.08, -u(0.05, 0.15), u(500, 1200), vibrato=u(0.02, 0.1))
    if family in ("sax", "clarinet", "oboe", "bassoon"):
        return Timbre("reed" if family != "clarinet" else "square", u(0.02, 0.05), np.inf, 0.06, np.inf,
                      u(2000, 5000), vibrato=u(0.05, 0.15), breath=0.01)
    if family == "flute":
        return Timbre("flute", u(0.03, 0.08), np.inf, 0.08, np.inf, 1e5, vibrato=u(0.05, 0.12), breath=0.04)
    # lead and anything else: a synth lead
    return Timbre(str(rng.choice(["saw", "square", "triangle"])), 0.01, np.inf, 0.05, np.inf,
                  u(1500, 5000), vibrato=u(0.0, 0.15), unison=int(rng.choice([1, 2])))


def _harmonics(spectrum: str, f0: float, sr: int, rng_params: dict) -> np.ndarray:
    """Harmonic amplitudes (index k-1) for a note at ``f0``, band-limited below 0.45 sr."""
    n = max(1, min(80, int(0.45 * sr / f0)))
    k = np.arange(1, n + 1, dtype=float)
    if spectrum == "saw":
        a = 1.0 / k
    elif spectrum == "square":
        a = np.where(k % 2 == 1, 1.0 / k, 0.05 / k)
    elif spectrum == "triangle":
        a = np.where(k % 2 == 1, 1.0 / k ** 2, 0.0)
    elif spectrum == "organ":
        a = np.zeros(n)
        for h, lvl in zip((1, 2, 3, 4, 6, 8), rng_params["drawbars"]):
            if h <= n:
                a[h - 1] = lvl
    elif spectrum == "struck":
        a = 1.0 / k ** rng_params["rolloff"] * (1 + 0.5 * np.cos(k * rng_params["hammer"]))
    elif spectrum == "voice":
        fk = k * f0
        a = 1.0 / k
        gain = sum(g * np.exp(-0.5 * ((fk - fc) / bw) ** 2) for fc, bw, g in rng_params["formants"])
        a = a * (0.05 + gain)
    elif spectrum == "flute":
        a = np.exp(-(k - 1) * 1.2)
    elif spectrum == "reed":
        a = 1.0 / k ** 0.8 * (1 + 0.6 * np.sin(k * 0.9))
    else:
        a = 1.0 / k
    return a / (np.abs(a).sum() + 1e-12)


def _table(amps: np.ndarray, cutoff: float, f0: float) -> np.ndarray:
    k = np.arange(1, len(amps) + 1)
    a = amps * (1.0 / (1.0 + (k * f0 / cutoff) ** 4))
    ph = 2 * np.pi * np.arange(TABLE) / TABLE
    return (a[:, None] * np.sin(k[:, None] * ph[None, :])).sum(0).astype(np.float32)


class PitchedVoice:
    def __init__(self, family: str, sr: int, rng: np.random.Generator):
        self.sr, self.rng = sr, rng
        self.t = _timbre(family, rng)
        vowels = [[(700, 130, 1.0), (1220, 150, 0.5), (2600, 250, 0.25)],
                  [(400, 100, 1.0), (800, 120, 0.5), (2600, 250, 0.2)],
                  [(300, 80, 1.0), (870, 120, 0.3), (2250, 200, 0.2)]]
        self.params = {"drawbars": rng.uniform(0, 1, 6) * np.array([1, 1, 0.7, 0.5, 0.4, 0.3]),
                       "rolloff": rng.uniform(1.0, 2.0), "hammer": rng.uniform(0.2, 1.5),
                       "formants": vowels[int(rng.integers(0, 3))]}
        self.cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def tables(self, pitch: int) -> tuple[np.ndarray, np.ndarray]:
        if pitch not in self.cache:
            f0 = float(midi_hz(pitch))
            amps = _harmonics(self.t.spectrum, f0, self.sr, self.params)
            self.cache[pitch] = (_table(amps, 1e6, f0), _table(amps, self.t.dull_cutoff, f0))
        return self.cache[pitch]

    def note(self, pitch: int, dur: float, vel: int) -> np.ndarray:
        t, sr = self.t, self.sr
        held = max(dur, 0.01)
        n = int((held + t.release) * sr)
        if np.isfinite(t.decay):  # struck / plucked: stop rendering once it is inaudible
            n = min(n, int((held + t.release) * sr), int(t.decay * 7 * sr) + int(t.release * sr))
        n = max(n, 16)
        tt = np.arange(n, dtype=np.float32) / sr
        env = np.minimum(tt / t.attack, 1.0)
        if np.isfinite(t.decay):
            env = env * np.exp(-tt / t.decay)
        rel_at = int(held * sr)
        if rel_at < n:
            env[rel_at:] *= np.exp(-(tt[rel_at:] - held) / max(t.release / 5, 1e-3))
        if np.isinf(t.bright_decay):
            b = np.ones(n, np.float32)
        elif t.bright_decay > 0:
            b = np.exp(-tt / t.bright_decay)
        else:  # opening brightness (brass)
            b = 1.0 - np.exp(tt / t.bright_decay)
        b = np.clip(b * (0.4 + 0.6 * vel / 127), 0, 1)
        bright, dull = self.tables(pitch)
        f0 = float(midi_hz(pitch))
        out = np.zeros(n, np.float32)
        for u in range(t.unison):
            det = 0.0 if u == 0 else self.rng.uniform(-0.12, 0.12)
            freq = f0 * 2 ** (det / 12)
            if t.vibrato:
                rate = self.rng.uniform(4.5, 6.5)
                depth = np.minimum(tt / 0.3, 1.0) * t.vibrato
                phase = np.cumsum(freq * 2 ** (depth * np.sin(2 * np.pi * rate * tt) / 12)) / sr
            else:
                phase = freq * tt
            phase = phase + self.rng.random()
            idx = ((phase % 1.0) * TABLE).astype(np.int64) % TABLE
            out += b * bright[idx] + (1 - b) * dull[idx]
        if t.breath:
            out += t.breath * self.rng.normal(0, 1, n).astype(np.float32) * b
        return (out * env * (vel / 127) ** 1.5 / t.unison).astype(np.float32)


# ----------------------------------------------------------------------------- drums


def _bandnoise(n: int, sr: int, lo: float | None, hi: float | None, rng: np.random.Generator) -> np.ndarray:
    x = rng.normal(0, 1, n)
    if lo and hi:
        sos = butter(2, [lo, min(hi, 0.45 * sr)], btype="bandpass", fs=sr, output="sos")
    elif lo:
        sos = butter(2, lo, btype="highpass", fs=sr, output="sos")
    elif hi:
        sos = butter(2, hi, btype="lowpass", fs=sr, output="sos")
    else:
        return x
    return sosfilt(sos, x)


def _metal(n: int, sr: int, rng: np.random.Generator, base: float) -> np.ndarray:
    tt = np.arange(n) / sr
    ratios = np.array([1.0, 1.34, 1.66, 1.87, 2.43, 3.15]) * rng.uniform(0.9, 1.1)
    x = sum(np.sign(np.sin(2 * np.pi * base * r * tt + rng.uniform(0, 6))) for r in ratios)
    return x + 2.0 * rng.normal(0, 1, n)


def _drum_hit(cls: str, key: int, sr: int, rng: np.random.Generator, p: dict) -> np.ndarray:
    u = rng.uniform
    if cls == "kick":
        n = int(0.5 * sr)
        tt = np.arange(n) / sr
        f = p["kick_f"] + p["kick_sweep"] * np.exp(-tt * p["kick_k"])
        y = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-tt / p["kick_decay"])
        y[: int(0.004 * sr)] += 0.3 * _bandnoise(int(0.004 * sr), sr, None, 3000, rng)
        return y
    if cls == "snare":
        n = int(0.4 * sr)
        tt = np.arange(n) / sr
        tone = np.sin(2 * np.pi * p["snare_f"] * tt) * np.exp(-tt * 25)
        noise = _bandnoise(n, sr, p["snare_lo"], 9000, rng) * np.exp(-tt / p["snare_decay"])
        return 0.5 * tone + p["snare_mix"] * noise
    if cls == "hats":
        open_ = key == 46
        n = int((0.5 if open_ else 0.12) * sr)
        tt = np.arange(n) / sr
        x = _metal(n, sr, rng, p["hat_base"])
        sos = butter(2, p["hat_hp"], btype="highpass", fs=sr, output="sos")
        return sosfilt(sos, x) * np.exp(-tt / (p["hat_open"] if open_ else p["hat_decay"])) * 0.3
    if cls == "cymbals":
        ride = key in (51, 53, 59)
        n = int((1.2 if ride else 2.2) * sr)
        tt = np.arange(n) / sr
        x = _metal(n, sr, rng, p["hat_base"] * (0.7 if ride else 0.85))
        sos = butter(2, 2500 if ride else 3000, btype="highpass", fs=sr, output="sos")
        return sosfilt(sos, x) * np.exp(-tt / (0.35 if ride else 0.8)) * 0.3
    if cls == "toms":
        n = int(0.6 * sr)
        tt = np.arange(n) / sr
        f0 = 60 + (key - 41) * 14 * u(0.9, 1.1)
        f = f0 * (1 + 0.6 * np.exp(-tt * 30))
        return np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-tt / 0.25)
    # perc: shakers / tambourine / congas / cowbell
    n = int(0.25 * sr)
    tt = np.arange(n) / sr
    if key in (54, 69, 70):  # tambourine, cabasa, maracas
        return _bandnoise(n, sr, 4000, 12000, rng) * np.exp(-tt * 40) * (np.minimum(tt / 0.01, 1))
    if key in (56,):  # cowbell
        x = np.sign(np.sin(2 * np.pi * 540 * tt)) + np.sign(np.sin(2 * np.pi * 800 * tt))
        sos = butter(2, [400, 3000], btype="bandpass", fs=sr, output="sos")
        return sosfilt(sos, x) * np.exp(-tt * 15) * 0.5
    f0 = 180 + 9 * (key - 60)
    return (np.sin(2 * np.pi * f0 * tt) + 0.1 * _bandnoise(n, sr, 1500, 6000, rng)) * np.exp(-tt * 18)


def _drum_params(rng: np.random.Generator) -> dict:
    u = rng.uniform
    return {"kick_f": u(40, 60), "kick_sweep": u(60, 180), "kick_k": u(20, 45), "kick_decay": u(0.12, 0.35),
            "snare_f": u(160, 240), "snare_lo": u(600, 1800), "snare_decay": u(0.06, 0.18),
            "snare_mix": u(0.5, 1.0), "hat_base": u(300, 450), "hat_hp": u(6000, 9000),
            "hat_decay": u(0.02, 0.06), "hat_open": u(0.15, 0.35)}


# ----------------------------------------------------------------------------- parts


def render_numpy(part: Part, n_samples: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Render ``part`` to ``(channels, n_samples)`` float32 (2 channels if ``part.stereo``)."""
    ch = 2 if part.stereo else 1
    out = np.zeros((ch, n_samples), np.float32)
    pans = None
    if part.drum:
        p = _drum_params(rng)
        variants: dict[int, list[np.ndarray]] = {}
        for note in part.notes:
            if note.pitch not in variants:
                cls = drum_class(note.pitch)
                variants[note.pitch] = [_drum_hit(cls, note.pitch, sr, rng, p).astype(np.float32) for _ in range(3)]
        hits = [(n, variants[n.pitch][int(rng.integers(0, 3))] * (n.velocity / 127) ** 1.5) for n in part.notes]
    else:
        voice = PitchedVoice(part.family, sr, rng)
        hits = [(n, voice.note(n.pitch, n.duration, n.velocity)) for n in part.notes]
    if ch == 2:
        width = rng.uniform(0.3, 1.0)
        pans = {p: 0.5 + width * (rng.random() - 0.5) for p in sorted({n.pitch for n, _ in hits})}
    for n, sig in hits:
        i = int(round(n.start * sr))
        if i >= n_samples:
            continue
        m = min(len(sig), n_samples - i)
        if ch == 1:
            out[0, i:i + m] += sig[:m]
        else:
            pan = pans[n.pitch]
            out[0, i:i + m] += sig[:m] * np.sqrt(1 - pan)
            out[1, i:i + m] += sig[:m] * np.sqrt(pan)
    return out
