"""`diffmst optimize`, `analyze` and `baseline` end to end, and the inputs they refuse."""

import json

import numpy as np
import pyloudnorm as pyln
import pytest
import soundfile as sf
import torch

from diffmst.audio import write_audio
from diffmst.cli import main
from diffmst.examples import example_song, write_example_song

SR = 44100
QUICK = ["--steps", "3", "--windows", "2", "--window", "1.0", "--analysis-sr", "16000", "-q"]


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    root = tmp_path_factory.mktemp("song")
    write_example_song(root / "tracks", seconds=4.0, seed=0)
    other = example_song(4.0, seed=7)
    ref = np.zeros((2, 4 * SR), np.float32)
    for i, (name, x) in enumerate(other.items()):
        pan = 0.15 + 0.14 * i
        ref += x if x.shape[0] == 2 else np.array([[1 - pan], [pan]], np.float32) * x
    write_audio(root / "ref.wav", ref * 0.8, SR)
    return root


def read(path):
    data, sr = sf.read(str(path), always_2d=True, dtype="float32")
    return data.T, sr


def test_optimize_writes_mix_settings_report(song, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["optimize", str(song / "tracks"), str(song / "ref.wav"), "-o", str(out)] + QUICK) == 0
    stdout = capsys.readouterr().out
    assert "AF (paper, whole song)" in stdout and "dBTP" in stdout
    for name in ("mix.wav", "settings.json", "report.json", "report.png"):
        assert (out / name).is_file(), name
    mix, sr = read(out / "mix.wav")
    assert sr == SR and mix.shape == (2, 4 * SR)
    assert 20 * np.log10(np.abs(mix).max()) <= -1.0 + 1e-3
    report = json.loads((out / "report.json").read_text())
    assert len(report["history"]) == 3
    assert set(report["features"]) == {"reference", "equal_loudness", "optimized"}
    assert report["af_loss"]["optimized"]["total"] >= 0
    # the settings file renders the same mix
    assert main(["render", str(song / "tracks"), "-p", str(out / "settings.json"), "-o", str(tmp_path / "again.wav"),
                 "-q"]) == 0
    again, _ = read(tmp_path / "again.wav")
    assert np.allclose(again, mix, atol=2e-4)
    # nothing is overwritten without --overwrite
    before = (out / "settings.json").read_text()
    assert main(["optimize", str(song / "tracks"), str(song / "ref.wav"), "-o", str(out)] + QUICK) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--overwrite" in err and "Traceback" not in err
    assert (out / "settings.json").read_text() == before


def test_optimize_refuses_bad_references(song, tmp_path, capsys):
    tracks = str(song / "tracks")
    silent = tmp_path / "silent.wav"
    write_audio(silent, np.zeros((2, 3 * SR), np.float32), SR)
    short = tmp_path / "short.wav"
    write_audio(short, np.random.default_rng(0).normal(0, 0.1, (2, SR // 4)).astype(np.float32), SR)
    cases = {str(silent): "silent", str(short): "only 0.25 s", str(song / "tracks"): "is a folder",
             str(tmp_path / "missing.wav"): "no such file"}
    for ref, message in cases.items():
        code = main(["optimize", tracks, ref, "-o", str(tmp_path / "o")] + QUICK)
        err = capsys.readouterr().err
        assert code == 2, ref
        assert err.startswith("diffmst: error: ") and message in err and ref in err, err
        assert "Traceback" not in err
    if not torch.cuda.is_available():
        assert main(["optimize", tracks, str(song / "ref.wav"), "-o", str(tmp_path / "o"), "--device", "cuda"]
                    + QUICK) == 2
        assert "CUDA is not available" in capsys.readouterr().err


def test_optimize_mono_and_other_rate_references_with_notices(song, tmp_path, capsys):
    ref, _ = read(song / "ref.wav")
    mono = tmp_path / "mono.wav"
    write_audio(mono, ref.mean(0, keepdims=True), SR)
    assert main(["optimize", str(song / "tracks"), str(mono), "-o", str(tmp_path / "a"), "--no-plot"] + QUICK) == 0
    err = capsys.readouterr().err
    assert "note:" in err and "mono" in err and "dual mono" in err
    assert not (tmp_path / "a" / "report.png").exists()
    r48 = tmp_path / "r48.wav"
    import soxr

    write_audio(r48, soxr.resample(ref.T, SR, 48000).T.copy(), 48000)
    assert main(["optimize", str(song / "tracks"), str(r48), "-o", str(tmp_path / "b"), "--no-plot"] + QUICK) == 0
    err = capsys.readouterr().err
    assert "48000 Hz" in err and "44100 Hz" in err


def test_analyze_table_plot_json(song, tmp_path, capsys):
    ref = str(song / "ref.wav")
    assert main(["analyze", ref]) == 0
    out = capsys.readouterr().out
    for word in ("RMS", "crest", "stereo width", "imbalance", "Bark mid", "Bark side", "LUFS"):
        assert word in out
    mix = tmp_path / "mix.wav"
    x, _ = read(ref)
    write_audio(mix, np.stack([x[0], x[0]]), SR)  # the reference's left channel, as mono
    plot = tmp_path / "cmp.png"
    assert main(["analyze", str(mix), ref, "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "AF loss" in out and plot.is_file() and plot.stat().st_size > 10000
    assert main(["analyze", str(mix), ref, "--json", "--analysis-sr", "0", "--metric", "robust"]) == 0
    data = json.loads(capsys.readouterr().out)
    feats = data["features"]
    assert feats["mix.wav"]["width"] == pytest.approx(0.0, abs=1e-6)
    # the width printed for the reference is the numpy value (it has no DC or rumble; the
    # features leave out the first and last 25 ms, where their filters settle)
    e = int(0.025 * SR)
    width = np.mean((x[0, e:-e] - x[1, e:-e]) ** 2) / np.mean((x[0, e:-e] + x[1, e:-e]) ** 2)
    assert feats["ref.wav"]["width"] == pytest.approx(width, rel=0.02)
    assert data["af_loss"]["width"] == pytest.approx(feats["ref.wav"]["width"] ** 2, rel=1e-3)
    assert main(["analyze", str(mix), "--plot", str(plot)]) == 2  # exists
    assert "already exists" in capsys.readouterr().err


def test_baseline_command(song, tmp_path, capsys):
    out, params = tmp_path / "base.wav", tmp_path / "base.json"
    assert main(["baseline", str(song / "tracks"), "-o", str(out), "-p", str(params)]) == 0
    mix, _ = read(out)
    lufs = pyln.Meter(SR).integrated_loudness(mix.T.astype(np.float64))
    # true peak, read independently (scipy's 4x polyphase resampler; two 4x readers differ by up
    # to ~0.1 dB on content near Nyquist): at most -1 dBTP
    from scipy.signal import resample_poly

    peak = 20 * np.log10(np.abs(resample_poly(mix.astype(np.float64), 4, 1, axis=-1)).max())
    assert peak <= -1.0 + 0.1 and (lufs == pytest.approx(-16.0, abs=0.2) or peak == pytest.approx(-1.0, abs=0.1))
    assert main(["render", str(song / "tracks"), "-p", str(params), "-o", str(tmp_path / "r.wav"), "-q"]) == 0
    again, _ = read(tmp_path / "r.wav")
    assert np.allclose(again, mix, atol=2e-4)
