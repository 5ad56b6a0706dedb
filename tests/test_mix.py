"""`diffmst mix` and :func:`diffmst.mix`: the song pipeline with a network start.

A small random network (weights written to a file, as a user's own would be) stands in
for the shipped model, whose quality is measured in docs/model.md, not here."""

import json

import numpy as np
import pyloudnorm as pyln
import pytest
import soundfile as sf
import torch

from diffmst.audio import write_audio
from diffmst.cli import main
from diffmst.examples import example_song, write_example_song
from diffmst.model import DiffMST, ModelConfig
from diffmst.model.weights import save_weights

SR = 44100
QUICK = ["--windows", "2", "--window", "1.0", "--analysis-sr", "16000", "-q"]


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    root = tmp_path_factory.mktemp("song")
    write_example_song(root / "tracks", seconds=4.0, seed=0)
    other = example_song(3.0, seed=7)
    ref = np.zeros((2, 3 * SR), np.float32)
    for i, (name, x) in enumerate(other.items()):
        pan = 0.15 + 0.14 * i
        ref += x if x.shape[0] == 2 else np.array([[1 - pan], [pan]], np.float32) * x
    write_audio(root / "ref.wav", ref * 0.8, SR)
    torch.manual_seed(0)
    net = DiffMST(ModelConfig(sample_rate=22050, bands=32, channels=(8, 16), dim=32, layers=1, heads=2, ff=64))
    save_weights(net, root / "net.safetensors")
    return root


def read(path):
    data, sr = sf.read(str(path), always_2d=True, dtype="float32")
    return data.T, sr


def lufs(x, sr):
    return pyln.Meter(sr).integrated_loudness(x.T.astype(np.float64))


