"""Corpus layouts: each loader on a tiny fake corpus built here."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from diffmst.data import sources
from diffmst.data.sources import (
    CambridgeSource,
    FolderSource,
    GeneratedSource,
    MedleyDBSource,
    MUSDBSource,
    ReferenceSource,
    detect_layout,
    open_multitrack,
)
from diffmst.errors import DiffmstError

SR = 16000


def signal(seconds: float, channels: int, seed: int, sr: int = SR) -> np.ndarray:
    """Distinct, reproducible test audio ``(samples, channels)``: noise plus a tone."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    tone = 0.2 * np.sin(2 * np.pi * (100 + 37 * seed) * t)[:, None]
    return (tone + 0.05 * rng.standard_normal((n, channels))).astype(np.float32)


def write(path: Path, seconds: float = 2.0, channels: int = 1, seed: int = 0, sr: int = SR) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    x = signal(seconds, channels, seed, sr)
    sf.write(str(path), x if channels > 1 else x[:, 0], sr, subtype="FLOAT" if path.suffix == ".wav" else "PCM_24")
    return sf.read(str(path), dtype="float32", always_2d=True)[0].T  # what is on disk


def make_generated(root: Path, songs: int = 2, seconds: float = 2.0, sr: int = SR) -> dict:
    """The generator's layout; returns {song: {stem: audio (channels, samples)}}."""
    data = {}
    for s in range(songs):
        d = root / f"song{s:03d}"
        entries, data[d.name] = [], {}
        for k, (name, ch) in enumerate([("kick", 1), ("piano", 2), ("bass", 1)]):
            data[d.name][name] = write(d / f"{name}.flac", seconds, ch, seed=10 * s + k, sr=sr)
            entries.append({"name": name, "file": f"{name}.flac", "instrument": f"inst-{name}",
                            "family": "drums" if name == "kick" else "keys", "channels": ch})
        (d / "meta.json").write_text(json.dumps({
            "song": d.name, "source": "test", "tempo_bpm": 120, "sample_rate": sr,
            "duration_s": seconds, "licence": "CC0", "stems": entries}))
    return data


# ----------------------------------------------------------------------------- generated


def test_generated_layout_lists_songs_stems_and_tracks(tmp_path):
    make_generated(tmp_path, songs=2)
    write(tmp_path / "song999" / "kick.flac")  # unfinished: no meta.json yet
    src = GeneratedSource(tmp_path)
    assert src.songs() == ["song000", "song001"]
    stems = src.stems("song000")
    assert [s.name for s in stems] == ["kick", "piano", "bass"]
    assert [s.channels for s in stems] == [1, 2, 1]
    assert stems[1].instrument == "inst-piano" and stems[0].family == "drums"
    assert stems[0].path == tmp_path / "song000" / "kick.flac"
    assert src.tracks("song000") == ["kick", "piano.L", "piano.R", "bass"]
    assert src.duration("song000") == pytest.approx(2.0)
    assert detect_layout(tmp_path) == "generated"
    assert isinstance(open_multitrack(tmp_path), GeneratedSource)


