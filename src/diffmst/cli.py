"""The ``diffmst`` command.

Each sub-command is one ``_add_<name>(subparsers)`` function that declares its arguments
and sets ``func``; :data:`COMMANDS` lists them in help order. User errors
(:class:`~diffmst.errors.DiffmstError`) print ``diffmst: error: ...`` and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from .errors import DiffmstError
from .optimize import ANALYSIS_SR, MIN_ANALYSIS_SR, PEAK_DBFS, TARGET_LUFS, Options  # numpy only; `import diffmst` loads it anyway

EXIT_USAGE = 2


def notice(msg: str) -> None:
    """A notice for the user (stderr, so stdout stays clean for data)."""
    print(f"diffmst: note: {msg}", file=sys.stderr)


def _progress_bar(description: str):
    """A rich progress bar on stderr; returns ``(callback(done, total), context)``."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.console import Console

    prog = Progress(TextColumn(description), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                    TimeRemainingColumn(), console=Console(stderr=True), transient=True)
    task = prog.add_task(description, total=None)

    def update(done: int, total: int) -> None:
        prog.update(task, completed=done, total=total)

    return update, prog


# ----------------------------------------------------------------------------- shared options
# One declaration per option that several commands take, so the same option reads, checks
# and fails the same way everywhere.


def _float_in(lo: float, hi: float, unit: str = "") -> Callable[[str], float]:
    """An argparse type: a finite number in [lo, hi]."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not (lo <= v <= hi):  # also refuses nan
            raise argparse.ArgumentTypeError(f"{text} is outside [{lo:g}, {hi:g}] {unit}".rstrip())
        return v

    return parse


def _float_above(lo: float, hi: float, unit: str = "") -> Callable[[str], float]:
    """An argparse type: a finite number in (lo, hi]."""
    inner = _float_in(lo, hi, unit)

    def parse(text: str) -> float:
        v = inner(text)
        if v <= lo:
            raise argparse.ArgumentTypeError(f"{text} must be more than {lo:g} {unit}".rstrip())
        return v

    return parse


def _int_in(lo: int, hi: int, unit: str = "", also: tuple[int, ...] = ()) -> Callable[[str], int]:
    """An argparse type: a whole number in [lo, hi] (or one of ``also``)."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not (lo <= v <= hi) and v not in also:
            extra = "".join(f" or {a}" for a in also)
            raise argparse.ArgumentTypeError(f"{text} is outside [{lo}, {hi}]{extra} {unit}".rstrip())
        return v

    return parse


def _tracks_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("tracks", nargs="+", metavar="TRACKS", help="folder of audio files, or audio files")


def _audio_output_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--output", "-o", required=required, help="output audio file (.wav, .flac, .aiff)")
    _bit_depth_arg(p)


def _bit_depth_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bit-depth", choices=["16", "24", "32f"], default="24",
                   help="16 or 24-bit integer, or 32-bit float (wav/aiff only) (default: 24)")


def _overwrite_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")


def _quiet_arg(p: argparse.ArgumentParser) -> None:
    # every command that works on audio takes it, so one command line style fits them all
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar (notes and errors still print)")


def _lufs_arg(p: argparse.ArgumentParser, default: float, help: str) -> None:
    p.add_argument("--lufs", type=_float_in(-70.0, 0.0, "LUFS"), default=default, help=help)


# ----------------------------------------------------------------------------- render


