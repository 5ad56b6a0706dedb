"""The `diffmst` command: render, params, demo, and every bad input it must refuse."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from diffmst.cli import main

SR = 44100


def _write(path: Path, x: np.ndarray, sr: int = SR, subtype: str = "FLOAT") -> Path:
    sf.write(str(path), np.asarray(x, dtype=np.float32).T, sr, subtype=subtype)
    return path


@pytest.fixture()
def song(tmp_path: Path) -> Path:
    """A folder with two mono tracks and one stereo track, 0.5 s each."""
    rng = np.random.default_rng(0)
    d = tmp_path / "tracks"
    d.mkdir()
    _write(d / "bass.wav", 0.1 * rng.standard_normal((1, SR // 2)))
    _write(d / "drums.wav", 0.1 * rng.standard_normal((1, SR // 2)))
    _write(d / "keys.wav", 0.1 * rng.standard_normal((2, SR // 2)))
    return d


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def template(song: Path, tmp_path: Path, capsys) -> Path:
    path = tmp_path / "settings.json"
    code, _, err = run(["params", "--template", song, "-o", path], capsys)
    assert code == 0, err
    return path


def test_params_template_names_and_pans(song, tmp_path, capsys):
    path = template(song, tmp_path, capsys)
    data = json.loads(path.read_text())
    assert list(data["tracks"]) == ["bass", "drums", "keys.L", "keys.R"]
    assert data["tracks"]["keys.L"]["pan"] == 0.0 and data["tracks"]["keys.R"]["pan"] == 1.0
    assert data["tracks"]["bass"]["pan"] == 0.5
    assert data["tracks"]["bass"]["compressor"]["ratio"] == 1.0


def test_render_neutral_settings_is_sum_with_pan_law(song, tmp_path, capsys):
    """Neutral settings: mix = sum of tracks, centred ones at the -4.5 dB law."""
    settings = template(song, tmp_path, capsys)
    out = tmp_path / "mix.wav"
    code, _, err = run(["render", song, "--params", settings, "-o", out, "--bit-depth", "32f", "-q"], capsys)
    assert code == 0, err
    mix, sr = sf.read(str(out), always_2d=True)
    assert sr == SR and mix.shape == (SR // 2, 2)
    centre = np.sqrt(0.5 * np.cos(np.pi / 4))
    bass, _ = sf.read(str(song / "bass.wav"))
    drums, _ = sf.read(str(song / "drums.wav"))
    keys, _ = sf.read(str(song / "keys.wav"))
    expect = np.stack([centre * (bass + drums) + keys[:, 0], centre * (bass + drums) + keys[:, 1]], 1)
    np.testing.assert_allclose(mix, expect, atol=1e-5)


@pytest.mark.parametrize("depth,subtype", [("16", "PCM_16"), ("24", "PCM_24"), ("32f", "FLOAT")])
def test_render_bit_depth_and_rate_kept(song, tmp_path, capsys, depth, subtype):
    settings = template(song, tmp_path, capsys)
    out = tmp_path / "mix.flac" if depth != "32f" else tmp_path / "mix.wav"
    code, _, err = run(["render", song, "-p", settings, "-o", out, "--bit-depth", depth, "-q"], capsys)
    assert code == 0, err
    info = sf.info(str(out))
    assert info.subtype == subtype and info.samplerate == SR and info.channels == 2


def test_render_pads_and_resamples_with_notice(tmp_path, capsys):
    d = tmp_path / "mixed"
    d.mkdir()
    t = np.arange(SR) / SR
    _write(d / "a.wav", 0.3 * np.sin(2 * np.pi * 440 * t)[None], SR)
    t2 = np.arange(24000 // 4) / 24000
    _write(d / "b.wav", 0.3 * np.sin(2 * np.pi * 440 * t2)[None], 24000)
    settings = template(d, tmp_path, capsys)
    out = tmp_path / "mix.wav"
    code, _, err = run(["render", d, "-p", settings, "-o", out, "-q"], capsys)
    assert code == 0, err
    assert "resampling to 44100" in err and "padded" in err
    info = sf.info(str(out))
    assert info.samplerate == SR and info.frames == SR
    mix, _ = sf.read(str(out))
    # b (0.25 s) is resampled, not dropped: the first quarter second is louder than the rest
    assert np.abs(mix[: SR // 5]).max() > 1.5 * np.abs(mix[SR // 2 :]).max()


def test_render_list_of_files(song, tmp_path, capsys):
    settings = template(song, tmp_path, capsys)
    out = tmp_path / "mix.wav"
    code, _, err = run(["render", song / "bass.wav", song / "keys.wav", "-p", settings, "-o", out, "-q"], capsys)
    assert code == 0, err
    assert "ignored: drums" in err


# ----------------------------------------------------------------------------- bad input


def assert_refused(code, err, *fragments):
    assert code == 2
    assert err.startswith("diffmst: error: ")
    assert "Traceback" not in err
    for f in fragments:
        assert f in err, err


def test_missing_folder(tmp_path, capsys, song):
    settings = template(song, tmp_path, capsys)
    code, _, err = run(["render", tmp_path / "nope", "-p", settings, "-o", tmp_path / "m.wav"], capsys)
    assert_refused(code, err, "nope", "no such file or folder")
    assert not (tmp_path / "m.wav").exists()


def test_no_audio_files(tmp_path, capsys, song):
    settings = template(song, tmp_path, capsys)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("hi")
    code, _, err = run(["render", empty, "-p", settings, "-o", tmp_path / "m.wav"], capsys)
    assert_refused(code, err, "empty", "no audio files")


def _render_with_bad_track(tmp_path, capsys, song, name, make):
    settings = template(song, tmp_path, capsys)
    make(song / name)
    out = tmp_path / "m.wav"
    code, _, err = run(["render", song, "-p", settings, "-o", out, "-q"], capsys)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".m.wav")], "temp file left behind"
    return code, err


def test_corrupt_file(tmp_path, capsys, song):
    code, err = _render_with_bad_track(tmp_path, capsys, song, "bad.wav", lambda p: p.write_bytes(b"RIFF\0\0garbage"))
    assert_refused(code, err, "bad.wav", "cannot read audio")


def test_zero_length_file(tmp_path, capsys, song):
    code, err = _render_with_bad_track(tmp_path, capsys, song, "empty.wav", lambda p: _write(p, np.zeros((1, 0))))
    assert_refused(code, err, "empty.wav", "zero length")


def test_nan_samples(tmp_path, capsys, song):
    x = np.zeros((1, 1000))
    x[0, 500] = np.nan
    code, err = _render_with_bad_track(tmp_path, capsys, song, "nan.wav", lambda p: _write(p, x))
    assert_refused(code, err, "nan.wav", "NaN or infinite", "sample 500")


def test_inf_samples(tmp_path, capsys, song):
    x = np.zeros((1, 1000))
    x[0, 10] = np.inf
    code, err = _render_with_bad_track(tmp_path, capsys, song, "inf.wav", lambda p: _write(p, x))
    assert_refused(code, err, "inf.wav", "NaN or infinite")


def test_too_many_channels(tmp_path, capsys, song):
    code, err = _render_with_bad_track(tmp_path, capsys, song, "surround.wav", lambda p: _write(p, np.zeros((6, 100))))
    assert_refused(code, err, "surround.wav", "6 channels")


def test_too_many_channels_in_template(tmp_path, capsys, song):
    _write(song / "surround.wav", np.zeros((6, 100)))
    code, _, err = run(["params", "--template", song], capsys)
    assert_refused(code, err, "surround.wav", "6 channels")


def test_invalid_json(tmp_path, capsys, song):
    bad = tmp_path / "bad.json"
    bad.write_text('{"tracks": {')
    code, _, err = run(["render", song, "-p", bad, "-o", tmp_path / "m.wav"], capsys)
    assert_refused(code, err, "bad.json", "invalid JSON", "line 1")


@pytest.mark.parametrize(
    "edit,fragments",
    [
        (lambda d: d["tracks"]["bass"].update(volume=3), ["track 'bass'", "unknown parameter 'volume'"]),
        (lambda d: d["tracks"]["bass"]["compressor"].pop("ratio"), ["track 'bass'", "missing parameter 'compressor.ratio'"]),
        (lambda d: d["tracks"]["drums"]["eq"]["band1"].update(freq_hz=50000),
         ["track 'drums'", "'eq.band1.freq_hz' = 50000", "out of range"]),
        (lambda d: d["master"].update(gain_db="loud"), ["master", "'gain_db' must be a finite number"]),
        (lambda d: d["tracks"].pop("keys.R"), ["no settings for track 'keys.R'"]),
    ],
)
def test_invalid_settings(tmp_path, capsys, song, edit, fragments):
    path = template(song, tmp_path, capsys)
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    code, _, err = run(["render", song, "-p", path, "-o", tmp_path / "m.wav"], capsys)
    assert_refused(code, err, "settings.json", *fragments)


def test_existing_output_needs_overwrite(tmp_path, capsys, song):
    settings = template(song, tmp_path, capsys)
    out = tmp_path / "mix.wav"
    out.write_bytes(b"precious")
    code, _, err = run(["render", song, "-p", settings, "-o", out, "-q"], capsys)
    assert_refused(code, err, "mix.wav", "already exists", "--overwrite")
    assert out.read_bytes() == b"precious"
    code, _, err = run(["render", song, "-p", settings, "-o", out, "-q", "--overwrite"], capsys)
    assert code == 0, err
    assert sf.info(str(out)).frames == SR // 2


def test_template_existing_output_needs_overwrite(tmp_path, capsys, song):
    path = template(song, tmp_path, capsys)
    before = path.read_text()
    code, _, err = run(["params", "--template", song, "-o", path], capsys)
    assert_refused(code, err, "settings.json", "already exists")
    assert path.read_text() == before


def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    code, stdout, err = run(["demo", "-o", out], capsys)
    assert code == 0, err
    mix, sr = sf.read(str(out / "mix.wav"), always_2d=True)
    assert sr == 44100 and mix.shape[1] == 2 and mix.shape[0] > 5 * sr
    peak = np.abs(mix).max()
    assert 0.1 < peak <= 1.0
    # the stereo keys really are spread: the channels differ
    assert np.abs(mix[:, 0] - mix[:, 1]).max() > 1e-3
    # and a reference to mix them like: another song (the same length, other notes)
    ref, ref_sr = sf.read(str(out / "reference.wav"), always_2d=True)
    assert ref_sr == sr and ref.shape == mix.shape and np.abs(ref - mix).max() > 0.1
    code, _, err = run(["demo", "-o", out], capsys)
    assert_refused(code, err, "not empty")


def test_console_script_exit_code(tmp_path):
    """The installed entry point exits 2 with one error line and no traceback."""
    exe = Path(sys.executable).with_name("diffmst")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "diffmst.cli"]
    res = subprocess.run(cmd + ["render", str(tmp_path / "missing"), "-p", "x.json", "-o", str(tmp_path / "o.wav")],
                         capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert res.returncode == 2
    assert res.stderr.startswith("diffmst: error:") and "Traceback" not in res.stderr