def test_segment_read_matches_the_file_at_native_rate(tmp_path):
    data = make_generated(tmp_path, songs=1)
    src = GeneratedSource(tmp_path)
    seg = src.read("song000", ["piano", "kick"], start_s=0.5, duration_s=1.0)
    assert seg.track_names == ["piano.L", "piano.R", "kick"]  # in the order asked for
    assert seg.sample_rate == SR and seg.audio.shape == (3, SR) and seg.audio.dtype == np.float32
    a = int(0.5 * SR)
    np.testing.assert_array_equal(seg.audio[2], data["song000"]["kick"][0, a : a + SR])
    np.testing.assert_array_equal(seg.audio[:2], data["song000"]["piano"][:, a : a + SR])
    # past the end: zero-padded to the requested length
    tail = src.read("song000", ["kick"], start_s=1.5, duration_s=1.0)
    np.testing.assert_array_equal(tail.audio[0, : SR // 2], data["song000"]["kick"][0, int(1.5 * SR) :])
    assert not tail.audio[0, SR // 2 :].any()
    whole = src.read("song000")
    assert whole.audio.shape == (4, 2 * SR)


def test_segment_reads_only_the_frames_needed(tmp_path, monkeypatch):
    make_generated(tmp_path, songs=1, seconds=4.0)
    src = GeneratedSource(tmp_path)
    calls = []
    real = sf.read

    def spy(*args, **kwargs):
        calls.append((kwargs.get("start"), kwargs.get("stop")))
        return real(*args, **kwargs)

    monkeypatch.setattr(sources.sf, "read", spy)
    src.read("song000", ["kick"], start_s=2.0, duration_s=0.5)
    src.read("song000", ["kick"], start_s=2.0, duration_s=0.5, sample_rate=22050)
    assert calls[0] == (2 * SR, int(2.5 * SR))
    start, stop = calls[1]  # with resampling: a little context either side only
    assert 1.9 * SR < start < 2 * SR and 2.5 * SR < stop < 2.6 * SR


@pytest.mark.parametrize("rate", [22050, 8000, 44100])
def test_resampled_segment_matches_the_resampled_file(tmp_path, rate):
    data = make_generated(tmp_path, songs=1, seconds=3.0)
    src = GeneratedSource(tmp_path)
    seg = src.read("song000", ["piano"], start_s=1.0, duration_s=1.0, sample_rate=rate)
    assert seg.sample_rate == rate and seg.audio.shape == (2, rate)
    whole = soxr.resample(data["song000"]["piano"].T, SR, rate, quality="HQ").T
    ref = whole[:, rate : 2 * rate]
    assert np.abs(seg.audio - ref).max() < 1e-3 * np.abs(ref).max()


def test_stems_at_different_rates_read_together(tmp_path):
    d = tmp_path / "songA"
    a = write(d / "a.wav", 1.0, 1, seed=1, sr=SR)
    write(d / "b.wav", 1.0, 2, seed=2, sr=2 * SR)
    src = FolderSource(tmp_path)
    assert src.song("songA").sample_rate == 2 * SR
    seg = src.read("songA", start_s=0.25, duration_s=0.5)
    assert seg.sample_rate == 2 * SR and seg.audio.shape == (3, SR)
    seg = src.read("songA", start_s=0.25, duration_s=0.5, sample_rate=SR)
    np.testing.assert_array_equal(seg.audio[0], a[0, SR // 4 : 3 * SR // 4])


def test_source_pickles_for_workers(tmp_path):
    make_generated(tmp_path, songs=1)
    src = GeneratedSource(tmp_path)
    clone = pickle.loads(pickle.dumps(src))
    np.testing.assert_array_equal(clone.read("song000", duration_s=0.5).audio,
                                  src.read("song000", duration_s=0.5).audio)


# ----------------------------------------------------------------------------- other layouts


def test_folder_per_song_layout(tmp_path):
    write(tmp_path / "Song B" / "guitar.wav", channels=2)
    write(tmp_path / "Song B" / "vox.flac")
    write(tmp_path / "Song B" / "mix.wav", channels=2)  # a mix, not a track
    write(tmp_path / "Song A" / "drums.wav")
    write(tmp_path / "Song A" / "drums.flac", seed=3)  # same stem name, other file
    (tmp_path / "Song A" / "notes.txt").write_text("not audio")
    (tmp_path / "empty").mkdir()
    src = FolderSource(tmp_path)
    assert src.songs() == ["Song A", "Song B"]
    assert [s.name for s in src.stems("Song A")] == ["drums.flac", "drums.wav"]
    assert src.tracks("Song B") == ["guitar.L", "guitar.R", "vox"]
    assert detect_layout(tmp_path) == "folder"
    # a folder holding the audio itself is one song
    one = FolderSource(tmp_path / "Song B")
    assert one.songs() == ["Song B"]


def test_medleydb_layout(tmp_path):
    audio = tmp_path / "Audio"
    s1 = audio / "Artist_Song1"
    write(s1 / "Artist_Song1_RAW" / "Artist_Song1_RAW_01_01.wav", seed=1)
    write(s1 / "Artist_Song1_RAW" / "Artist_Song1_RAW_02_01.wav", channels=2, seed=2)
    write(s1 / "Artist_Song1_RAW" / "Artist_Song1_RAW_02_02.wav", seed=3)
    write(s1 / "Artist_Song1_STEMS" / "Artist_Song1_STEM_01.wav", seed=4)
    write(s1 / "Artist_Song1_MIX.wav", channels=2, seed=5)
    (s1 / "Artist_Song1_METADATA.yaml").write_text(
        "artist: Artist\ntitle: Song1\nstems:\n"
        "  S01:\n    component: bass\n    filename: Artist_Song1_STEM_01.wav\n    instrument: electric bass\n"
        "    raw:\n      R01:\n        filename: Artist_Song1_RAW_01_01.wav\n        instrument: electric bass\n"
        "  S02:\n    filename: Artist_Song1_STEM_02.wav\n    instrument: drum set\n"
        "    raw:\n      R01:\n        filename: Artist_Song1_RAW_02_01.wav\n        instrument: drum set\n"
        "      R02:\n        filename: Artist_Song1_RAW_02_02.wav\n        instrument: kick drum\n")
    # second song: metadata in the Metadata folder beside Audio; third: none at all
    s2 = audio / "Other_Song2"
    write(s2 / "Other_Song2_RAW" / "Other_Song2_RAW_01_01.wav", seed=6)
    (tmp_path / "Metadata").mkdir()
    (tmp_path / "Metadata" / "Other_Song2_METADATA.yaml").write_text(
        "stems:\n  S01:\n    raw:\n      R01:\n        filename: Other_Song2_RAW_01_01.wav\n"
        "        instrument: violin\n")
    write(audio / "Third_Song3" / "Third_Song3_RAW" / "Third_Song3_RAW_01_01.wav", seed=7)

    for root in (tmp_path, audio):
        src = MedleyDBSource(root)
        assert src.songs() == ["Artist_Song1", "Other_Song2", "Third_Song3"]
        assert [s.name for s in src.stems("Artist_Song1")] == ["01_01_electric_bass", "02_01_drum_set",
                                                              "02_02_kick_drum"]
        assert src.stems("Artist_Song1")[2].instrument == "kick drum"
        assert src.tracks("Artist_Song1") == ["01_01_electric_bass", "02_01_drum_set.L", "02_01_drum_set.R",
                                              "02_02_kick_drum"]
        assert [s.name for s in src.stems("Other_Song2")] == ["01_01_violin"]
        assert [s.name for s in src.stems("Third_Song3")] == ["01_01"]
        assert detect_layout(root) == "medleydb"
    stems = MedleyDBSource(tmp_path, use="stems")
    assert stems.songs() == ["Artist_Song1"]
    assert [s.name for s in stems.stems("Artist_Song1")] == ["01_electric_bass"]
    refs = ReferenceSource.medleydb(tmp_path)
    assert refs.songs() == ["Audio/Artist_Song1/Artist_Song1_MIX"]


def test_musdb_layout(tmp_path):
    stems = {}
    for split, song, seed in (("train", "A - One", 0), ("test", "B - Two", 10)):
        for k, name in enumerate(("mixture", "drums", "bass", "other", "vocals")):
            stems[(song, name)] = write(tmp_path / split / song / f"{name}.wav", channels=2, seed=seed + k)
    src = MUSDBSource(tmp_path)
    assert src.songs() == ["A - One", "B - Two"]
    assert [s.name for s in src.stems("B - Two")] == ["drums", "bass", "other", "vocals"]
    assert src.tracks("A - One")[:4] == ["drums.L", "drums.R", "bass.L", "bass.R"]
    assert len(src.tracks("A - One")) == 8
    seg = src.read("B - Two", ["vocals"], 0.5, 0.25)
    np.testing.assert_array_equal(seg.audio, stems[("B - Two", "vocals")][:, SR // 2 : 3 * SR // 4])
    assert MUSDBSource(tmp_path, subsets=["test"]).songs() == ["B - Two"]
    assert MUSDBSource(tmp_path / "train").songs() == ["A - One"]
    assert detect_layout(tmp_path) == "musdb"
    refs = ReferenceSource.musdb(tmp_path)
    assert refs.songs() == ["test/B - Two", "train/A - One"]
    assert refs.song_name("train/A - One") == "A - One"
    np.testing.assert_array_equal(refs.read("train/A - One", 0.0, 0.5), stems[("A - One", "mixture")][:, : SR // 2])


def test_cambridge_layout(tmp_path):
    full = tmp_path / "Artist_Song" / "Artist_Song_Full"
    write(full / "01_Kick.wav", seed=1)
    write(full / "02_Snare.wav", seed=2)
    write(full / "03_Overheads.wav", channels=2, seed=3)
    write(full / "07_Vox.wav", seed=4)
    write(full / "08_Vox.wav", seed=5)  # same name after the number: keep the numbers
    write(tmp_path / "Band_Other" / "01 Bass.flac", seed=6)
    src = CambridgeSource(tmp_path)
    assert src.songs() == ["Artist_Song", "Band_Other"]
    assert [s.name for s in src.stems("Artist_Song")] == ["Kick", "Snare", "Overheads", "07_Vox", "08_Vox"]
    assert src.tracks("Artist_Song")[2:4] == ["Overheads.L", "Overheads.R"]
    assert [s.name for s in src.stems("Band_Other")] == ["Bass"]
    assert detect_layout(tmp_path) == "cambridge"


def test_reference_source(tmp_path):
    stereo = write(tmp_path / "album" / "song one.wav", 2.0, 2, seed=1)
    mono = write(tmp_path / "song two.flac", 2.0, 1, seed=2)
    (tmp_path / "cover.jpg").write_bytes(b"\xff\xd8")
    refs = ReferenceSource(tmp_path)
    assert refs.songs() == ["album/song one", "song two"]
    x = refs.read("song two", 0.5, 1.0)
    assert x.shape == (2, SR)
    np.testing.assert_array_equal(x[0], x[1])  # mono duplicated
    np.testing.assert_array_equal(x[0], mono[0, SR // 2 : 3 * SR // 2])
    y = refs.read("album/song one", 0.0, 1.0, sample_rate=8000)
    assert y.shape == (2, 8000)
    ref = soxr.resample(stereo.T, SR, 8000, quality="HQ").T[:, 2000:6000]
    assert np.abs(y[:, 2000:6000] - ref).max() < 1e-3 * np.abs(ref).max()
    assert refs.duration("song two") == pytest.approx(2.0)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("cls", [GeneratedSource, FolderSource, MedleyDBSource, MUSDBSource, CambridgeSource,
                                 ReferenceSource])
def test_missing_and_empty_folders_raise_naming_the_path(tmp_path, cls):
    missing = tmp_path / "nowhere"
    with pytest.raises(DiffmstError, match="nowhere"):
        cls(missing)
    empty = tmp_path / "empty_corpus"
    (empty / "a_folder").mkdir(parents=True)
    with pytest.raises(DiffmstError, match="empty_corpus"):
        cls(empty)


def test_bad_files_raise_naming_the_file(tmp_path):
    d = tmp_path / "song"
    d.mkdir()
    (d / "broken.wav").write_bytes(b"RIFF not really a wave file")
    with pytest.raises(DiffmstError, match="broken.wav"):
        FolderSource(tmp_path)
    g = tmp_path / "gen" / "s1"
    g.mkdir(parents=True)
    (g / "meta.json").write_text("{not json")
    with pytest.raises(DiffmstError, match="meta.json"):
        GeneratedSource(tmp_path / "gen")
    (g / "meta.json").write_text(json.dumps({"stems": [{"name": "x", "file": "x.flac"}]}))
    with pytest.raises(DiffmstError, match="x.flac"):
        GeneratedSource(tmp_path / "gen")


def test_unknown_song_or_stem_raises(tmp_path):
    make_generated(tmp_path, songs=1)
    src = GeneratedSource(tmp_path)
    with pytest.raises(DiffmstError, match="nope"):
        src.read("nope")
    with pytest.raises(DiffmstError, match="tuba"):
        src.read("song000", ["tuba"])
    with pytest.raises(DiffmstError, match="layout"):
        open_multitrack(tmp_path, layout="cassette")
