"""Generated corpus: layout, stem checks, instruments really sound, determinism, resume, CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from diffmst.cli import main
from diffmst.errors import DiffmstError
from diffmst.data import fluid
from diffmst.data.generate import Config, generate, resolve, source_available
from diffmst.data.score import Note, Part, midi_hz
from diffmst.data.synth import render_numpy

SR = 44100


def _cfg(out: Path, **kw) -> Config:
    base = dict(songs=2, out=out, seed=7, jobs=1, seconds=(2.5, 3.0), stems=(4, 6), sources=("procedural",),
                renderer="numpy")
    base.update(kw)
    return Config(**base)


def _band_share(x: np.ndarray, sr: int, lo: float, hi: float) -> float:
    """Energy share inside [lo, hi] Hz of the mono sum, from a plain FFT (independent of the
    generator's own check, which uses Welch)."""
    m = x.mean(axis=1) if x.ndim == 2 else x
    spec = np.abs(np.fft.rfft(m)) ** 2
    f = np.fft.rfftfreq(len(m), 1 / sr)
    return float(spec[(f >= lo) & (f <= hi)].sum() / spec[f >= 20].sum())


def _song_audio(folder: Path) -> dict[str, np.ndarray]:
    meta = json.loads((folder / "meta.json").read_text())
    return {s["name"]: sf.read(folder / s["file"], always_2d=True)[0] for s in meta["stems"]}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    summary = generate(_cfg(out, songs=3))
    assert summary["done"] == 3 and not summary["failed"]
    return out


def test_layout_and_meta(corpus):
    songs = sorted(p for p in corpus.iterdir() if p.is_dir())
    assert [p.name for p in songs] == ["song00000", "song00001", "song00002"]
    for folder in songs:
        meta = json.loads((folder / "meta.json").read_text())
        for key in ("song", "source", "tempo_bpm", "sample_rate", "duration_s", "licence", "stems", "instruments"):
            assert key in meta, key
        assert meta["song"] == folder.name and meta["source"] == "procedural" and meta["sample_rate"] == SR
        assert 2.5 <= meta["duration_s"] <= 3.0
        files = sorted(p.name for p in folder.iterdir() if p.suffix == ".flac")
        assert files == sorted(s["file"] for s in meta["stems"])
        assert len(files) >= 1 and not list(folder.glob("*.part"))
        for s in meta["stems"]:
            assert s["file"] == s["name"] + ".flac"
            assert {"instrument", "family", "channels"} <= set(s)


def test_stems_not_silent_not_clipped_same_length(corpus):
    for folder in sorted(p for p in corpus.iterdir() if p.is_dir()):
        meta = json.loads((folder / "meta.json").read_text())
        audio = _song_audio(folder)
        lengths = {x.shape[0] for x in audio.values()}
        assert len(lengths) == 1
        assert lengths.pop() == meta["samples"]
        assert abs(meta["samples"] / SR - meta["duration_s"]) < 1e-3
        for s in meta["stems"]:
            x = audio[s["name"]]
            assert x.shape[1] == s["channels"]
            peak = np.abs(x).max()
            assert 1e-3 < peak < 0.999, (folder.name, s["name"], peak)
            # not silent: several 23 ms frames are loud and far above the stem's own noise floor
            frames = x[: len(x) // 1024 * 1024].reshape(-1, 1024, x.shape[1])
            rms_db = 10 * np.log10((frames ** 2).mean(axis=(1, 2)) + 1e-20)
            floor = s["character"].get("noise_floor_dbfs", -120.0)
            assert rms_db.max() > -50 and rms_db.max() > floor + 30, (folder.name, s["name"])
            assert (rms_db > rms_db.max() - 20).sum() >= 3, (folder.name, s["name"])


def test_instruments_sound_in_their_band(corpus):
    for folder in sorted(p for p in corpus.iterdir() if p.is_dir()):
        meta = json.loads((folder / "meta.json").read_text())
        audio = _song_audio(folder)
        for s in meta["stems"]:
            lo, hi = s["band_hz"]
            assert _band_share(audio[s["name"]], SR, lo, hi) > 0.5, (folder.name, s["name"], lo, hi)


@pytest.mark.parametrize("family", ["piano", "bass", "organ", "strings", "choir", "trumpet", "sax", "flute",
                                    "lead", "guitar", "pad", "mallets"])
def test_numpy_synth_plays_the_written_pitch(family):
    pitch = 57 if family != "bass" else 40
    part = Part(family, family, family, [Note(0.05, 0.8, pitch, 100)])
    x = render_numpy(part, SR, SR, np.random.default_rng(1))[0]
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    f = np.fft.rfftfreq(len(x), 1 / SR)
    f0 = float(midi_hz(pitch))
    # the strongest partial is a harmonic of the written note (within 2 %)
    peak = f[np.argmax(spec)]
    k = max(1, round(peak / f0))
    assert abs(peak - k * f0) < 0.02 * k * f0, (family, peak, f0)
    # and there is energy at the fundamental's octave band
    assert _band_share(x, SR, f0 / 1.5, f0 * 10) > 0.5


@pytest.mark.parametrize("drum,lo,hi", [("kick", 25, 300), ("hats", 2500, 20000), ("toms", 50, 1000)])
def test_numpy_drums_in_band(drum, lo, hi):
    key = {"kick": 36, "hats": 42, "toms": 45}[drum]
    part = Part(drum, "drums", drum, [Note(0.1 + 0.25 * i, 0.1, key, 110) for i in range(4)], drum=True)
    x = render_numpy(part, SR, SR, np.random.default_rng(2))[0]
    assert _band_share(x, SR, lo, hi) > 0.6


def test_same_seed_same_output_other_seed_differs(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate(_cfg(a, songs=1))
    generate(_cfg(b, songs=1))
    generate(_cfg(c, songs=1, seed=8))
    ma = json.loads((a / "song00000" / "meta.json").read_text())
    mb = json.loads((b / "song00000" / "meta.json").read_text())
    for m in (ma, mb):
        m["generator"].pop("wall_s"), m["generator"].pop("cpu_s")
    assert ma == mb
    xa, xb = _song_audio(a / "song00000"), _song_audio(b / "song00000")
    assert xa.keys() == xb.keys() and all(np.array_equal(xa[k], xb[k]) for k in xa)
    xc = _song_audio(c / "song00000")
    assert xc.keys() != xa.keys() or any(x.shape != xc[k].shape or not np.allclose(x, xc[k]) for k, x in xa.items())


def test_song_does_not_depend_on_jobs_or_first(tmp_path):
    one, two, later = tmp_path / "one", tmp_path / "two", tmp_path / "later"
    generate(_cfg(one, songs=2, jobs=1))
    generate(_cfg(two, songs=2, jobs=2))
    generate(_cfg(later, songs=1, first=1))
    for d in (two, later):
        for song in (p for p in d.iterdir() if p.is_dir()):
            x, y = _song_audio(one / song.name), _song_audio(song)
            assert x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x)


def test_resume_skips_finished_and_redoes_partial(tmp_path):
    out = tmp_path / "c"
    generate(_cfg(out, songs=2))
    before = _song_audio(out / "song00001")
    kept = out / "song00000" / "meta.json"
    stamp = kept.stat().st_mtime_ns
    # interrupt song 1: no meta.json, one stem missing, a temp file left over
    (out / "song00001" / "meta.json").unlink()
    next((out / "song00001").glob("*.flac")).unlink()
    (out / "song00001" / ".x.flac.123.part").write_bytes(b"junk")
    summary = generate(_cfg(out, songs=2))
    assert summary["skipped"] == 1 and summary["done"] == 1
    assert kept.stat().st_mtime_ns == stamp
    after = _song_audio(out / "song00001")
    assert before.keys() == after.keys() and all(np.array_equal(before[k], after[k]) for k in before)
    assert not list((out / "song00001").glob("*.part"))


def test_user_errors(tmp_path, capsys):
    out = tmp_path / "c"
    generate(_cfg(out, songs=1))
    assert main(["data", "generate", "-n", "1", "-o", str(out), "--seed", "99", "--seconds", "2", "3",
                 "--sources", "procedural", "--renderer", "numpy", "-q"]) == 2
    assert "diffmst: error:" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # refused by the argument parser
        main(["data", "generate", "-n", "1", "-o", str(tmp_path / "d"), "--seconds", "5", "2", "-q"])
    assert e.value.code == 2 and "--seconds" in capsys.readouterr().err
    assert main(["data", "generate", "-n", "1", "-o", str(tmp_path / "d"), "--sources", "nope", "-q"]) == 2
    assert "unknown source" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["data", "generate", "-n", "1", "-o", str(tmp_path / "file"), "--renderer", "numpy",
                 "--sources", "procedural", "-q"]) == 2


def test_cli_generate_and_stats(tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["data", "generate", "-n", "2", "-o", str(out), "--seconds", "2", "3", "--stems", "4", "5",
                 "--sources", "procedural", "--renderer", "numpy", "-j", "1", "-q"]) == 0
    assert "2 song(s) generated" in capsys.readouterr().out
    assert main(["data", "stats", str(out), "--plot", str(tmp_path / "s.png"), "-j", "1"]) == 0
    text = capsys.readouterr().out
    assert "songs" in text and "2" in text
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv, words", [
    (["generate", "--songs", "-1"], ["--songs", ">= 0"]),
    (["generate", "--songs", "two"], ["--songs", "whole number"]),
    (["generate", "--jobs", "-2"], ["--jobs", ">= 0"]),
    (["generate", "--seed", "-1"], ["--seed", ">= 0"]),
    (["generate", "--first", "-1"], ["--first", ">= 0"]),
    (["generate", "--seconds", "5", "2"], ["--seconds", "MIN 5", "MAX 2"]),
    (["generate", "--seconds", "-3", "2"], ["--seconds", "-3"]),
    (["generate", "--seconds", "nan", "2"], ["--seconds"]),
    (["generate", "--stems", "8", "4"], ["--stems", "MIN 8", "MAX 4"]),
    (["generate", "--stems", "0", "4"], ["--stems"]),
    (["generate", "--sample-rate", "0"], ["--sample-rate"]),
    (["generate", "--sample-rate", "-44100"], ["--sample-rate"]),
    (["stats", "c", "--max-songs", "-1"], ["--max-songs", ">= 0"]),
    (["stats", "c", "--jobs", "-1"], ["--jobs", ">= 0"]),
])
def test_nonsense_options_refused_at_parse_time(tmp_path, capsys, argv, words):
    if argv[0] == "generate":  # a tiny valid run, then the option under test
        argv = ["generate", "-n", "1", "--seconds", "2", "3", "--sources", "procedural", "--renderer", "numpy",
                "-q", "-o", str(tmp_path / "x"), *argv[1:]]
    else:
        argv = ["stats", str(tmp_path), "--plot", str(tmp_path / "x"), *argv[2:]]
    with pytest.raises(SystemExit) as e:
        main(["data", *argv])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words), err
    assert not (tmp_path / "x").exists()