def render_song(track_inputs, settings_path, output, bit_depth="24", overwrite=False, quiet=False):
    """Render tracks with a settings file to ``output`` at the tracks' sample rate."""
    import torch

    from .audio import check_audio_output, load_tracks, write_audio
    from .console import Settings, render

    check_audio_output(output, overwrite, bit_depth)  # fail before any work
    settings = Settings.load(settings_path)
    tracks = load_tracks(track_inputs, notify=notice)
    extra = sorted(set(settings.track_names) - set(tracks.names))
    if extra:
        notice(f"{settings_path}: settings for tracks not given are ignored: {', '.join(extra)}")
    tp = settings.for_tracks(tracks.names, where=str(settings_path))
    audio = torch.from_numpy(tracks.audio)[None, :, None]
    if quiet:
        mix = render(audio, tp[None], settings.master_params[None], tracks.sample_rate)
    else:
        update, prog = _progress_bar("rendering")
        with prog:
            mix = render(audio, tp[None], settings.master_params[None], tracks.sample_rate, progress=update)
    return write_audio(output, mix[0].numpy(), tracks.sample_rate, bit_depth, overwrite, notify=notice)


def _cmd_render(args) -> None:
    out = render_song(args.tracks, args.params, args.output, args.bit_depth, args.overwrite, args.quiet)
    print(out)


def _add_render(sub) -> None:
    p = sub.add_parser("render", help="mix tracks with a settings file",
                       description="Render TRACKS (a folder of audio files, or files) through the console "
                                   "with the settings in --params; the mix keeps the tracks' sample rate.")
    _tracks_arg(p)
    p.add_argument("--params", "-p", required=True, help="settings JSON (see `diffmst params --template`)")
    _audio_output_args(p)
    _overwrite_arg(p)
    _quiet_arg(p)
    p.set_defaults(func=_cmd_render)


# ----------------------------------------------------------------------------- params


def _cmd_params(args) -> None:
    from .audio import check_output, probe_track_names
    from .console import Settings

    names = probe_track_names(args.template)
    settings = Settings.default(names)
    if args.output is None:
        import json

        print(json.dumps(settings.to_dict(), indent=2))
    else:
        check_output(args.output, args.overwrite)
        settings.save(args.output, overwrite=args.overwrite)
        print(args.output)


def _add_params(sub) -> None:
    p = sub.add_parser("params", help="write a default settings file for some tracks",
                       description="Write neutral console settings (unity gain, flat EQ, no compression, "
                                   "centred; stereo files hard left/right) for TRACKS, to edit and render.")
    p.add_argument("--template", "-t", nargs="+", required=True, metavar="TRACKS",
                   help="folder of audio files, or audio files")
    p.add_argument("--output", "-o", help="settings JSON to write (default: print to stdout)")
    _overwrite_arg(p)
    p.set_defaults(func=_cmd_params)


# ----------------------------------------------------------------------------- demo


def _cmd_demo(args) -> None:
    from .console import Settings
    from .examples import write_example_song

    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise DiffmstError(f"{out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise DiffmstError(f"{out}: folder exists and is not empty (use --overwrite to write into it)")
    out.mkdir(parents=True, exist_ok=True)
    tracks_dir = out / "tracks"
    write_example_song(tracks_dir, overwrite=True)
    example = Path(__file__).parent / "assets" / "demo_settings.json"
    settings = Settings.load(example)
    settings.save(out / "settings.json", overwrite=True)
    mix = render_song([tracks_dir], out / "settings.json", out / "mix.wav", overwrite=True, quiet=True)
    print(f"example tracks:  {tracks_dir}\nsettings:        {out / 'settings.json'}\nmix:             {mix}")


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="make example tracks and render them with example settings")
    p.add_argument("--output", "-o", default="demo-out", help="folder to write into (default: demo-out)")
    p.add_argument("--overwrite", action="store_true", help="write into an existing, non-empty folder")
    p.set_defaults(func=_cmd_demo)


# ----------------------------------------------------------------------------- data


def _add_data(sub) -> None:
    from .data.layout import DEFAULT_OUT, RENDERERS, SOURCES

    p = sub.add_parser("data", help="generate a multitrack training corpus, or summarise one",
                       description="Generated multitrack corpus: DIR/<song>/<stem>.flac + meta.json.")
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    def _generate(args) -> None:
        from .data.commands import run_generate

        run_generate(args)

    def _stats(args) -> None:
        from .data.commands import run_stats

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