def test_mix_writes_the_whole_song_at_the_references_loudness_and_its_settings_rerender_it(song, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["mix", str(song / "tracks"), str(song / "ref.wav"), "-o", str(out), "--method", "network", "-w", str(song / "net.safetensors"),
            "--refine", "2", "--bit-depth", "16"] + QUICK
    assert main(args) == 0
    assert "network + 2 steps" in capsys.readouterr().out
    mix, sr = read(out / "mix.wav")
    assert sr == SR and mix.shape == (2, 4 * SR)  # the longest stem's length, its rate
    assert sf.info(str(out / "mix.wav")).subtype == "PCM_16"
    ref, _ = read(song / "ref.wav")
    assert abs(lufs(mix, sr) - lufs(ref, SR)) < 0.5
    report = json.loads((out / "report.json").read_text())
    assert report["options"]["method"] == "network" and len(report["history"]) == 2
    assert main(["render", str(song / "tracks"), "-p", str(out / "settings.json"), "-o", str(tmp_path / "again.wav"),
                 "--bit-depth", "32f", "-q"]) == 0
    again, _ = read(tmp_path / "again.wav")
    assert np.abs(again - mix).max() < 1e-4 + 2.0 ** -15  # 16-bit rounding of the first file


def test_mix_with_refine_0_is_the_network_alone_and_json_summarises_it(song, tmp_path, capsys):
    from diffmst import predict

    out = tmp_path / "out"
    assert main(["mix", str(song / "tracks"), str(song / "ref.wav"), "-o", str(out), "--method", "network", "-w",
                 str(song / "net.safetensors"), "--refine", "0", "--json", "--bit-depth", "32f",
                 "--windows", "2", "--window", "1.0", "-q"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["method"] == "network" and summary["refine"] == 0
    assert set(summary["af_song"]) == {"equal_loudness", "optimized"}
    # the same settings as `predict` (both finish the network's settings the same way)
    settings = predict(song / "tracks", song / "ref.wav", model=song / "net.safetensors", windows=2, window_s=1.0)
    saved = json.loads((out / "settings.json").read_text())
    assert saved == json.loads(json.dumps(settings.to_dict()))


def test_mix_equal_loudness_method_matches_the_optimiser_started_from_equal_loudness_at_0_steps(song, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["mix", str(song / "tracks"), str(song / "ref.wav"), "-o", str(a), "--method", "equal-loudness",
                 "--bit-depth", "32f"] + QUICK) == 0
    assert main(["optimize", str(song / "tracks"), str(song / "ref.wav"), "-o", str(b), "--steps", "0",
                 "--bit-depth", "32f"] + QUICK) == 0
    assert np.array_equal(read(a / "mix.wav")[0], read(b / "mix.wav")[0])


def test_python_mix_takes_arrays_and_returns_a_result_that_saves(song, tmp_path):
    from diffmst import mix
    from diffmst.model.weights import load_weights

    stems = example_song(3.0, seed=1)
    names, rows = [], []
    for k, v in stems.items():
        names += [k] if v.shape[0] == 1 else [f"{k}.L", f"{k}.R"]
        rows += list(v)
    ref, _ = read(song / "ref.wav")
    net, _ = load_weights(song / "net.safetensors")
    res = mix(np.stack(rows), ref, sample_rate=SR, reference_sr=SR, track_names=names, model=net, method="network", refine=1,
              windows=2, window_s=1.0, analysis_sr=16000)
    assert res.mix.shape == (2, 3 * SR) and res.settings.track_names == names
    paths = res.save(tmp_path / "out")
    assert paths["mix"].is_file() and paths["settings"].is_file()


def test_weights_without_the_network_method_are_refused(song, tmp_path, capsys):
    assert main(["mix", str(song / "tracks"), str(song / "ref.wav"), "-o", str(tmp_path / "o"), "-w",
                 str(song / "net.safetensors")] + QUICK) == 2
    assert "--weights is for --method network" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_mix_refuses_an_unknown_method_and_too_many_tracks(song):
    from diffmst import mix
    from diffmst.errors import DiffmstError

    ref, _ = read(song / "ref.wav")
    with pytest.raises(DiffmstError, match="method must be one of"):
        mix(np.zeros((2, SR), np.float32), ref, sample_rate=SR, reference_sr=SR, method="magic")
    small = DiffMST(ModelConfig(sample_rate=22050, bands=32, channels=(8,), dim=16, layers=1, heads=2, ff=32,
                                max_tracks=2))
    with pytest.raises(DiffmstError, match="at most 2"):
        mix(np.random.default_rng(0).standard_normal((3, 2 * SR)).astype(np.float32) * 0.1, ref, sample_rate=SR,
            reference_sr=SR, model=small, method="network", refine=0, windows=1, window_s=1.0)


def test_strength_0_is_the_equal_loudness_mix_and_1_the_full_match(song, tmp_path):
    w = str(song / "net.safetensors")
    net = ["--method", "network", "-w", w]
    runs = {}
    for name, extra in (("zero", net + ["--strength", "0"]), ("equal", ["--method", "equal-loudness"]),
                        ("half", net + ["--strength", "0.5"]), ("full", net)):
        out = tmp_path / name
        assert main(["mix", str(song / "tracks"), str(song / "ref.wav"), "-o", str(out), "--refine", "0",
                     "--bit-depth", "32f"] + extra + QUICK) == 0
        runs[name] = read(out / "mix.wav")[0]
    assert np.abs(runs["zero"] - runs["equal"]).max() < 1e-4
    assert np.abs(runs["full"] - runs["equal"]).max() > 1e-3
    # halfway lies between the two (each side's level difference from equal loudness)
    def side_db(x):
        return 10 * np.log10(np.mean((x[0] - x[1]) ** 2) + 1e-20)
    lo, hi = sorted([side_db(runs["equal"]), side_db(runs["full"])])
    assert lo - 0.1 <= side_db(runs["half"]) <= hi + 0.1
    with pytest.raises(SystemExit) as e:  # argparse refuses it before any work
        main(["mix", str(song / "tracks"), str(song / "ref.wav"), "-o", str(tmp_path / "bad"), "--method", "network", "-w", w,
              "--strength", "1.5"] + QUICK)
    assert e.value.code == 2 and not (tmp_path / "bad").exists()


def test_several_references_are_matched_together_at_their_mean_loudness(song, tmp_path):
    ref, _ = read(song / "ref.wav")
    quiet = tmp_path / "quiet.wav"
    write_audio(quiet, ref[::-1] * 10 ** (-8 / 20), SR)  # channels swapped, 8 dB quieter
    out = tmp_path / "out"
    assert main(["mix", str(song / "tracks"), "-r", str(song / "ref.wav"), "-r", str(quiet), "-o", str(out), "--method", "network", "-w",
                 str(song / "net.safetensors"), "--refine", "1", "--bit-depth", "32f"] + QUICK) == 0
    report = json.loads((out / "report.json").read_text())
    assert str(quiet) in report["reference"] and str(song / "ref.wav") in report["reference"]
    want = (lufs(ref, SR) + lufs(ref * 10 ** (-8 / 20), SR)) / 2
    assert abs(lufs(read(out / "mix.wav")[0], SR) - want) < 0.5
    # the same as the references joined end to end at that loudness (pyloudnorm as the meter)
    from diffmst.pipeline.song import load_references

    joined, sr, _ = load_references([song / "ref.wav", quiet])
    assert sr == SR and joined.shape == (2, 2 * ref.shape[1])
    assert abs(lufs(joined[:, : ref.shape[1]], SR) - want) < 0.1 and abs(lufs(joined[:, ref.shape[1]:], SR) - want) < 0.1
