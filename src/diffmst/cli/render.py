"""`diffmst render`, `params` and `demo`: the console on its own."""

from __future__ import annotations

from pathlib import Path

from ..errors import DiffmstError
from .common import RichReporter, _audio_output_args, _overwrite_arg, _quiet_arg, _tracks_arg, notice


# ----------------------------------------------------------------------------- render


def render_song(track_inputs, settings_path, output, bit_depth="24", overwrite=False, quiet=False):
    """Render tracks with a settings file to ``output`` at the tracks' sample rate."""
    import torch

    from ..audio import check_audio_output, check_distinct, find_audio, load_tracks, write_audio
    from ..console import Settings, render

    check_audio_output(output, overwrite, bit_depth)  # fail before any work
    check_distinct([output], [*find_audio(track_inputs), settings_path])
    settings = Settings.load(settings_path)
    tracks = load_tracks(track_inputs, notify=notice)
    extra = sorted(set(settings.track_names) - set(tracks.names))
    if extra:
        notice(f"{settings_path}: settings for tracks not given are ignored: {', '.join(extra)}")
    tp = settings.for_tracks(tracks.names, where=str(settings_path))
    audio = torch.from_numpy(tracks.audio)[None, :, None]
    with RichReporter(quiet).task("rendering") as update:
        mix = render(audio, tp[None], settings.master_params[None], tracks.sample_rate, progress=update)
    return write_audio(output, mix[0].numpy(), tracks.sample_rate, bit_depth, overwrite)


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
    from ..audio import check_distinct, check_output, find_audio, probe_track_names
    from ..console import Settings

    names = probe_track_names(args.template)
    settings = Settings.default(names)
    if args.output is None:
        import json

        print(json.dumps(settings.to_dict(), indent=2))
    else:
        check_output(args.output, args.overwrite)
        check_distinct([args.output], find_audio(args.template))
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
    from ..console import Settings
    from ..examples import write_example_song

    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise DiffmstError(f"{out}: exists and is not a folder")
    for name, folder in (("tracks", True), ("settings.json", False), ("mix.wav", False), ("reference.wav", False)):
        if (out / name).exists() and (out / name).is_dir() != folder:
            raise DiffmstError(f"{out / name}: is {'not ' if folder else ''}a folder; cannot write the demo there")
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise DiffmstError(f"{out}: folder exists and is not empty (use --overwrite to write into it)")
    out.mkdir(parents=True, exist_ok=True)
    tracks_dir = out / "tracks"
    write_example_song(tracks_dir, overwrite=True)
    example = Path(__file__).parent.parent / "assets" / "demo_settings.json"
    settings = Settings.load(example)
    settings.save(out / "settings.json", overwrite=True)
    mix = render_song([tracks_dir], out / "settings.json", out / "mix.wav", overwrite=True, quiet=True)
    # a reference to mix the tracks like: another example song, mixed with the same settings
    import tempfile

    with tempfile.TemporaryDirectory(prefix="diffmst-demo-") as tmp:
        write_example_song(Path(tmp), seed=1)
        ref = render_song([tmp], out / "settings.json", out / "reference.wav", overwrite=True, quiet=True)
    print(f"example tracks:  {tracks_dir}\nsettings:        {out / 'settings.json'}\nmix:             {mix}\n"
          f"reference:       {ref} (another example song mixed with these settings)")


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="make example tracks and render them with example settings",
                       description="Write an example song's tracks, example settings, the mix they make, and a "
                                   "reference (another example song mixed with the same settings) into OUTPUT.")
    p.add_argument("--output", "-o", default="demo-out", help="folder to write into (default: demo-out)")
    p.add_argument("--overwrite", action="store_true", help="write into an existing, non-empty folder")
    p.set_defaults(func=_cmd_demo)