# ----------------------------------------------------------------------------- optimize / analyze / baseline


def _loudness_arg(text: str) -> str | float:
    """``--loudness``: 'reference' or LUFS in [-70, 0]."""
    if text.strip().lower() == "reference":
        return "reference"
    try:
        return _float_in(-70.0, 0.0, "LUFS")(text)
    except argparse.ArgumentTypeError as e:
        raise argparse.ArgumentTypeError(f"expected 'reference' or a loudness in LUFS: {e}") from None


def _add_optimize(sub) -> None:
    o = Options()
    p = sub.add_parser("optimize", help="mix tracks like a reference by optimising the console (no network)",
                       description="Optimise the console settings for TRACKS so that the mix matches REFERENCE's "
                                   "style (AF loss: RMS, crest, stereo width/imbalance, Bark spectra), by gradient "
                                   "descent from equal-loudness settings on several windows of the song; then "
                                   "render the whole song at the reference's loudness through a true-peak limiter "
                                   "(never above -1 dBTP). Writes OUTDIR/mix.wav, settings.json (renders the same "
                                   "mix with `diffmst render`), report.json and report.png.")
    p.add_argument("inputs", nargs="+", metavar="TRACKS... REFERENCE",
                   help="folder of audio files, or audio files; then the reference mix (one audio file), "
                        "unless it is given with --reference")
    p.add_argument("--reference", "-r", help="the reference mix; then every positional argument is a track "
                   "(needed when the reference sits in the tracks' folder)")
    p.add_argument("--output", "-o", required=True, help="output folder")
    p.add_argument("--steps", type=_int_in(0, 100_000), default=o.steps, help=f"Adam steps (default: {o.steps})")
    p.add_argument("--lr", type=_float_above(0.0, 10.0), default=o.lr,
                   help=f"learning rate, normalised units (default: {o.lr:g})")
    p.add_argument("--seed", type=_int_in(0, 2**32 - 1), default=0, help="window placement seed (default: 0)")
    p.add_argument("--device", default="cpu", help="torch device for the optimisation (default: cpu)")
    p.add_argument("--windows", type=_int_in(1, 64), default=o.windows,
                   help=f"analysis windows across the song (default: {o.windows})")
    p.add_argument("--window", type=_float_in(0.5, 60.0, "s"), default=o.window_s,
                   help=f"window length in seconds (default: {o.window_s:g})")
    p.add_argument("--analysis-sr", type=_int_in(MIN_ANALYSIS_SR, 192_000, "Hz"), default=o.analysis_sr,
                   help=f"analysis sample rate, Hz (default: {o.analysis_sr}; the paper's Bark bands reach "
                        "20 kHz, lower rates cannot match the top ones)")
    p.add_argument("--prior", type=_float_in(0.0, 100.0), default=o.prior,
                   help=f"weight of the pull towards the start (default: {o.prior:g})")
    p.add_argument("--loudness", type=_loudness_arg, default=o.loudness, metavar="reference|LUFS",
                   help="loudness of the mix: 'reference' (the reference's integrated loudness, reached through "
                        "the master's true-peak limiter) or a number in LUFS, e.g. -16 (default: reference)")
    p.add_argument("--peak", type=_float_in(-20.0, 0.0, "dBTP"), default=o.peak_dbtp,
                   help=f"the mix's true peak never passes this (default: {o.peak_dbtp:g} dBTP)")
    p.add_argument("--unlink-stereo", action="store_true",
                   help="optimise a stereo file's L and R as unrelated tracks (default: they share one gain, EQ "
                        "and compressor setting, so the file's balance is kept, each with its own pan)")
    p.add_argument("--threads", type=_int_in(0, 1024), default=0, help="torch threads (default: 0, torch's choice)")
    _bit_depth_arg(p)
    p.add_argument("--no-plot", action="store_true", help="do not write report.png")
    _overwrite_arg(p)
    _quiet_arg(p)

    def run(args) -> None:
        from .optimize import run_optimize

        run_optimize(args, notice)

    p.set_defaults(func=run)


