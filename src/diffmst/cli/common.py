"""What every command shares: notices, the progress bar, and one declaration per option that
several commands take (so the same option reads, checks and fails the same way everywhere)."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

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



def _loudness_arg(text: str) -> str | float:
    """``--loudness``: 'reference' or LUFS in [-70, 0]."""
    if text.strip().lower() == "reference":
        return "reference"
    try:
        return _float_in(-70.0, 0.0, "LUFS")(text)
    except argparse.ArgumentTypeError as e:
        raise argparse.ArgumentTypeError(f"expected 'reference' or a loudness in LUFS: {e}") from None
