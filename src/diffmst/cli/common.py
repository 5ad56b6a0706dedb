"""What every command shares: notices, the progress bar, and one declaration per option that
several commands take (so the same option reads, checks and fails the same way everywhere)."""

from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from typing import Callable

from ..pipeline.reporter import Reporter

EXIT_USAGE = 2


def notice(msg: str) -> None:
    """A notice for the user (stderr, so stdout stays clean for data)."""
    print(f"diffmst: note: {msg}", file=sys.stderr)


class RichReporter(Reporter):
    """The command line's :class:`~diffmst.pipeline.reporter.Reporter`: notices on stderr,
    each task a transient rich progress bar on stderr (none when ``quiet``)."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet

    def notice(self, msg: str) -> None:
        notice(msg)

    @contextmanager
    def task(self, name: str, total: int | None = None, **fields):
        if self.quiet:
            yield lambda *_a, **_k: None
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        columns = [TextColumn(name), BarColumn(), MofNCompleteColumn()]
        columns += [TextColumn(f"{key} {{task.fields[{key}]}}") for key in fields]
        prog = Progress(*columns, TimeRemainingColumn(), console=Console(stderr=True), transient=True)
        task = prog.add_task(name, total=total, **fields)

        def update(done: int, total: int | None = None, **more) -> None:
            prog.update(task, completed=done, **({"total": total} if total is not None else {}), **more)

        with prog:
            yield update


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


def _tracks_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("tracks", nargs="+", metavar="TRACKS", help="folder of audio files, or audio files")


def _audio_output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", "-o", required=True, help="output audio file (.wav, .flac, .aiff)")
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


def _loudness_arg(text: str) -> str | float:
    """``--loudness``: 'reference' or LUFS in [-70, 0]."""
    if text.strip().lower() == "reference":
        return "reference"
    try:
        return _float_in(-70.0, 0.0, "LUFS")(text)
    except argparse.ArgumentTypeError as e:
        raise argparse.ArgumentTypeError(f"expected 'reference' or a loudness in LUFS: {e}") from None
