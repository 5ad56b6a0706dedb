"""Render parts with fluidsynth (libfluidsynth through ctypes) and a General MIDI soundfont.

Needs the Debian packages ``fluidsynth`` and ``fluid-soundfont-gm`` (or any libfluidsynth
2.x and a GM ``.sf2``; set ``DIFFMST_SOUNDFONT`` to choose the file). :func:`available`
says whether both are there; without them the generator uses the numpy synth.
The soundfont is loaded once per process; each stem plays on a fresh synth sharing it; built-in
reverb and chorus are off (the room comes from :mod:`.character`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

import numpy as np

from .score import Part

SOUNDFONTS = [
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/usr/local/share/soundfonts/default.sf2",
    "/opt/homebrew/share/soundfonts/default.sf2",
]
SOUNDFONT_LICENCE = {"FluidR3_GM.sf2": "MIT (FluidR3_GM by Frank Wen)"}
_LIB = None
_SYNTHS: dict[int, "FluidSynth"] = {}


def _lib():
    global _LIB
    if _LIB is None:
        name = ctypes.util.find_library("fluidsynth")
        cands = [name] if name else []
        cands += ["libfluidsynth.so.3", "libfluidsynth.so.2", "libfluidsynth.dylib"]
        for c in cands:
            try:
                _LIB = ctypes.CDLL(c)
                break
            except OSError:
                continue
        else:
            _LIB = False
        if _LIB:
            L = _LIB
            vp, ci, cd, cs = ctypes.c_void_p, ctypes.c_int, ctypes.c_double, ctypes.c_char_p
            L.new_fluid_settings.restype = vp
            L.fluid_settings_setnum.argtypes = [vp, cs, cd]
            L.fluid_settings_setint.argtypes = [vp, cs, ci]
            L.new_fluid_synth.restype = vp
            L.new_fluid_synth.argtypes = [vp]
            L.fluid_synth_sfload.argtypes = [vp, cs, ci]
            L.fluid_synth_program_select.argtypes = [vp, ci, ci, ci, ci]
            L.fluid_synth_noteon.argtypes = [vp, ci, ci, ci]
            L.fluid_synth_noteoff.argtypes = [vp, ci, ci]
            L.fluid_synth_cc.argtypes = [vp, ci, ci, ci]
            L.fluid_synth_system_reset.argtypes = [vp]
            L.fluid_synth_get_sfont_by_id.restype = vp
            L.fluid_synth_get_sfont_by_id.argtypes = [vp, ci]
            L.fluid_synth_add_sfont.argtypes = [vp, vp]
            L.fluid_synth_remove_sfont.argtypes = [vp, vp]
            L.delete_fluid_synth.argtypes = [vp]
            L.fluid_synth_write_float.argtypes = [vp, ci, vp, ci, ci, vp, ci, ci]
            L.fluid_set_log_function.argtypes = [ci, vp, vp]
            for level in range(5):  # silence fluidsynth's own messages
                L.fluid_set_log_function(level, None, None)
    return _LIB or None


def soundfont() -> Path | None:
    """The General MIDI soundfont to use, or None."""
    env = os.environ.get("DIFFMST_SOUNDFONT")
    for c in ([env] if env else []) + SOUNDFONTS:
        if c and Path(c).is_file():
            return Path(c).resolve()
    return None


def available() -> bool:
    """True when libfluidsynth and a GM soundfont are installed."""
    return soundfont() is not None and _lib() is not None


class FluidSynth:
    """A soundfont loaded once; :meth:`render` plays each part on a fresh synth that
    shares it, so a stem never depends on what was rendered before (fluidsynth keeps
    state such as its 64-sample block position and voice history across a reset)."""

    def __init__(self, sr: int, sf2: Path):
        L = _lib()
        if L is None:
            raise RuntimeError("libfluidsynth not found")
        self.L, self.sr = L, sr
        self.settings = L.new_fluid_settings()
        st = self.settings
        L.fluid_settings_setnum(st, b"synth.sample-rate", float(sr))
        L.fluid_settings_setnum(st, b"synth.gain", 0.5)
        L.fluid_settings_setint(st, b"synth.reverb.active", 0)
        L.fluid_settings_setint(st, b"synth.chorus.active", 0)
        L.fluid_settings_setint(st, b"synth.polyphony", 256)
        L.fluid_settings_setint(st, b"synth.cpu-cores", 1)
        self.loader = L.new_fluid_synth(st)
        sfid = L.fluid_synth_sfload(self.loader, str(sf2).encode(), 1)
        if sfid < 0:
            raise RuntimeError(f"{sf2}: fluidsynth cannot load this soundfont")
        self.sfont = L.fluid_synth_get_sfont_by_id(self.loader, sfid)

    def _fresh(self):
        synth = self.L.new_fluid_synth(self.settings)
        sfid = self.L.fluid_synth_add_sfont(synth, self.sfont)
        return synth, sfid

    def _free(self, synth) -> None:
        self.L.fluid_synth_remove_sfont(synth, self.sfont)
        self.L.delete_fluid_synth(synth)

    def render(self, part: Part, program: int, n_samples: int) -> np.ndarray:
        """``(2, n_samples)`` float32: ``part`` played on GM ``program`` (kit for drums)."""
        s, sfid = self._fresh()
        try:
            return self._render(s, sfid, part, program, n_samples)
        finally:
            self._free(s)

    def _render(self, s, sfid: int, part: Part, program: int, n_samples: int) -> np.ndarray:
        L = self.L
        ch = 9 if part.drum else 0
        L.fluid_synth_program_select(s, ch, sfid, 128 if part.drum else 0, program)
        L.fluid_synth_cc(s, ch, 7, 110)   # volume
        L.fluid_synth_cc(s, ch, 10, 64)   # pan centre (stereo comes from the preset)
        L.fluid_synth_cc(s, ch, 91, 0)    # no reverb send
        L.fluid_synth_cc(s, ch, 93, 0)    # no chorus send
        events: list[tuple[int, int, int, int]] = []  # (sample, order, key, velocity); offs first
        for n in part.notes:
            a = int(round(n.start * self.sr))
            b = max(a + 1, int(round((n.start + n.duration) * self.sr)))
            events.append((a, 1, n.pitch, n.velocity))
            if not part.drum:
                events.append((b, 0, n.pitch, 0))
        events.sort()
        out = np.zeros((2, n_samples), np.float32)
        pos = 0
        on: dict[int, int] = {}  # key -> number of sounding notes (retriggers)
        for t, kind, key, vel in events:
            t = min(t, n_samples)
            if t > pos:
                self._write(s, out, pos, t)
                pos = t
            if pos >= n_samples:
                break
            if kind == 1:
                if on.get(key, 0):
                    L.fluid_synth_noteoff(s, ch, key)
                L.fluid_synth_noteon(s, ch, key, int(np.clip(vel, 1, 127)))
                on[key] = on.get(key, 0) + 1
            else:
                on[key] = on.get(key, 0) - 1
                if on[key] <= 0:
                    on[key] = 0
                    L.fluid_synth_noteoff(s, ch, key)
        if pos < n_samples:
            self._write(s, out, pos, n_samples)
        return out

    def _write(self, synth, out: np.ndarray, a: int, b: int) -> None:
        left, right = out[0, a:b], out[1, a:b]
        self.L.fluid_synth_write_float(synth, b - a, left.ctypes.data, 0, 1, right.ctypes.data, 0, 1)


def synth_for(sr: int) -> FluidSynth:
    """This process's synth at ``sr`` (soundfont loaded once per process and rate)."""
    if sr not in _SYNTHS:
        sf2 = soundfont()
        if sf2 is None:
            raise RuntimeError("no General MIDI soundfont found")
        _SYNTHS[sr] = FluidSynth(sr, sf2)
    return _SYNTHS[sr]


def render_fluid(part: Part, program: int, n_samples: int, sr: int) -> np.ndarray:
    return synth_for(sr).render(part, program, n_samples)
