"""Read a Standard MIDI File into parts (needs ``mido``): one part per track and channel,
times in seconds through the file's tempo map; channel 10 is drums."""

from __future__ import annotations

from pathlib import Path

from .score import Note


def read_midi(path: str | Path) -> tuple[list[dict], float]:
    """``([{"track", "channel", "program", "notes"}], first tempo in bpm)``."""
    import mido

    mid = mido.MidiFile(str(path))
    tpb = mid.ticks_per_beat
    tempo_map: list[tuple[int, int]] = []  # (tick, microseconds per beat)
    for tr in mid.tracks:
        tick = 0
        for msg in tr:
            tick += msg.time
            if msg.type == "set_tempo":
                tempo_map.append((tick, msg.tempo))
    tempo_map.sort()
    if not tempo_map or tempo_map[0][0] > 0:
        tempo_map.insert(0, (0, 500000))
    # seconds at each tempo change
    marks: list[tuple[int, float, int]] = []
    sec = 0.0
    for i, (tick, tempo) in enumerate(tempo_map):
        if i:
            ptick, _, ptempo = marks[-1]
            sec += (tick - ptick) * ptempo / 1e6 / tpb
        marks.append((tick, sec, tempo))

    def seconds(tick: int) -> float:
        k = 0
        while k + 1 < len(marks) and marks[k + 1][0] <= tick:
            k += 1
        t0, s0, tempo = marks[k]
        return s0 + (tick - t0) * tempo / 1e6 / tpb

    parts: list[dict] = []
    for tr in mid.tracks:
        tick = 0
        program: dict[int, int] = {}
        open_: dict[tuple[int, int], list[tuple[int, int]]] = {}
        by_ch: dict[int, list[Note]] = {}
        for msg in tr:
            tick += msg.time
            if msg.type == "program_change":
                program[msg.channel] = msg.program
            elif msg.type == "note_on" and msg.velocity > 0:
                open_.setdefault((msg.channel, msg.note), []).append((tick, msg.velocity))
            elif msg.type in ("note_off", "note_on"):
                stack = open_.get((msg.channel, msg.note))
                if stack:
                    t_on, vel = stack.pop(0)
                    a = seconds(t_on)
                    by_ch.setdefault(msg.channel, []).append(Note(a, max(0.01, seconds(tick) - a), msg.note, vel))
        for (ch, key), stack in open_.items():  # notes never switched off: short
            for t_on, vel in stack:
                by_ch.setdefault(ch, []).append(Note(seconds(t_on), 0.25, key, vel))
        for ch, notes in by_ch.items():
            notes.sort(key=lambda n: n.start)
            parts.append({"track": tr.name or "", "channel": ch, "program": program.get(ch, 0), "notes": notes})
    bpm = 60e6 / tempo_map[0][1]
    return parts, bpm
