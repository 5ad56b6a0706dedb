"""The network's settings for a song: how predict_settings handles the tracks' levels,
``diffmst.predict`` finished to the reference, and ``diffmst predict`` on the command line
(small random networks: these test the plumbing, not what a trained network learned)."""

from __future__ import annotations

# first, before torch loads: diffmst sets OpenMP threads to wait passively (diffmst/threads.py),
# without which these runs take several times longer beside another busy process
import diffmst  # isort: skip

import dataclasses
import json
import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyloudnorm as pyln
import pytest
import soundfile as sf
import torch

import diffmst.model.weights as weights_module
from diffmst.audio import Tracks, load_tracks
from diffmst.cli import main
from diffmst.console import Settings, render
from diffmst.console.params import MASTER_INDEX, MASTER_PARAMS, TRACK_INDEX, TRACK_PARAMS
from diffmst.errors import DiffmstError
from diffmst.examples import example_song, write_example_song
from diffmst.model import DiffMST, ModelConfig
from diffmst.model.predict import predict_settings
from diffmst.model.weights import save_weights

SR = 44100
SMALL = ModelConfig(sample_rate=22050, channels=(8, 16), dim=32, layers=1, heads=2, ff=64)
#: another network altogether: rate, spectrogram, bands and sizes
OTHER = ModelConfig(sample_rate=16000, n_fft=1024, hop=256, bands=32, channels=(4, 8), dim=16, layers=1, heads=2,
                    ff=32, max_tracks=16)
WINDOWS = {"windows": 2, "window_s": 2.0}
QUICK = ["--windows", "2", "--window", "2.0", "-q"]
GAIN = TRACK_INDEX["gain_db"]
PAN = TRACK_INDEX["pan"]


def small_model(config: ModelConfig = SMALL, seed: int = 2) -> DiffMST:
    torch.manual_seed(seed)
    return DiffMST(config).eval()


def lufs(x: np.ndarray, sr: int) -> float:
    """Integrated loudness of ``(channels, samples)`` by pyloudnorm (BS.1770), the independent meter."""
    return float(pyln.Meter(sr).integrated_loudness(np.asarray(x, np.float64).T))


def peak_dbfs(x: np.ndarray) -> float:
    return float(20 * np.log10(np.abs(x).max()))


def in_range(s: Settings) -> None:
    for specs, v in ((TRACK_PARAMS, s.track_params), (MASTER_PARAMS, s.master_params)):
        lo = torch.tensor([p.min for p in specs], dtype=v.dtype)
        hi = torch.tensor([p.max for p in specs], dtype=v.dtype)
        assert torch.isfinite(v).all() and ((v >= lo) & (v <= hi)).all()


def tied(s: Settings) -> None:
    """A stereo file's L and R share every setting but the pan."""
    others = [j for j in range(len(TRACK_PARAMS)) if j != PAN]
    for i, n in enumerate(s.track_names):
        if n.endswith(".L"):
            j = s.track_names.index(n[:-2] + ".R")
            torch.testing.assert_close(s.track_params[i, others], s.track_params[j, others], rtol=0, atol=0)


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------------------- levels


@pytest.fixture(scope="module")
def stems():
    """An example song in memory: 5 mono tracks and a stereo file (keys.L, keys.R)."""
    names, rows = [], []
    for k, v in example_song(6.0, seed=3).items():
        names += [k] if v.shape[0] == 1 else [f"{k}.L", f"{k}.R"]
        rows += list(v)
    audio = np.stack(rows).astype(np.float32)
    reference = np.stack([audio.sum(0), audio[:3].sum(0)]) * 0.2
    return SimpleNamespace(names=names, audio=audio, reference=reference, model=small_model())


def _settings(stems, audio, link_stereo=True) -> Settings:
    return predict_settings(stems.model, Tracks(stems.names, audio, SR, []), stems.reference, SR,
                            link_stereo=link_stereo, **WINDOWS)


@pytest.fixture(scope="module")
def as_given(stems) -> dict[bool, Settings]:
    return {True: _settings(stems, stems.audio)}