def _add_analyze(sub) -> None:
    p = sub.add_parser("analyze", help="print (and plot) the style features of a song, or of a mix vs a reference",
                       description="Style features of FILE (and REFERENCE): RMS and crest factor, stereo width "
                                   "and imbalance, Bark spectra of mid and side, measured loudness-normalised. With "
                                   "two files, also the AF loss between them (the same number `optimize` reports "
                                   "for its mix and reference). In plots the reference is black.")
    p.add_argument("file", help="audio file (a mix)")
    p.add_argument("reference", nargs="?", help="second file to compare with (a reference)")
    p.add_argument("--plot", help="write a PNG: Bark spectra mid/side overlaid, dynamics and stereo numbers")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--analysis-sr", type=_int_in(MIN_ANALYSIS_SR, 384_000, "Hz", also=(0,)), default=ANALYSIS_SR,
                   help=f"resample to this rate first, as optimize does (0: each file's own rate; default: {ANALYSIS_SR})")
    _lufs_arg(p, TARGET_LUFS, f"normalise to this loudness first (default: {TARGET_LUFS:g})")
    p.add_argument("--no-normalize", action="store_true", help="measure the files as they are")
    p.add_argument("--metric", choices=["paper", "robust"], default="paper",
                   help="paper: the paper's AF measure on the whole songs at the reference's rate, the number "
                        "`optimize` reports and results are judged by (--analysis-sr, --lufs and --no-normalize "
                        "do not apply); robust: the frame-wise, high-passed features of the style losses, a "
                        "different number (default: paper)")
    _overwrite_arg(p)

    def run(args) -> None:
        from .report import run_analyze

        run_analyze(args, notice)

    p.set_defaults(func=run)


def _add_baseline(sub) -> None:
    p = sub.add_parser("baseline", help="the equal-loudness mix (every track equally loud, centred, no processing)",
                       description="Mix TRACKS with every source at the same loudness, mono tracks centred and "
                                   "stereo files hard left/right, no EQ or compression, the mix at -16 LUFS (lower "
                                   "if a peak would pass -1 dBFS): the floor every mixing method must beat.")
    _tracks_arg(p)
    _audio_output_args(p)
    p.add_argument("--params", "-p", help="also write the settings JSON here")
    _lufs_arg(p, TARGET_LUFS, f"mix loudness (default: {TARGET_LUFS:g})")
    p.add_argument("--peak", type=_float_in(-20.0, 0.0, "dBTP"), default=PEAK_DBFS,
                   help=f"true-peak ceiling (default: {PEAK_DBFS:g} dBTP)")
    _overwrite_arg(p)
    _quiet_arg(p)

    def run(args) -> None:
        from .optimize import run_baseline

        run_baseline(args, notice)

    p.set_defaults(func=run)


# ----------------------------------------------------------------------------- main

COMMANDS: list[Callable] = [_add_render, _add_params, _add_demo, _add_data, _add_optimize, _add_analyze, _add_baseline]


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="diffmst", description="Mix raw tracks in the style of a reference "
                                     "song with a differentiable mixing console.")
    parser.add_argument("--version", action="version", version=f"diffmst {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except DiffmstError as e:
        print(f"diffmst: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # e.g. `diffmst params -t tracks | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        return _interrupted()
    except SystemError as e:
        # Ctrl-C inside a numba kernel surfaces as "SystemError: CPUDispatcher(...) returned
        # a result with an exception set", the KeyboardInterrupt chained to it
        if isinstance(e.__cause__ or e.__context__, KeyboardInterrupt):
            return _interrupted()
        raise
    return 0


def _interrupted() -> int:
    print("diffmst: interrupted (nothing half-written is left behind)", file=sys.stderr)
    return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
