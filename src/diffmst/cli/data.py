"""`diffmst data generate` and `data stats`."""

from __future__ import annotations

import argparse
from typing import Callable


from .common import (_float_in, _int_in)


# ----------------------------------------------------------------------------- data


def _add_data(sub) -> None:
    from ..data.layout import DEFAULT_OUT, RENDERERS, SOURCES

    p = sub.add_parser("data", help="generate a multitrack training corpus, or summarise one",
                       description="Generated multitrack corpus: DIR/<song>/<stem>.flac + meta.json.")
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    def _generate(args) -> None:
        from ..data.commands import run_generate

        run_generate(args)

    def _stats(args) -> None:
        from ..data.commands import run_stats

        run_stats(args)

    def _at_least(lo: int) -> Callable[[str], int]:
        """An argparse type: a whole number >= ``lo`` (bounded ranges: :func:`_int_in`)."""

        def parse(text: str) -> int:
            try:
                v = int(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
            if v < lo:
                raise argparse.ArgumentTypeError(f"must be >= {lo}, got {v}")
            return v

        return parse

    class _MinMax(argparse.Action):
        """``MIN MAX`` pairs (after their type): refuses MIN > MAX."""

        def __call__(self, parser, namespace, values, option_string=None):
            if values[0] > values[1]:
                raise argparse.ArgumentError(self, f"MIN {values[0]:g} is greater than MAX {values[1]:g}")
            setattr(namespace, self.dest, list(values))

    g = dsub.add_parser("generate", help="generate songs as separate stems",
                        description="Generate songs from several music sources (procedural patterns, MMA "
                                    "arrangements, music21 scores), rendered per instrument (fluidsynth + a GM "
                                    "soundfont, or the numpy synth) with a recording character per stem. "
                                    "Deterministic from --seed; finished songs are kept (resume).")
    g.add_argument("--songs", "-n", type=_at_least(0), default=200, help="number of songs (default: 200)")
    g.add_argument("--output", "-o", default=DEFAULT_OUT, help=f"corpus folder (default: {DEFAULT_OUT})")
    g.add_argument("--seed", type=_at_least(0), default=0, help="random seed, >= 0 (default: 0)")
    g.add_argument("--jobs", "-j", type=_at_least(0), default=0, help="parallel processes (default, 0: all cores)")
    g.add_argument("--seconds", type=_float_in(1.0, 1800.0, "s"), nargs=2, action=_MinMax, default=[30.0, 90.0],
                   metavar=("MIN", "MAX"), help="song length range in seconds, 1..1800 (default: 30 90)")
    g.add_argument("--stems", type=_int_in(1, 64), nargs=2, action=_MinMax, default=[4, 16],
                   metavar=("MIN", "MAX"), help="stems per song, 1..64 (default: 4 16)")
    g.add_argument("--sources", default="", help=f"comma-separated subset of {','.join(SOURCES)} "
                   "(default: every installed one)")
    g.add_argument("--renderer", choices=RENDERERS, default="auto",
                   help="auto: fluidsynth when installed, else the numpy synth")
    g.add_argument("--sample-rate", type=_int_in(8000, 192000, "Hz"), default=44100, help="in Hz (default: 44100)")
    g.add_argument("--first", type=_at_least(0), default=0, help="index of the first song (to extend a corpus)")
    g.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    g.set_defaults(func=_generate)

    s = dsub.add_parser("stats", help="counts, durations, instruments, loudness and feature plots of a corpus",
                        description="Summarise a corpus folder (one sub-folder per song with audio files; "
                                    "meta.json is used where present) and plot its distributions.")
    s.add_argument("corpus", help="corpus folder")
    s.add_argument("--plot", default="", help="PNG to write (default: CORPUS/stats.png; 'none' for no plot)")
    s.add_argument("--title", default="", help="plot title")
    s.add_argument("--overwrite", action="store_true", help="replace an existing plot")
    s.add_argument("--max-songs", type=_at_least(0), default=0,
                   help="analyse at most this many songs (default, 0: all)")
    s.add_argument("--jobs", "-j", type=_at_least(0), default=0, help="parallel processes (default, 0: all cores)")
    s.add_argument("--json", action="store_true", help="print the summary as JSON")
    s.set_defaults(func=_stats)