def test_stats_plot_not_overwritten_without_overwrite(tmp_path, capsys, monkeypatch):
    from diffmst.data import stats

    t = np.arange(SR) / SR
    (tmp_path / "c" / "a").mkdir(parents=True)
    sf.write(tmp_path / "c" / "a" / "bass.wav", 0.3 * np.sin(2 * np.pi * 55 * t), SR)
    real = stats.corpus_stats
    for plot in (tmp_path / "c" / "stats.png", tmp_path / "mine.png"):
        plot.write_bytes(b"keep me")
        argv = ["data", "stats", str(tmp_path / "c"), "-j", "1"] + (["--plot", str(plot)] if plot.name == "mine.png" else [])
        analysed = []
        monkeypatch.setattr(stats, "corpus_stats", lambda *a, **k: analysed.append(1) or real(*a, **k))
        assert main(argv) == 2
        assert plot.read_bytes() == b"keep me" and not analysed  # refused before any analysis
        err = capsys.readouterr().err
        assert f"{plot}: already exists (use --overwrite" in err
        assert main(argv + ["--overwrite"]) == 0 and analysed
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # --plot none never touches a file
    assert main(["data", "stats", str(tmp_path / "c"), "-j", "1", "--plot", "none"]) == 0


def test_missing_tools_fall_back(monkeypatch, tmp_path):
    monkeypatch.setattr(fluid, "available", lambda: False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    notes: list[str] = []
    sources, renderer = resolve(Config(out=tmp_path), notes.append)
    assert renderer == "numpy" and "mma" not in sources and "procedural" in sources
    assert any("fluidsynth" in n for n in notes)


needs_fluid = pytest.mark.skipif(not fluid.available(), reason="fluidsynth or a GM soundfont not installed")


@needs_fluid
def test_fluidsynth_renders_deterministically_in_band():
    bass = Part("bass", "bass", "bass", [Note(0.1 + 0.3 * i, 0.25, 36 + i % 5, 100) for i in range(6)])
    kick = Part("kick", "drums", "kick", [Note(0.1 + 0.3 * i, 0.1, 36, 110) for i in range(6)], drum=True)
    x1 = fluid.render_fluid(bass, 33, 2 * SR, SR)
    fluid.render_fluid(kick, 0, 2 * SR + 7, SR)  # something else in between
    x2 = fluid.render_fluid(bass, 33, 2 * SR, SR)
    assert np.array_equal(x1, x2) and np.abs(x1).max() > 1e-3
    assert _band_share(x1.T, SR, *bass.band_hz(SR)) > 0.5
    k = fluid.render_fluid(kick, 0, 2 * SR, SR)
    assert _band_share(k.T, SR, 25, 300) > 0.5


@needs_fluid
def test_fluidsynth_corpus(tmp_path):
    summary = generate(_cfg(tmp_path / "c", songs=2, renderer="fluidsynth", numpy_share=0.0))
    assert summary["done"] == 2
    for folder in (tmp_path / "c").iterdir():
        meta = json.loads((folder / "meta.json").read_text())
        assert meta["generator"]["soundfont"]["file"].endswith(".sf2")
        audio = _song_audio(folder)
        for s in meta["stems"]:
            assert s["renderer"] == "fluidsynth"
            assert _band_share(audio[s["name"]], SR, *s["band_hz"]) > 0.5


@pytest.mark.skipif(source_available("mma") is not None, reason="mma or mido not installed")
def test_mma_source(tmp_path):
    generate(_cfg(tmp_path / "c", songs=1, sources=("mma",), seconds=(6.0, 7.0), stems=(2, 16)))
    meta = json.loads((tmp_path / "c" / "song00000" / "meta.json").read_text())
    assert meta["source"] == "mma" and meta["info"]["groove"] and "MMA" in meta["licence"]
    assert any(s["family"] == "bass" for s in meta["stems"])


@pytest.mark.skipif(source_available("music21") is not None, reason="music21 not installed")
def test_music21_source(tmp_path):
    generate(_cfg(tmp_path / "c", songs=1, sources=("music21",), seconds=(5.0, 6.0), stems=(2, 16)))
    meta = json.loads((tmp_path / "c" / "song00000" / "meta.json").read_text())
    assert meta["source"] == "music21" and "music21 corpus" in meta["licence"]
    assert len(meta["stems"]) >= 2


@pytest.mark.slow
def test_full_length_songs_all_sources(tmp_path):
    summary = generate(Config(songs=6, out=tmp_path / "c", seed=3, jobs=2))
    assert summary["done"] == 6
    for folder in (tmp_path / "c").iterdir():
        meta = json.loads((folder / "meta.json").read_text())
        assert 30 <= meta["duration_s"] <= 90
        assert 1 <= len(meta["stems"]) <= 16


def test_stats_on_a_plain_song_folder_layout(tmp_path):
    """Any "one folder per song" corpus works; without meta.json file names are instruments."""
    from diffmst.data.stats import corpus_stats, format_stats

    t = np.arange(SR) / SR
    for song in ("a", "b"):
        (tmp_path / song).mkdir()
        sf.write(tmp_path / song / "bass.wav", 0.3 * np.sin(2 * np.pi * 55 * t), SR)
        sf.write(tmp_path / song / "vox.wav", np.stack([0.1 * np.sin(2 * np.pi * 440 * t)] * 2, 1), SR)
    stats = corpus_stats(tmp_path, jobs=1)
    s = stats["summary"]
    assert s["songs"] == 2 and s["stems"] == 4 and s["stereo_stems"] == 2
    assert s["instruments"] == {"bass": 2, "vox": 2}
    # a 55 Hz sine's centroid is near 55 Hz, a 440 Hz one's near 440 Hz
    cents = sorted(x["centroid_hz"] for x in stats["songs"][0]["stems"])
    assert 45 < cents[0] < 70 and 400 < cents[1] < 480
    assert "songs           2" in format_stats(stats)


def test_stats_errors(tmp_path):
    from diffmst.data.stats import corpus_stats
    from diffmst.errors import DiffmstError

    with pytest.raises(DiffmstError, match="no such folder"):
        corpus_stats(tmp_path / "missing")
    with pytest.raises(DiffmstError, match="no song folders"):
        corpus_stats(tmp_path)


@pytest.mark.parametrize("change, option", [(dict(seconds=(2.0, 4.0)), "--seconds"), (dict(stems=(2, 3)), "--stems"),
                                            (dict(sample_rate=22050), "--sample-rate"), (dict(seed=5), "--seed")])
def test_resume_with_other_options_is_refused(tmp_path, change, option):
    """A corpus is one distribution: resuming it with other options would mix two."""
    out = tmp_path / "c"
    generate(_cfg(out, songs=1))
    with pytest.raises(DiffmstError, match=option):
        generate(_cfg(out, songs=2, **change))
    assert not (out / "song00001").exists()
