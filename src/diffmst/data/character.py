"""Recording character per stem, so stems do not all sound like clean General MIDI:
a microphone/room colour (spectral tilt and one broad EQ bump), a room (a synthetic
stereo impulse response: early reflections + band-dependent exponential decay), a
random level and a noise floor (hiss, sometimes mains hum).

All numpy/scipy, deterministic given the rng. :func:`apply_character` returns the new
audio and a dict of what was done, recorded in ``meta.json``.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft
from scipy.signal import fftconvolve, lfilter


def _colour(x: np.ndarray, sr: int, tilt_db_oct: float, bump_hz: float, bump_db: float, bump_oct: float) -> np.ndarray:
    """Tilt (dB/octave around 1 kHz, flat below 40 Hz and above 16 kHz) and a broad bell."""
    n = x.shape[-1]
    m = sfft.next_fast_len(n + 4096, real=True)  # padding: the filter's response does not wrap
    f = np.fft.rfftfreq(m, 1 / sr)
    oct_ = np.log2(np.clip(f, 40.0, 16000.0) / 1000.0)
    g_db = tilt_db_oct * oct_ + bump_db * np.exp(-0.5 * ((np.log2(np.maximum(f, 1.0) / bump_hz)) / bump_oct) ** 2)
    spec = sfft.rfft(x, m, axis=-1) * (10 ** (g_db / 20)).astype(np.float32)
    return sfft.irfft(spec, m, axis=-1)[..., :n].astype(np.float32)


def room_ir(sr: int, channels: int, rt60: float, predelay: float, damping: float, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room impulse response ``(channels, samples)``: direct path excluded,
    sparse early reflections then noise decaying by ``rt60`` (faster above ``damping`` Hz)."""
    n = int((predelay + rt60 * 1.1) * sr)
    tt = np.arange(n) / sr
    ir = np.zeros((channels, n))
    k = int(predelay * sr)
    for c in range(channels):
        noise = rng.normal(0, 1, n)
        m = sfft.next_fast_len(n, real=True)
        spec = sfft.rfft(noise, m)
        f = np.fft.rfftfreq(m, 1 / sr)
        low = sfft.irfft(spec * (f < damping), m)[:n]
        high = sfft.irfft(spec * (f >= damping), m)[:n]
        decay = 6.91 / rt60
        tail = low * np.exp(-tt * decay) + high * np.exp(-tt * decay * 2.5)
        tail[:k] = 0
        tail[k:] *= np.minimum((tt[k:] - predelay) / 0.01, 1.0)  # fade in after the pre-delay
        ir[c] = tail
        for _ in range(6):  # early reflections
            j = k + int(rng.uniform(0.001, 0.04) * sr)
            if j < n:
                ir[c, j] += rng.uniform(-1, 1) * 8
    ir /= np.sqrt((ir ** 2).sum(axis=1, keepdims=True)) + 1e-12
    return ir.astype(np.float32)


# Paul Kellet's economy pink-noise filter (poles/zeros approximating 1/f above ~20 Hz)
_PINK_B = [0.049922035, -0.095993537, 0.050612699, -0.004408786]
_PINK_A = [1, -2.494956002, 2.017265875, -0.522189400]


def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    x = lfilter(_PINK_B, _PINK_A, rng.normal(0, 1, n + 2000))[2000:]
    return (x / (x.std() + 1e-12)).astype(np.float32)


def apply_character(x: np.ndarray, sr: int, rng: np.random.Generator, stereo: bool,
                    clean: bool = False) -> tuple[np.ndarray, dict]:
    """Give a dry stem ``(channels, samples)`` a recording character.

    ``stereo`` makes the output 2 channels (a mono source gets a stereo room); ``clean``
    skips colour, room and noise (level only). Returns ``(audio, info)`` with the peak
    below -1 dBFS.
    """
    x = np.asarray(x, np.float32)
    info: dict = {}
    if not clean:
        tilt = float(rng.uniform(-2.0, 1.5))
        bump_hz, bump_db, bump_oct = float(np.exp(rng.uniform(np.log(150), np.log(6000)))), float(rng.uniform(-5, 5)), \
            float(rng.uniform(0.5, 1.5))
        x = _colour(x, sr, tilt, bump_hz, bump_db, bump_oct)
        info.update(tilt_db_per_octave=round(tilt, 2), eq_bump_hz=round(bump_hz), eq_bump_db=round(bump_db, 1))
    ch = 2 if stereo else 1
    widened = ch == 2 and x.shape[0] == 1  # a mono source needs a stereo room to be stereo
    if x.shape[0] != ch:
        x = np.repeat(x[:1], 2, axis=0) if ch == 2 else x.mean(axis=0, keepdims=True)
    if not clean and (rng.random() < 0.6 or widened):
        rt60 = float(rng.uniform(0.2, 1.6))
        wet_db = float(rng.uniform(-22, -8))
        ir = room_ir(sr, ch, rt60, float(rng.uniform(0.0, 0.03)), float(rng.uniform(2000, 8000)), rng)
        n = x.shape[1]
        wet = np.stack([fftconvolve(x[c], ir[c])[:n] for c in range(ch)]).astype(np.float32)
        rms_dry = np.sqrt((x ** 2).mean()) + 1e-12
        rms_wet = np.sqrt((wet ** 2).mean()) + 1e-12
        x = x + wet * (rms_dry / rms_wet) * 10 ** (wet_db / 20)
        info.update(room_rt60_s=round(rt60, 2), room_wet_db=round(wet_db, 1))
    peak_db = float(rng.uniform(-18.0, -3.0))
    peak = float(np.abs(x).max()) + 1e-12
    x = x * (10 ** (peak_db / 20) / peak)
    info["peak_dbfs"] = round(peak_db, 1)
    if not clean:
        floor_db = float(rng.uniform(-92, -66))
        noise = np.stack([_pink(x.shape[1], rng) for _ in range(ch)]) * 10 ** (floor_db / 20)
        if rng.random() < 0.15:
            mains = float(rng.choice([50.0, 60.0]))
            tt = np.arange(x.shape[1]) / sr
            hum = sum(np.sin(2 * np.pi * mains * h * tt + rng.uniform(0, 6)) / h for h in (1, 2, 3, 5))
            noise += hum * 10 ** ((floor_db + rng.uniform(0, 10)) / 20)
            info["hum_hz"] = mains
        x = x + noise.astype(np.float32)
        info["noise_floor_dbfs"] = round(floor_db, 1)
    lim = 10 ** (-1 / 20)
    peak = float(np.abs(x).max())
    if peak > lim:
        x = x * (lim / peak)
    return x.astype(np.float32), info