@pytest.mark.parametrize("tracks, db, link_stereo", [
    (["bass"], 10.0, True),           # a mono track made louder
    (["hats"], -10.0, True),          # ... or quieter
    (["keys.L", "keys.R"], 10.0, True),   # a stereo file as a whole: one shared offset
    (["keys.L"], 10.0, False),        # one side of an unlinked stereo file
])
def test_a_track_made_louder_gets_that_much_less_gain_and_nothing_else_changes(stems, as_given, tracks, db,
                                                                                link_stereo):
    if link_stereo not in as_given:
        as_given[link_stereo] = _settings(stems, stems.audio, link_stereo)
    before = as_given[link_stereo]
    louder = stems.audio.copy()
    rows = [stems.names.index(t) for t in tracks]
    louder[rows] *= np.float32(10 ** (db / 20))
    after = _settings(stems, louder, link_stereo)
    assert after.track_names == before.track_names == stems.names
    change = after.track_params[:, GAIN] - before.track_params[:, GAIN]
    want = torch.zeros(len(stems.names))
    want[rows] = -db
    torch.testing.assert_close(change, want, rtol=0, atol=1e-3)
    rest = [j for j in range(len(TRACK_PARAMS)) if j != GAIN]
    torch.testing.assert_close(after.track_params[:, rest], before.track_params[:, rest], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(after.master_params, before.master_params, rtol=1e-5, atol=1e-4)


def test_the_level_of_the_reference_changes_nothing(stems, as_given):
    after = predict_settings(stems.model, Tracks(stems.names, stems.audio, SR, []), stems.reference * 0.1, SR,
                             **WINDOWS)
    torch.testing.assert_close(after.track_params, as_given[True].track_params, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(after.master_params, as_given[True].master_params, rtol=1e-5, atol=1e-4)


# ----------------------------------------------------------------------------- diffmst.predict


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    """Example stems as FLAC files, a loud finished-sounding reference (another example song
    at -12 LUFS, its peaks clipped at -0.45 dBFS) and a small random network's weights."""
    root = tmp_path_factory.mktemp("predict")
    write_example_song(root / "tracks", seconds=8.0, seed=1)
    other = example_song(8.0, seed=7)
    mix = sum(np.repeat(v, 2, 0) if v.shape[0] == 1 else v for v in other.values()).astype(np.float64)
    mix *= 10 ** ((-12.0 - lufs(mix, SR)) / 20)
    mix = np.clip(mix, -0.95, 0.95)
    reference = root / "reference.wav"
    sf.write(str(reference), mix.T.astype(np.float32), SR, subtype="FLOAT")
    model = small_model()
    return SimpleNamespace(root=root, tracks=root / "tracks", reference=reference, model=model,
                           weights=save_weights(model, root / "small.safetensors"),
                           names=load_tracks([root / "tracks"]).names, ref_lufs=lufs(sf.read(reference)[0].T, SR))


@pytest.fixture(scope="module")
def predicted(song) -> Settings:
    return diffmst.predict(song.tracks, song.reference, model=song.model, **WINDOWS)


def render_file_settings(tracks_dir: Path, s: Settings) -> np.ndarray:
    t = load_tracks([tracks_dir])
    audio = torch.from_numpy(t.audio)[None, :, None]
    return render(audio, s.for_tracks(t.names)[None], s.master_params[None], t.sample_rate)[0].numpy()


def test_predict_gives_valid_settings_for_every_track(song, predicted):
    assert predicted.track_names == song.names and len(song.names) == 7
    in_range(predicted)
    tied(predicted)
    Settings.from_dict(json.loads(json.dumps(predicted.to_dict())))  # a valid settings file


@pytest.mark.parametrize("loudness, peak", [("reference", -1.0), (-20.0, -3.0)])
def test_predicted_settings_render_at_the_asked_loudness_under_the_peak_ceiling(song, predicted, loudness, peak):
    s = predicted if (loudness, peak) == ("reference", -1.0) else diffmst.predict(
        song.tracks, song.reference, model=song.model, loudness=loudness, peak_dbtp=peak, **WINDOWS)
    mix = render_file_settings(song.tracks, s)
    want = song.ref_lufs if loudness == "reference" else loudness
    assert abs(lufs(mix, SR) - want) <= 0.5, (lufs(mix, SR), want)
    assert peak_dbfs(mix) <= peak + 1e-3
    assert float(s.master_params[MASTER_INDEX["limiter.ceiling_db"]]) <= peak + 1e-6


def test_predict_takes_weights_from_a_file_or_a_loaded_network_alike(song, predicted):
    from_file = diffmst.predict(song.tracks, song.reference, model=song.weights, **WINDOWS)
    torch.testing.assert_close(from_file.track_params, predicted.track_params, rtol=0, atol=0)
    torch.testing.assert_close(from_file.master_params, predicted.master_params, rtol=0, atol=0)


@pytest.mark.parametrize("max_tracks, ok", [(6, False), (7, True)])
def test_more_tracks_than_the_network_takes_are_refused(song, max_tracks, ok):
    model = small_model(dataclasses.replace(SMALL, max_tracks=max_tracks))
    if ok:
        s = diffmst.predict(song.tracks, song.reference, model=model, windows=1, window_s=1.0)
        assert s.track_names == song.names
        return
    with pytest.raises(DiffmstError, match=r"7 tracks; the network takes at most 6 \(mono tracks, a stereo file"):
        diffmst.predict(song.tracks, song.reference, model=model, windows=1, window_s=1.0)


# ----------------------------------------------------------------------------- diffmst predict


def test_the_predict_command_writes_settings_that_render_accepts(song, predicted, tmp_path, capsys):
    out = tmp_path / "settings.json"
    code, printed, err = run(["predict", song.tracks, song.reference, "-o", out, "--weights", song.weights] + QUICK,
                             capsys)
    assert code == 0, err
    assert printed.strip() == str(out)
    saved = Settings.load(out)
    assert saved.track_names == predicted.track_names  # what diffmst.predict gives, to the file's rounding
    torch.testing.assert_close(saved.track_params, predicted.track_params, rtol=1e-5, atol=2e-6)
    torch.testing.assert_close(saved.master_params, predicted.master_params, rtol=1e-5, atol=2e-6)
    wav = tmp_path / "mix.wav"
    code, printed, err = run(["render", song.tracks, "-p", out, "-o", wav, "-q"], capsys)
    assert code == 0, err
    mix, sr = sf.read(str(wav), always_2d=True)
    assert sr == SR and mix.shape[1] == 2
    assert abs(lufs(mix.T, sr) - song.ref_lufs) <= 0.5
    assert peak_dbfs(mix) <= -1.0 + 1e-3


def test_the_predict_command_takes_the_reference_by_option_too(song, predicted, tmp_path, capsys):
    out = tmp_path / "s.json"
    code, _, err = run(["predict", *sorted(song.tracks.iterdir()), "-r", song.reference, "-o", out,
                        "--weights", song.weights] + QUICK, capsys)
    assert code == 0, err
    torch.testing.assert_close(Settings.load(out).track_params, predicted.track_params, rtol=1e-5, atol=2e-6)


def test_the_predict_command_keeps_an_existing_file_unless_told_and_uses_the_shipped_weights(
        song, tmp_path, capsys, monkeypatch):
    out = tmp_path / "settings.json"
    out.write_text("mine\n")
    code, _, err = run(["predict", song.tracks, song.reference, "-o", out, "--weights", song.weights] + QUICK,
                       capsys)
    assert code == 2 and str(out) in err and "--overwrite" in err and "Traceback" not in err
    assert out.read_text() == "mine\n"
    # no --weights: the shipped file (here: the small network's)
    monkeypatch.setattr(weights_module, "SHIPPED", song.weights)
    code, _, err = run(["predict", song.tracks, song.reference, "-o", out, "--overwrite"] + QUICK, capsys)
    assert code == 0, err
    ref = tmp_path / "ref.json"
    assert run(["predict", song.tracks, song.reference, "-o", ref, "--weights", song.weights] + QUICK, capsys)[0] == 0
    assert json.loads(out.read_text()) == json.loads(ref.read_text())


def test_the_predict_command_says_when_the_shipped_weights_are_missing(song, tmp_path, capsys, monkeypatch):
    missing = tmp_path / "assets" / "compact.safetensors"
    monkeypatch.setattr(weights_module, "SHIPPED", missing)
    out = tmp_path / "settings.json"
    code, _, err = run(["predict", song.tracks, song.reference, "-o", out] + QUICK, capsys)
    assert code == 2 and "Traceback" not in err
    assert err.startswith(f"diffmst: error: {missing}: the shipped weights are missing")
    assert not out.exists()


def test_the_predict_command_refuses_pickled_weights(song, tmp_path, capsys):
    pt = tmp_path / "model.pt"
    torch.save(song.model.state_dict(), pt)
    raw = tmp_path / "model.pkl"
    raw.write_bytes(pickle.dumps({k: v.numpy() for k, v in song.model.state_dict().items()}))
    for bad in (pt, raw):
        out = tmp_path / f"{bad.stem}.json"
        code, _, err = run(["predict", song.tracks, song.reference, "-o", out, "--weights", bad] + QUICK, capsys)
        assert code == 2 and "Traceback" not in err and err.count("\n") <= 3, err
        assert str(bad) in err and "safetensors" in err and not out.exists()


def test_the_predict_command_loads_weights_of_another_network_by_their_own_config(song, tmp_path, capsys):
    other = save_weights(small_model(OTHER, seed=5), tmp_path / "other.safetensors")
    out = tmp_path / "settings.json"
    code, _, err = run(["predict", song.tracks, song.reference, "-o", out, "--weights", other] + QUICK, capsys)
    assert code == 0, err
    s = Settings.load(out)
    assert s.track_names == song.names
    in_range(s)
    tied(s)


def test_the_predict_command_refuses_more_tracks_than_the_network_takes(song, tmp_path, capsys):
    few = save_weights(small_model(dataclasses.replace(SMALL, max_tracks=4)),
                       tmp_path / "four.safetensors")
    out = tmp_path / "settings.json"
    code, _, err = run(["predict", song.tracks, song.reference, "-o", out, "--weights", few] + QUICK, capsys)
    assert code == 2 and "7 tracks; the network takes at most 4" in err and "Traceback" not in err
    assert not out.exists()
