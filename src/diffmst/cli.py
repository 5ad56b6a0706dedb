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


# ----------------------------------------------------------------------------- render


def render_song(track_inputs, settings_path, output, bit_depth="24", overwrite=False, quiet=False):
    """Render tracks with a settings file to ``output`` at the tracks' sample rate."""
    import torch

    from .audio import check_output, load_tracks, write_audio
    from .console import Settings, render

    check_output(output, overwrite)  # fail before any work
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
    p.add_argument("tracks", nargs="+", help="folder of audio files, or audio files")
    p.add_argument("--params", "-p", required=True, help="settings JSON (see `diffmst params --template`)")
    p.add_argument("--output", "-o", required=True, help="output audio file (.wav, .flac, .aiff)")
    p.add_argument("--bit-depth", choices=["16", "24", "32f"], default="24", help="default: 24")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_render)


# ----------------------------------------------------------------------------- params


def _cmd_params(args) -> None:
    from .audio import check_output, find_audio, _track_names
    from .console import Settings
    import soundfile as sf

    files = find_audio(args.template)
    names: list[str] = []
    for f, name in zip(files, _track_names(files)):
        try:
            ch = sf.info(str(f)).channels
        except (sf.LibsndfileError, RuntimeError) as e:
            raise DiffmstError(f"{f}: cannot read audio ({e})") from None
        if ch > 2:
            raise DiffmstError(f"{f}: has {ch} channels; at most 2 are supported")
        names += [f"{name}.L", f"{name}.R"] if ch == 2 else [name]
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
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(func=_cmd_params)


# ----------------------------------------------------------------------------- demo


def _cmd_demo(args) -> None:
    from .console import Settings
    from .examples import write_example_song

    out = Path(args.output)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise DiffmstError(f"{out}: folder exists and is not empty (use --overwrite)")
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


# ----------------------------------------------------------------------------- main

COMMANDS: list[Callable] = [_add_render, _add_params, _add_demo]


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
        print("diffmst: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
