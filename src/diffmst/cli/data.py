"""`diffmst data generate` and `data stats`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..errors import DiffmstError
from .common import RichReporter, _at_least, _float_in, _int_in, _MinMax, _quiet_arg


# ----------------------------------------------------------------------------- data


def _add_data(sub) -> None:
    from ..data.layout import DEFAULT_OUT, RENDERERS, SOURCES

    p = sub.add_parser("data", help="generate a multitrack training corpus, or summarise one",
                       description="Generated multitrack corpus: DIR/<song>/<stem>.flac + meta.json.")
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

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
    _quiet_arg(g)
    g.set_defaults(func=_run_generate)

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
    s.set_defaults(func=_run_stats)


# ----------------------------------------------------------------------------- handlers


def _default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS / Windows
        return max(1, os.cpu_count() or 1)


def _run_generate(args) -> None:
    from ..data.generate import Config, generate

    sources = tuple(s.strip() for s in args.sources.split(",") if s.strip()) if args.sources else ()
    cfg = Config(songs=args.songs, out=Path(args.output), seed=args.seed, jobs=args.jobs or _default_jobs(),
                 seconds=(args.seconds[0], args.seconds[1]), stems=(args.stems[0], args.stems[1]),
                 sample_rate=args.sample_rate, sources=sources, renderer=args.renderer, first=args.first)
    reporter = RichReporter(args.quiet)
    with reporter.task("generating", cfg.songs) as update:
        summary = generate(cfg, progress=update, notify=reporter.notice)
    print(f"{summary['done']} song(s) generated, {summary['skipped']} already there, in {summary['seconds']:.1f} s "
          f"-> {cfg.out} (sources: {', '.join(summary['sources'])}; renderer: {summary['renderer']}; "
          f"jobs: {cfg.jobs})")
    if summary["failed"]:
        names = ", ".join(sorted(summary["failed"]))
        raise DiffmstError(f"{len(summary['failed'])} song(s) failed ({names}); run the same command again "
                           "to retry them")


def _run_stats(args) -> None:
    from ..data.stats import corpus_stats, format_stats, plot_stats

    plot = None
    if args.plot != "none":
        plot = Path(args.plot) if args.plot else Path(args.corpus) / "stats.png"
        if args.plot or Path(args.corpus).is_dir():  # else corpus_stats says the corpus is missing
            from ..report import check_plot_output

            check_plot_output(plot, args.overwrite)  # before the (long) analysis
    stats = corpus_stats(args.corpus, max_songs=args.max_songs, jobs=args.jobs or _default_jobs())
    if args.json:
        import json

        print(json.dumps(stats["summary"], indent=1))
    else:
        print(format_stats(stats))
    if plot is not None:
        plot_stats(stats, plot, title=args.title)
        print(f"plot: {plot}", file=sys.stderr if args.json else sys.stdout)
