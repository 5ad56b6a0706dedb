"""`diffmst optimize`, `predict`, `analyze` and `baseline`."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..errors import DiffmstError
from ..pipeline.options import ANALYSIS_SR, MIN_ANALYSIS_SR, PEAK_DBFS, TARGET_LUFS, Options
from ..pipeline.result import OUTPUT_FILES
from ..pipeline.song import split_reference
from ..report import (JSON_UNITS, json_features, paper_band_centres, plot_features, plot_title,
                      print_feature_table, reference_label)
from .common import (RichReporter, _audio_output_args, _bit_depth_arg, _float_above, _float_in, _int_in, _lufs_arg,
                     _loudness_arg, _overwrite_arg, _quiet_arg, _tracks_arg, notice)


# ----------------------------------------------------------------------------- optimize / analyze / baseline


def _add_mix(sub) -> None:
    from ..pipeline.api import METHODS, NETWORK_REFINE

    p = sub.add_parser("mix", help="mix tracks like a reference",
                       description="Mix TRACKS in the style of REFERENCE: console settings from a start (equal "
                                   "loudness, or the Diff-MST network's prediction with --method network) are "
                                   "refined on the paper's AF measure over a few windows of the song, and the whole "
                                   "song is rendered at the reference's loudness through a true-peak limiter (never "
                                   "above -1 dBTP). Writes OUTDIR/mix.wav, settings.json (renders the same mix with "
                                   "`diffmst render`), report.json and report.png.")
    p.add_argument("--method", choices=METHODS, default="optimize",
                   help="where the settings start: equal loudness refined by optimisation (= `diffmst optimize`; "
                        "the best on real references today), the network's prediction, or equal loudness as it is "
                        "(default: optimize)")
    p.add_argument("--refine", type=_int_in(0, 100_000), metavar="STEPS",
                   help=f"optimisation steps after the start (default: {NETWORK_REFINE} after the network, "
                        f"{Options.steps} for optimize, 0 for equal-loudness; 0 = the start alone)")
    p.add_argument("--weights", "-w", help="network weights (.safetensors; default: the shipped compact model)")
    p.add_argument("--strength", type=_float_in(0.0, 1.0), default=1.0,
                   help="how much of the reference's style: every setting blended between equal loudness (0) "
                        "and the match (1) (default: 1)")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary instead of text")
    _song_args(p)
    p.set_defaults(func=_run_mix)


def _add_optimize(sub) -> None:
    o = Options()
    p = sub.add_parser("optimize", help="mix tracks like a reference by optimising the console (no network)",
                       description="Optimise the console settings for TRACKS so that the mix matches REFERENCE's "
                                   "style (AF loss: RMS, crest, stereo width/imbalance, Bark spectra), by gradient "
                                   "descent from equal-loudness settings on several windows of the song; then "
                                   "render the whole song at the reference's loudness through a true-peak limiter "
                                   "(never above -1 dBTP). Writes OUTDIR/mix.wav, settings.json (renders the same "
                                   "mix with `diffmst render`), report.json and report.png.")
    p.add_argument("--steps", type=_int_in(0, 100_000), default=o.steps, help=f"Adam steps (default: {o.steps})")
    _song_args(p)
    p.set_defaults(func=_run_optimize)


def _song_args(p) -> None:
    """What `mix` and `optimize` share: inputs, output, refinement and finishing options."""
    o = Options()
    p.add_argument("inputs", nargs="+", metavar="PATH",
                   help="TRACKS... REFERENCE: folders of audio files, or audio files; the last one is the "
                        "reference mix (one audio file), unless the reference is given with --reference")
    p.add_argument("--reference", "-r", action="append",
                   help="the reference mix; then every positional argument is a track (needed when the reference "
                        "sits in the tracks' folder). Repeat it to match several references' pooled style "
                        "(their mean loudness)")
    p.add_argument("--output", "-o", required=True, help="output folder")
    p.add_argument("--lr", type=_float_above(0.0, 10.0), default=o.lr,
                   help=f"learning rate, normalised units (default: {o.lr:g})")
    p.add_argument("--device", default="cpu", help="torch device for the optimisation (default: cpu)")
    _window_args(p)
    p.add_argument("--analysis-sr", type=_int_in(MIN_ANALYSIS_SR, 192_000, "Hz"), default=o.analysis_sr,
                   help=f"analysis sample rate, Hz (default: {o.analysis_sr}; the paper's Bark bands reach "
                        "20 kHz, lower rates cannot match the top ones)")
    p.add_argument("--prior", type=_float_in(0.0, 100.0), default=o.prior,
                   help=f"weight of the pull towards the start (default: {o.prior:g})")
    _finish_args(p)
    p.add_argument("--threads", type=_int_in(0, 1024), default=0, help="torch and numba threads (default: 0, their own choice)")
    _bit_depth_arg(p)
    p.add_argument("--no-plot", action="store_true", help="do not write report.png")
    _overwrite_arg(p)
    _quiet_arg(p)


def _window_args(p) -> None:
    """The windows of the song that are heard (by the optimiser and the network alike)."""
    o = Options()
    p.add_argument("--seed", type=_int_in(0, 2**32 - 1), default=0, help="window placement seed (default: 0)")
    p.add_argument("--windows", type=_int_in(1, 64), default=o.windows,
                   help=f"analysis windows across the song (default: {o.windows})")
    p.add_argument("--window", type=_float_in(0.5, 60.0, "s"), default=o.window_s,
                   help=f"window length in seconds (default: {o.window_s:g})")


def _finish_args(p) -> None:
    """The mix's loudness and peak, and whether a stereo file's sides share their settings."""
    o = Options()
    p.add_argument("--loudness", type=_loudness_arg, default=o.loudness, metavar="reference|LUFS",
                   help="loudness of the mix: 'reference' (the reference's integrated loudness, reached through "
                        "the master's true-peak limiter) or a number in LUFS, e.g. -16 (default: reference)")
    p.add_argument("--peak", type=_float_in(-20.0, 0.0, "dBTP"), default=o.peak_dbtp,
                   help=f"the mix's true peak never passes this (default: {o.peak_dbtp:g} dBTP)")
    p.add_argument("--unlink-stereo", action="store_true",
                   help="set a stereo file's L and R as unrelated tracks (default: they share one gain, EQ "
                        "and compressor setting, so the file's balance is kept, each with its own pan)")


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="the network's console settings for tracks and a reference",
                       description="Predict the console settings that mix TRACKS like REFERENCE with the Diff-MST "
                                   "network (one forward pass over a few windows of the song; the shipped compact "
                                   "model unless --weights), finished to the reference's loudness through the "
                                   "master's true-peak limiter. Writes a settings JSON; `diffmst render TRACKS -p "
                                   "SETTINGS -o mix.wav` renders the mix.")
    p.add_argument("inputs", nargs="+", metavar="PATH",
                   help="TRACKS... REFERENCE: folders of audio files, or audio files; the last one is the "
                        "reference mix (one audio file), unless the reference is given with --reference")
    p.add_argument("--reference", "-r", help="the reference mix; then every positional argument is a track")
    p.add_argument("--output", "-o", required=True, help="settings JSON to write")
    p.add_argument("--weights", "-w", help="network weights (.safetensors; default: the shipped compact model)")
    _window_args(p)
    _finish_args(p)
    p.add_argument("--device", default="cpu", help="torch device for the network (default: cpu)")
    _overwrite_arg(p)
    _quiet_arg(p)
    p.set_defaults(func=_run_predict)


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
    p.set_defaults(func=_run_analyze)


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
    p.set_defaults(func=_run_baseline)


# ----------------------------------------------------------------------------- handlers


def _check_outdir(out: Path, overwrite: bool) -> None:
    """The output folder: every file a run may write there is checked (a stale report.png
    beside a new report.json would describe another run)."""
    if out.exists() and not out.is_dir():
        raise DiffmstError(f"{out}: exists and is not a folder")
    if not out.parent.is_dir():
        raise DiffmstError(f"{out.parent}: output folder does not exist")
    for name in OUTPUT_FILES.values():
        path = out / name
        if path.is_dir():
            raise DiffmstError(f"{path}: is a folder; cannot write {name} there")
        if path.exists() and not overwrite:
            raise DiffmstError(f"{path}: already exists (use --overwrite to replace it)")


def _check_device(device: str) -> None:
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise DiffmstError(f"--device {device}: not a torch device (use cpu, cuda, cuda:1, mps)") from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise DiffmstError(f"--device {device}: not supported (use cpu, cuda, cuda:1, mps)")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DiffmstError(f"--device {device}: CUDA is not available on this machine")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise DiffmstError(f"--device {device}: MPS is not available on this machine")
    try:
        torch.zeros(1, device=dev)
    except Exception as e:  # e.g. cuda:7 on a one-GPU machine
        raise DiffmstError(f"--device {device}: cannot be used ({e})") from None


def _run_optimize(args) -> None:
    """``diffmst optimize``: ``mix --method optimize --refine STEPS``."""
    args.method, args.refine, args.weights, args.json, args.strength = "optimize", args.steps, None, False, 1.0
    _run_mix(args)


def _run_mix(args) -> None:
    """``diffmst mix`` (and ``optimize``): see :func:`_add_mix`."""
    import json

    import torch

    from ..audio import check_distinct, find_audio, output_format
    from ..pipeline.api import default_refine, mix

    out = Path(args.output)
    if args.weights and args.method != "network":
        raise DiffmstError(f"--weights is for --method network (the {args.method} method uses no network)")
    tracks, reference = split_reference(args.inputs, args.reference, notice)
    _check_outdir(out, args.overwrite)
    output_format(out / OUTPUT_FILES["mix"], args.bit_depth)
    refs = reference if isinstance(reference, list) else [reference]
    check_distinct([out / name for name in OUTPUT_FILES.values()],
                   [*find_audio(tracks), *refs] + ([args.weights] if args.weights else []))
    _check_device(args.device)
    if args.threads:
        import numba

        torch.set_num_threads(args.threads)
        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    steps = args.refine if args.refine is not None else default_refine(args.method)
    kwargs = dict(method=args.method, refine=steps, model=args.weights, strength=args.strength, lr=args.lr, analysis_sr=args.analysis_sr,
                  windows=args.windows, window_s=args.window, prior=args.prior, seed=args.seed, device=args.device,
                  loudness=args.loudness, peak_dbtp=args.peak, link_stereo=not args.unlink_stereo)
    reporter = RichReporter(args.quiet or args.json)
    with reporter.task("mixing" if args.method != "optimize" else "optimising", steps, loss="...") as update:
        result = mix(tracks, reference, notify=reporter.notice,
                     progress=lambda step, total, loss: update(step, total, loss=f"{loss:.4f}"), **kwargs)
    out.mkdir(exist_ok=True)
    rep = result.report()  # measures the whole mix: once, for the files and the summary
    paths = result.save(out, overwrite=args.overwrite, bit_depth=args.bit_depth, plot=not args.no_plot, report=rep)
    el, op = result.song_af["equal_loudness"], result.song_af["optimized"]
    out_, ref_ = rep["output"], rep["reference_level"]
    if args.json:
        print(json.dumps({"method": args.method, "refine": steps, "strength": args.strength, "af_song": result.song_af, "output": out_,
                          "reference_level": ref_, "timings_s": rep["timings_s"],
                          "files": {k: str(p) for k, p in paths.items()}}, indent=1))
        return
    terms = ", ".join(f"{k} {el[k]:.4f} -> {op[k]:.4f}" for k in ("rms", "crest", "width", "imbalance", "bark"))
    label = {"optimize": "optimised", "network": "network" + (f" + {steps} steps" if steps else "")}.get(
        args.method, "equal loudness")
    print(f"AF (paper, whole song): {el['total']:.4f} (equal loudness) -> {op['total']:.4f} ({label})  [{terms}]")
    print(f"mix: {out_['lufs']} LUFS, true peak {out_['true_peak_dbtp']} dBTP (reference: {ref_['lufs']} LUFS, "
          f"{ref_['true_peak_dbtp']} dBTP); {result.timings.get('total', 0):.1f} s ({len(result.history)} steps)")
    for key, p in paths.items():
        print(f"{key + ':':10s}{p}")


def _run_predict(args) -> None:
    """``diffmst predict``: see :func:`_add_predict`."""
    from ..audio import check_distinct, check_output, find_audio
    from ..pipeline.api import predict

    tracks, reference = split_reference(args.inputs, args.reference, notice)
    check_output(args.output, args.overwrite)
    check_distinct([args.output], [*find_audio(tracks), reference] + ([args.weights] if args.weights else []))
    _check_device(args.device)
    with RichReporter(args.quiet).task("predicting"):
        settings = predict(tracks, reference, model=args.weights, windows=args.windows, window_s=args.window,
                           loudness=args.loudness, peak_dbtp=args.peak, seed=args.seed,
                           link_stereo=not args.unlink_stereo, device=args.device, notify=notice)
    settings.save(args.output, overwrite=args.overwrite)
    print(args.output)


def _run_baseline(args) -> None:
    """``diffmst baseline``: the equal-loudness mix of TRACKS."""
    from ..audio import check_audio_output, check_distinct, check_output, find_audio, load_tracks, write_audio
    from ..pipeline.baseline import equal_loudness_mix

    check_audio_output(args.output, args.overwrite, args.bit_depth)
    if args.params:
        check_output(args.params, args.overwrite)
    check_distinct([args.output] + ([args.params] if args.params else []), find_audio(args.tracks))
    tracks = load_tracks(args.tracks, notify=notice)
    mix, settings = equal_loudness_mix(tracks, args.lufs, args.peak, notify=notice)
    write_audio(args.output, mix, tracks.sample_rate, args.bit_depth, args.overwrite)
    print(args.output)
    if args.params:
        settings.save(args.params, overwrite=args.overwrite)
        print(args.params)


def _run_analyze(args) -> None:
    """``diffmst analyze FILE [REFERENCE]``: style features as a table, optionally a plot."""
    import json

    import numpy as np
    import soxr
    import torch

    from ..audio import check_distinct, read_audio
    from ..features import style_features, to_python
    from ..report import check_plot_output
    from ..loudness import loudness_np, normalize_np
    from ..losses import AFLoss

    files = [args.file] + ([args.reference] if args.reference else [])
    if args.plot:
        check_plot_output(args.plot, args.overwrite)
        check_distinct([args.plot], [f for f in files if Path(f).exists()])
    if args.metric == "paper":
        return _analyze_paper(files, args)
    feats: dict[str, dict] = {}
    extra: list[list[str]] = [["file's own loudness (LUFS)"], ["file's own peak (dBFS)"]]
    prepared = []
    for f in files:
        audio, sr = read_audio(f)
        if audio.shape[0] == 1:
            notice(f"{f}: mono; analysed as dual mono")
            audio = np.concatenate([audio, audio])
        lufs = loudness_np(audio, sr)
        if not np.isfinite(lufs):
            raise DiffmstError(f"{f}: is silent (below -70 LUFS); no features to measure")
        peak = float(np.abs(audio).max())
        extra[0].append(f"{lufs:.1f}")
        extra[1].append(f"{20 * np.log10(peak):.1f}")
        if not args.no_normalize:
            audio, _ = normalize_np(audio, sr, args.lufs)
        rate = args.analysis_sr or sr
        if rate != sr:
            audio = soxr.resample(audio.T, sr, rate, quality="HQ").T
        x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None]
        prepared.append((x, rate))
        label = Path(f).name if Path(f).name not in feats else str(f)
        with torch.no_grad():
            feats[label] = to_python(style_features(x, rate))
    rates = {r for _, r in prepared}
    if len(rates) > 1:
        notice(f"files analysed at their own rates ({', '.join(map(str, sorted(rates)))} Hz); "
               "use --analysis-sr to compare at one rate")
    af_rows, af_values = [], {}
    if len(prepared) == 2 and len(rates) == 1:
        af = AFLoss(rates.pop())
        a, b = list(feats.values())
        total, terms = af({k: torch.tensor([v]) for k, v in a.items()}, {k: torch.tensor([v]) for k, v in b.items()})
        af_values = {**{k: float(v) for k, v in terms.items()}, "total": float(total)}
        af_rows = [[f"AF loss {k}", "", f"{v:.4f}"] for k, v in af_values.items()]
    measured = "as they are" if args.no_normalize else f"at {args.lufs:g} LUFS"
    if args.json:  # full precision: the table rounds, JSON readers should not have to
        print(json.dumps({"metric": "robust", "measured": measured, "units": JSON_UNITS,
                          "features": json_features(feats), "af_loss": af_values}, indent=1))
    else:
        print_feature_table(feats, f"robust style features (frame-wise, 20 Hz high-pass, measured {measured})",
                            extra + af_rows)
    if args.plot:
        plot_features(feats, args.plot, title=plot_title(feats, "robust features"), reference=reference_label(feats))
        print(args.plot)


def _analyze_paper(files: Sequence[str], args) -> None:
    """``analyze --metric paper``: the paper's measure on the whole files (DC removed, at
    -16 LUFS, at the last file's rate: a mix is resampled to its reference's)."""
    import json

    import numpy as np

    from ..audio import read_audio
    from ..console.limiter import true_peak_db
    from ..errors import DiffmstError
    from ..evaluate.metrics import PAPER_LUFS, paper_distance, song_features
    from ..features import to_python
    from ..loudness import loudness_np

    audios = []
    for f in files:
        audio, sr = read_audio(f)
        if audio.shape[0] == 1:
            notice(f"{f}: mono; analysed as dual mono")
        if not np.isfinite(loudness_np(audio, sr)):
            raise DiffmstError(f"{f}: is silent (below -70 LUFS); no features to measure")
        audios.append((f, audio, sr))
    rate = audios[-1][2]
    feats, raw, extra = {}, [], [["file's own loudness (LUFS)"], ["file's own true peak (dBTP)"]]
    for f, audio, sr in audios:
        label = Path(f).name if Path(f).name not in feats else str(f)
        fe = song_features(audio, sr, rate)
        raw.append(fe)
        feats[label] = to_python(fe)
        extra[0].append(f"{loudness_np(audio, sr):.1f}")
        extra[1].append(f"{true_peak_db(audio):.1f}")
    af_values: dict[str, float] = {}
    if len(raw) == 2:
        total, terms = paper_distance(raw[0], raw[1])
        af_values = {**{k: float(v) for k, v in terms.items()}, "total": float(total)}
    if args.json:
        print(json.dumps({"metric": "paper", "measured": f"at {PAPER_LUFS:g} LUFS, {rate} Hz", "units": JSON_UNITS,
                          "features": json_features(feats), "af_loss": af_values}, indent=1))
    else:
        print_feature_table(feats, f"the paper's features (whole song, DC removed, measured at {PAPER_LUFS:g} LUFS, "
                            f"{rate} Hz)", extra + [[f"AF loss {k}", "", f"{v:.4f}"] for k, v in af_values.items()],
                            centres=paper_band_centres())
    if args.plot:
        plot_features(feats, args.plot, title=plot_title(feats, "the paper's features"),
                      centres=paper_band_centres(), reference=reference_label(feats))
        print(args.plot)
