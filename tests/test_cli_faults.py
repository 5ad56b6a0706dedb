"""Faults a new user hit with real files: every option and file argument is checked the same
way in every command (exit 2, one line naming the problem, no traceback, nothing written)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from diffmst import cli
from diffmst.audio import load_tracks, write_audio
from diffmst.cli import main
from diffmst.console import Settings
from diffmst.console.params import TRACK_INDEX
from diffmst.examples import write_example_song

SR = 44100
QUICK = ["--steps", "2", "--windows", "1", "--window", "1.0", "--analysis-sr", "16000", "-q"]
ROOT = Path(__file__).resolve().parents[1]


def _write(path: Path, x, sr: int = SR, subtype: str = "FLOAT") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(x, dtype=np.float32).T, sr, subtype=subtype)
    return path


def noise(channels: int = 1, seconds: float = 0.5, level: float = 0.1, seed: int = 0) -> np.ndarray:
    return level * np.random.default_rng(seed).standard_normal((channels, int(seconds * SR)))


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faults")
    write_example_song(root / "tracks", seconds=3.0, seed=1)
    _write(root / "refs" / "ref.wav", 0.3 * noise(2, 3.0, seed=5))
    settings = Settings.default(load_tracks([root / "tracks"]).names)
    settings.save(root / "settings.json")
    return root


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def refused(argv, capsys, *words: str) -> str:
    code, _, err = run(argv, capsys)
    assert code == 2, err
    assert "Traceback" not in err and err.count("\n") <= 3, err
    for w in words:
        assert w in err, (w, err)
    return err


# ----------------------------------------------------------------------------- options


@pytest.mark.parametrize("argv, word", [
    (["optimize", "T", "R", "-o", "o", "--lr", "nan"], "--lr"),
    (["optimize", "T", "R", "-o", "o", "--lr", "0"], "--lr"),
    (["optimize", "T", "R", "-o", "o", "--analysis-sr", "0"], "--analysis-sr"),
    (["optimize", "T", "R", "-o", "o", "--analysis-sr", "100"], "--analysis-sr"),
    (["optimize", "T", "R", "-o", "o", "--seed", "-1"], "--seed"),
    (["optimize", "T", "R", "-o", "o", "--prior", "-1"], "--prior"),
    (["optimize", "T", "R", "-o", "o", "--steps", "-3"], "--steps"),
    (["optimize", "T", "R", "-o", "o", "--window", "inf"], "--window"),
    (["optimize", "T", "R", "-o", "o", "--windows", "0"], "--windows"),
    (["optimize", "T", "R", "-o", "o", "--threads", "-2"], "--threads"),
    (["analyze", "a.wav", "--analysis-sr", "-1"], "--analysis-sr"),
    (["analyze", "a.wav", "--lufs", "nan"], "--lufs"),
    (["baseline", "T", "-o", "b.wav", "--lufs", "nan"], "--lufs"),
    (["baseline", "T", "-o", "b.wav", "--peak", "3"], "--peak"),
])
def test_nonsense_options_are_refused_at_parse_time(argv, word, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and word in err and "Traceback" not in err


def test_commands_that_write_audio_share_their_options():
    parser = cli.build_parser()
    subs = next(a for a in parser._actions if a.dest == "command").choices
    for name in ("render", "baseline", "optimize"):
        flags = {s for a in subs[name]._actions for s in a.option_strings}
        assert {"--overwrite", "--quiet", "-q", "--bit-depth", "--output"} <= flags, name


# ----------------------------------------------------------------------------- files


def test_bad_files_get_one_wording_in_every_command(song, tmp_path, capsys):
    tracks, ref, settings = song / "tracks", song / "refs" / "ref.wav", song / "settings.json"
    empty = tmp_path / "empty.wav"
    empty.touch()
    text = tmp_path / "text.wav"
    text.write_text("hello\n")
    data = (tracks / "kick.flac").read_bytes()
    trunc = tmp_path / "trunc.flac"
    trunc.write_bytes(data[: len(data) // 3])
    out = tmp_path / "x.wav"
    for bad, word in ((empty, "empty file (0 bytes)"), (text, "not an audio format"),
                      (trunc, "truncated or corrupt"), (tracks, "is a folder")):
        refused(["analyze", bad], capsys, str(bad), word)
        refused(["optimize", tracks, "-r", bad, "-o", tmp_path / "o"] + QUICK, capsys, str(bad), word)
        if bad != tracks:
            refused(["render", bad, "-p", settings, "-o", out], capsys, str(bad), word)
            refused(["baseline", bad, "-o", out], capsys, str(bad), word)
            refused(["params", "-t", bad], capsys, str(bad), word)
            refused(["optimize", bad, "-r", ref, "-o", tmp_path / "o"] + QUICK, capsys, str(bad), word)
    assert not out.exists()


def test_an_audio_file_as_settings_is_refused(song, tmp_path, capsys):
    refused(["render", song / "tracks", "-p", song / "refs" / "ref.wav", "-o", tmp_path / "x.wav"], capsys,
            "ref.wav", "not a settings file")
    refused(["render", song / "tracks", "-p", song / "tracks", "-o", tmp_path / "x.wav"], capsys, "is a folder")


def test_params_refuses_the_files_render_would_refuse(tmp_path, capsys):
    _write(tmp_path / "t" / "a.wav", noise())
    bad = noise()
    bad[0, 100] = np.nan
    _write(tmp_path / "t" / "b.wav", bad)
    refused(["params", "-t", tmp_path / "t"], capsys, "b.wav", "NaN")


def test_settings_with_a_repeated_track_name_are_refused(song, tmp_path, capsys):
    text = (song / "settings.json").read_text()
    d = json.loads(text)
    first = next(iter(d["tracks"]))
    block = json.dumps(d["tracks"][first])
    dup = text.replace('"tracks": {', '"tracks": {\n    "%s": %s,' % (first, block), 1)
    (tmp_path / "dup.json").write_text(dup)
    refused(["render", song / "tracks", "-p", tmp_path / "dup.json", "-o", tmp_path / "x.wav"], capsys,
            f"'{first}' appears twice")


# ----------------------------------------------------------------------------- outputs


@pytest.mark.parametrize("name, word", [("x.mp3", "unsupported output format .mp3"),
                                        ("x.ogg", "unsupported output format .ogg"),
                                        ("noext", "(no extension)")])
def test_output_format_is_checked_before_any_audio_is_read(name, word, tmp_path, capsys):
    missing_tracks = tmp_path / "no-such-tracks"  # reading them would fail with another error
    refused(["render", missing_tracks, "-p", "s.json", "-o", tmp_path / name], capsys, word)
    refused(["baseline", missing_tracks, "-o", tmp_path / name], capsys, word)


def test_flac_32f_is_checked_before_any_audio_is_read(tmp_path, capsys):
    refused(["render", tmp_path / "none", "-p", "s.json", "-o", tmp_path / "x.flac", "--bit-depth", "32f"],
            capsys, "FLAC cannot store 32-bit float")


def test_an_existing_folder_as_output_is_refused_even_with_overwrite(song, tmp_path, capsys):
    folder = tmp_path / "out.wav"
    folder.mkdir()
    refused(["render", song / "tracks", "-p", song / "settings.json", "-o", folder, "--overwrite"], capsys,
            "is a folder")
    refused(["baseline", song / "tracks", "-o", folder, "--overwrite"], capsys, "is a folder")
    refused(["analyze", song / "refs" / "ref.wav", "--plot", folder, "--overwrite"], capsys, "is a folder")
    opt = tmp_path / "opt"
    (opt / "report.png").mkdir(parents=True)
    refused(["optimize", song / "tracks", song / "refs" / "ref.wav", "-o", opt, "--overwrite"] + QUICK, capsys,
            "is a folder")
    assert folder.is_dir() and not any(folder.iterdir())


def test_an_output_folder_describes_one_run(song, tmp_path, capsys):
    out = tmp_path / "opt"
    argv = ["optimize", song / "tracks", song / "refs" / "ref.wav", "-o", out] + QUICK
    assert run(argv, capsys)[0] == 0 and (out / "report.png").is_file()
    assert run(argv + ["--overwrite", "--no-plot"], capsys)[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["mix.wav", "report.json", "settings.json"]
    # without --overwrite, a stale plot alone is enough to refuse
    (out / "mix.wav").unlink()
    (out / "settings.json").unlink()
    (out / "report.json").unlink()
    (out / "report.png").write_bytes(b"old")
    refused(argv + ["--no-plot"], capsys, "report.png", "--overwrite")


def test_write_audio_refuses_to_clip(tmp_path):
    from diffmst.errors import DiffmstError

    loud = np.full((2, 100), 1.5, np.float32)
    with pytest.raises(DiffmstError, match="would clip"):
        write_audio(tmp_path / "x.wav", loud, SR, "24")
    assert not list(tmp_path.iterdir())
    write_audio(tmp_path / "x.wav", loud, SR, "32f")  # float keeps overs
    # round-off overs are not a reason to refuse
    write_audio(tmp_path / "y.wav", np.full((2, 100), 1.00001, np.float32), SR, "16")


def test_baseline_of_very_loud_tracks_is_brought_down_not_clipped(tmp_path, capsys):
    # two tracks at full scale: the equal-loudness master gain would need less than -24 dB
    t = np.arange(2 * SR) / SR
    for i, f in enumerate((100.0, 150.0)):
        _write(tmp_path / "t" / f"{i}.wav", 0.99 * np.sign(np.sin(2 * np.pi * f * t))[None])
    code, _, err = run(["baseline", tmp_path / "t", "-o", tmp_path / "b.wav", "--lufs", "-60", "-p",
                        tmp_path / "b.json"], capsys)
    assert code == 0, err
    mix, _ = sf.read(str(tmp_path / "b.wav"), always_2d=True)
    import pyloudnorm as pyln

    assert pyln.Meter(SR).integrated_loudness(mix) == pytest.approx(-60.0, abs=0.3)
    s = Settings.load(tmp_path / "b.json")
    assert (s.track_params[:, TRACK_INDEX["gain_db"]] < -20).all()


# ----------------------------------------------------------------------------- the reference


def test_a_reference_among_the_tracks_is_refused(song, tmp_path, capsys):
    stems = sorted(str(p) for p in (song / "tracks").iterdir())
    refused(["optimize", *stems, "-o", tmp_path / "o"] + QUICK, capsys, stems[-1], "--reference")
    # a folder of tracks with the reference inside it
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for p in (song / "tracks").iterdir():
        (mixed / p.name).write_bytes(p.read_bytes())
    (mixed / "ref.wav").write_bytes((song / "refs" / "ref.wav").read_bytes())
    refused(["optimize", mixed, mixed / "ref.wav", "-o", tmp_path / "o"] + QUICK, capsys, "sits in the tracks' folder")
    assert not (tmp_path / "o").exists()


def test_reference_option_takes_every_positional_as_a_track(song, tmp_path, capsys):
    stems = sorted(str(p) for p in (song / "tracks").iterdir())
    code, out, err = run(["optimize", *stems, "-r", song / "refs" / "ref.wav", "-o", tmp_path / "o"] + QUICK, capsys)
    assert code == 0, err
    names = Settings.load(tmp_path / "o" / "settings.json").track_names
    assert len([n for n in names if not n.endswith(".R")]) == len(stems)


# ----------------------------------------------------------------------------- track names


def test_same_file_names_in_two_folders_get_unique_names_and_rerender(tmp_path, capsys):
    _write(tmp_path / "drums" / "kick.flac", noise(seed=1), subtype="PCM_24")
    _write(tmp_path / "perc" / "kick.flac", noise(seed=2), subtype="PCM_24")
    _write(tmp_path / "keys.flac", noise(2, seed=3), subtype="PCM_24")
    _write(tmp_path / "keys.L.wav", noise(seed=4))
    inputs = [tmp_path / "drums", tmp_path / "perc", tmp_path / "keys.flac", tmp_path / "keys.L.wav"]
    tracks = load_tracks(inputs)
    assert tracks.names == ["drums/kick.flac", "perc/kick.flac", "keys.flac.L", "keys.flac.R", "keys.L.wav"]
    # the settings of the equal-loudness mix re-render that mix exactly
    code, _, err = run(["baseline", *inputs, "-o", tmp_path / "b.wav", "-p", tmp_path / "b.json",
                        "--bit-depth", "32f"], capsys)
    assert code == 0, err
    assert run(["render", *inputs, "-p", tmp_path / "b.json", "-o", tmp_path / "r.wav", "--bit-depth", "32f",
                "-q"], capsys)[0] == 0
    a, _ = sf.read(str(tmp_path / "b.wav"))
    b, _ = sf.read(str(tmp_path / "r.wav"))
    assert np.abs(a - b).max() < 1e-4


def test_one_file_given_twice_is_refused(song, tmp_path, capsys):
    kick = song / "tracks" / "kick.flac"
    refused(["baseline", kick, kick, "-o", tmp_path / "b.wav"], capsys, "given twice")


# ----------------------------------------------------------------------------- stereo files


def test_a_stereo_file_keeps_one_setting_for_both_sides():
    from diffmst import optimize

    rng = np.random.default_rng(0)
    n = 3 * SR
    pad = rng.standard_normal((2, n)).astype(np.float32) * np.array([[0.05], [0.2]], np.float32)
    bass = np.sin(2 * np.pi * 55 * np.arange(n) / SR).astype(np.float32) * 0.3
    audio = np.concatenate([pad, bass[None]])
    names = ["pad.L", "pad.R", "bass"]
    ref = np.stack([bass * 0.5 + 0.1 * rng.standard_normal(n), bass * 0.5 - 0.05 * rng.standard_normal(n)])
    res = optimize(audio, ref, sample_rate=SR, reference_sr=SR, track_names=names, steps=10, lr=0.1, windows=1,
                   window_s=1.5, analysis_sr=16000, render=False)
    tied, start = res.settings.track_params, res.baseline.track_params
    pan = TRACK_INDEX["pan"]
    others = [i for i in range(tied.shape[1]) if i != pan]
    assert not torch.allclose(tied[:2, others], start[:2, others])  # it moved ...
    torch.testing.assert_close(tied[0, others], tied[1, others])  # ... both sides as one


def test_linked_stereo_sides_share_all_but_their_pans():
    from diffmst.pipeline.refine import StereoTie

    rows = torch.rand(3, len(TRACK_INDEX))
    pan = TRACK_INDEX["pan"]
    others = [i for i in range(rows.shape[1]) if i != pan]
    linked = StereoTie(["pad.L", "pad.R", "bass"]).expand(rows)
    torch.testing.assert_close(linked[1, others], rows[0, others])
    torch.testing.assert_close(linked[:, pan], rows[:, pan])
    torch.testing.assert_close(linked[[0, 2]], rows[[0, 2]])
    torch.testing.assert_close(StereoTie(["pad.L", "pad.R", "bass"], link=False).expand(rows), rows)
    # a lone "x.L" without its "x.R" is a mono track of its own
    torch.testing.assert_close(StereoTie(["x.L", "y"]).expand(rows[:2]), rows[:2])


# ----------------------------------------------------------------------------- interruption


def test_ctrl_c_inside_a_compiled_kernel_exits_130_without_a_traceback(capsys, monkeypatch):
    def interrupted_in_numba(_args):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as e:
            raise SystemError("CPUDispatcher(<function _compressor_bwd>) returned a result with an "
                              "exception set") from e

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    args = parser.parse_args(["analyze", "x.wav"])
    monkeypatch.setattr(parser, "parse_args", lambda argv=None: argparse_ns(args, interrupted_in_numba))
    assert main(["analyze", "x.wav"]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err and "SystemError" not in err


def argparse_ns(args, func):
    args.func = func
    return args


def test_other_system_errors_are_not_hidden(monkeypatch):
    def broken(_args):
        raise SystemError("a real bug")

    parser = cli.build_parser()
    args = parser.parse_args(["analyze", "x.wav"])
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    monkeypatch.setattr(parser, "parse_args", lambda argv=None: argparse_ns(args, broken))
    with pytest.raises(SystemError):
        main(["analyze", "x.wav"])


# ----------------------------------------------------------------------------- reports


def test_analyze_and_optimize_report_the_same_af_for_the_same_pair(song, tmp_path, capsys):
    out = tmp_path / "o"
    assert run(["optimize", song / "tracks", song / "refs" / "ref.wav", "-o", out, "--no-plot"] + QUICK,
               capsys)[0] == 0
    reported = json.loads((out / "report.json").read_text())["af_song"]["optimized"]["total"]
    code, stdout, _ = run(["analyze", out / "mix.wav", song / "refs" / "ref.wav", "--json"], capsys)
    assert code == 0
    data = json.loads(stdout)
    assert data["metric"] == "paper"
    # the mix file is 24-bit: the measure on it differs from the float mix's by round-off only
    assert data["af_loss"]["total"] == pytest.approx(reported, rel=1e-3, abs=1e-6)


def test_analyze_json_gives_bark_in_db_as_the_table_does(song, capsys):
    for metric in ("paper", "robust"):
        code, stdout, _ = run(["analyze", song / "refs" / "ref.wav", "--json", "--metric", metric], capsys)
        data = json.loads(stdout)
        assert data["units"]["bark"] == "dB"
        bark = np.array(next(iter(data["features"].values()))["bark"])
        if metric == "paper":  # the measure's own features are ln magnitudes (nepers)
            from diffmst.audio import read_audio
            from diffmst.evaluate.metrics import song_features

            x, sr = read_audio(song / "refs" / "ref.wav")
            np.testing.assert_allclose(bark, song_features(x, sr)["bark"].numpy()[0] * 20 / np.log(10), atol=1e-3)
        code, table, _ = run(["analyze", song / "refs" / "ref.wav", "--metric", metric], capsys)
        assert "measured at" in table and "file's own loudness" in table


def test_the_reference_is_black_in_every_plot():
    from diffmst.report import _colours

    assert _colours(["mix.wav", "ref.wav"], "ref.wav") == ["tab:blue", "black"]
    assert _colours(["reference", "equal loudness", "optimised"], "reference")[0] == "black"
    assert "black" not in _colours(["a.wav"], None)


# ----------------------------------------------------------------------------- set-up


def test_readme_reaches_diffmst_after_setup():
    """The README's commands must work as written after `python3 tasks.py demo`: diffmst is
    in .venv/bin, so the README activates it before its first `diffmst` command."""
    text = (ROOT / "README.md").read_text()
    first = re.search(r"^diffmst (demo|params|render|optimize|analyze|baseline|data) ", text, re.M)
    activate = text.find("source .venv/bin/activate")
    assert first is not None and 0 <= activate < first.start()
    tasks = (ROOT / "tasks.py").read_text()
    assert "activate" in tasks  # the demo task says how to reach the command


# ----------------------------------------------------------------------------- found by a second new user


def test_reference_given_with_r_is_left_out_of_its_tracks_folder(song, tmp_path, capsys):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for p in (song / "tracks").iterdir():
        (mixed / p.name).write_bytes(p.read_bytes())
    (mixed / "ref.wav").write_bytes((song / "refs" / "ref.wav").read_bytes())
    code, _, err = run(["optimize", mixed, "-r", mixed / "ref.wav", "-o", tmp_path / "o"] + QUICK, capsys)
    assert code == 0, err
    assert "left out of the tracks" in err
    names = Settings.load(tmp_path / "o" / "settings.json").track_names
    assert not any(n.startswith("ref") for n in names)
    # the same file named as a track and as the reference
    kick, snare = song / "tracks" / "kick.flac", song / "tracks" / "snare.flac"
    refused(["optimize", kick, snare, "-r", kick, "-o", tmp_path / "o2"] + QUICK, capsys, "given both as a track")


def test_no_output_may_replace_an_input(song, tmp_path, capsys):
    tracks, ref = song / "tracks", song / "refs" / "ref.wav"
    copy = tmp_path / "t"
    copy.mkdir()
    for p in tracks.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    kick = copy / "kick.flac"
    before = kick.read_bytes()
    refused(["render", copy, "-p", song / "settings.json", "-o", kick, "--overwrite"], capsys, "is one of the inputs")
    refused(["params", "-t", copy, "-o", kick, "--overwrite"], capsys, "is one of the inputs")
    refused(["baseline", copy, "-o", kick, "--overwrite"], capsys, "is one of the inputs")
    refused(["baseline", copy, "-o", tmp_path / "b.wav", "-p", tmp_path / "b.wav", "--overwrite"], capsys,
            "given for two outputs")
    refused(["analyze", ref, "--plot", ref, "--overwrite"], capsys, "PNG")  # an input is never a .png
    assert kick.read_bytes() == before
    out = tmp_path / "o"
    out.mkdir()
    (out / "mix.wav").write_bytes(ref.read_bytes())
    refused(["optimize", tracks, out / "mix.wav", "-o", out, "--overwrite"] + QUICK, capsys, "is one of the inputs")
    assert not (tmp_path / "b.wav").exists()


def test_a_truncated_wav_is_refused(song, tmp_path, capsys):
    full = tmp_path / "full.wav"
    write_audio(full, noise(2, 1.0), SR, "16")
    data = full.read_bytes()
    trunc = tmp_path / "trunc.wav"
    trunc.write_bytes(data[: len(data) // 2])
    refused(["analyze", trunc], capsys, "trunc.wav", "truncated or corrupt")
    assert run(["analyze", full], capsys)[0] == 0


def test_plots_must_be_png_and_devices_real(song, tmp_path, capsys):
    refused(["analyze", song / "refs" / "ref.wav", "--plot", tmp_path / "x.pdf"], capsys, "PNG")
    for dev in ("meta", "xpu"):
        refused(["optimize", song / "tracks", song / "refs" / "ref.wav", "-o", tmp_path / "o", "--device", dev] + QUICK,
                capsys, "--device")


def test_analyze_table_has_no_nan(song, capsys):
    mono = song / "mono.wav"
    write_audio(mono, noise(1, 2.0), SR)
    for metric in ("paper", "robust"):
        code, out, _ = run(["analyze", mono, "--metric", metric], capsys)
        assert code == 0 and "nan" not in out and "silent" in out  # a mono file's side


def test_a_full_stdout_is_an_error_not_a_traceback(song, tmp_path):
    import subprocess
    import sys

    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-m", "diffmst.cli", "params", "-t", str(song / "tracks")], stdout=full,
                           stderr=subprocess.PIPE, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "No space left" in r.stderr


def test_demo_refuses_before_writing_when_an_output_is_a_folder(tmp_path, capsys):
    out = tmp_path / "d"
    (out / "mix.wav").mkdir(parents=True)
    refused(["demo", "-o", out, "--overwrite"], capsys, "mix.wav")
    assert sorted(p.name for p in out.iterdir()) == ["mix.wav"]
