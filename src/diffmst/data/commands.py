"""``diffmst data generate`` and ``diffmst data stats`` (argument parsing lives in diffmst.cli.data)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..errors import DiffmstError


def _note(msg: str) -> None:
    print(f"diffmst: note: {msg}", file=sys.stderr)


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS / Windows
        return max(1, os.cpu_count() or 1)


def run_generate(args) -> None:
    from .generate import Config, generate

    sources = tuple(s.strip() for s in args.sources.split(",") if s.strip()) if args.sources else ()
    cfg = Config(songs=args.songs, out=Path(args.output), seed=args.seed, jobs=args.jobs or default_jobs(),
                 seconds=(args.seconds[0], args.seconds[1]), stems=(args.stems[0], args.stems[1]),
                 sample_rate=args.sample_rate, sources=sources, renderer=args.renderer, first=args.first)
    if args.quiet:
        summary = generate(cfg, notify=_note)
    else:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
            TimeRemainingColumn

        prog = Progress(TextColumn("generating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TimeRemainingColumn(), console=Console(stderr=True), transient=True)
        task = prog.add_task("generating", total=cfg.songs)
        with prog:
            summary = generate(cfg, progress=lambda d, t: prog.update(task, completed=d, total=t), notify=_note)
    print(f"{summary['done']} song(s) generated, {summary['skipped']} already there, in {summary['seconds']:.1f} s "
          f"-> {cfg.out} (sources: {', '.join(summary['sources'])}; renderer: {summary['renderer']}; "
          f"jobs: {cfg.jobs})")
    if summary["failed"]:
        names = ", ".join(sorted(summary["failed"]))
        raise DiffmstError(f"{len(summary['failed'])} song(s) failed ({names}); run the same command again "
                           "to retry them")


def run_stats(args) -> None:
    from .stats import corpus_stats, format_stats, plot_stats

    plot = None
    if args.plot != "none":
        plot = Path(args.plot) if args.plot else Path(args.corpus) / "stats.png"
        if args.plot or Path(args.corpus).is_dir():  # else corpus_stats says the corpus is missing
            from ..audio import check_output

            check_output(plot, getattr(args, "overwrite", False))  # before the (long) analysis
    stats = corpus_stats(args.corpus, max_songs=args.max_songs, jobs=args.jobs or default_jobs())
    if args.json:
        import json

        print(json.dumps(stats["summary"], indent=1))
    else:
        print(format_stats(stats))
    if plot is not None:
        plot_stats(stats, plot, title=args.title)
        print(f"plot: {plot}", file=sys.stderr if args.json else sys.stdout)
