"""Method 1 / Method 2 samplers, random settings, loudness, seeding (tiny fake corpora)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pyloudnorm as pyln
import pytest
import soundfile as sf
import torch

from diffmst.console import MASTER_PARAMS, TRACK_PARAMS, console
from diffmst.console.params import MASTER_INDEX, TRACK_INDEX
from diffmst.data.samplers import (
    EpochSampler,
    GeneratedReferences,
    Method1Dataset,
    Method2Dataset,
    SettingsDistribution,
    choose_stems,
    collate,
    make_loader,
    random_settings,
)
from diffmst.data.sources import GeneratedSource, ReferenceSource, Stem
from diffmst.loudness import loudness_batch_np as integrated_loudness
from diffmst.loudness import normalize_batch_np as normalize_loudness
from diffmst.errors import DiffmstError

SR = 16000


def tone(seconds: float, channels: int, seed: int, silent_until: float = 0.0) -> np.ndarray:
    """Distinct test audio ``(samples, channels)``: a pulsed tone plus noise."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * SR))
    t = np.arange(n) / SR
    env = 0.5 + 0.5 * np.sin(2 * np.pi * (1 + seed % 3) * t) ** 2
    x = 0.3 * (env * np.sin(2 * np.pi * (80 + 53 * seed) * t))[:, None] + 0.03 * rng.standard_normal((n, channels))
    x *= 0.2 + 0.8 * rng.random()  # tracks arrive at different levels
    x[: int(silent_until * SR)] = 0.0
    return x.astype(np.float32)


def make_corpus(root: Path, layout: dict[str, list[int]], seconds: float = 4.0, silent_until: float = 0.0) -> None:
    """Generated layout: ``layout`` maps song name -> channel count of each stem."""
    for s, (song, channels) in enumerate(layout.items()):
        d = root / song
        d.mkdir(parents=True)
        entries = []
        for k, ch in enumerate(channels):
            x = tone(seconds, ch, seed=100 * s + k, silent_until=silent_until)
            sf.write(str(d / f"s{k}.flac"), x if ch == 2 else x[:, 0], SR)
            entries.append({"name": f"s{k}", "file": f"s{k}.flac", "instrument": "x", "family": "x", "channels": ch})
        (d / "meta.json").write_text(json.dumps({"song": song, "sample_rate": SR, "stems": entries}))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> GeneratedSource:
    root = tmp_path_factory.mktemp("corpus")
    make_corpus(root, {
        "alpha": [1, 2, 1, 1, 2, 1],            # 8 tracks
        "beta": [2, 1, 1, 1, 1, 2, 1, 2, 1, 2, 1, 1, 1],  # 18 tracks
        "gamma": [1, 1, 1],                      # 3 tracks: too few for Method 2
        "delta": [2, 2, 1, 1, 1, 1, 1, 1],       # 10 tracks
    })
    return GeneratedSource(root)


def pyln_lufs(x: np.ndarray, sr: int = SR) -> float:
    return pyln.Meter(sr).integrated_loudness(np.asarray(x, dtype=np.float64).T)


# ----------------------------------------------------------------------------- loudness


@pytest.mark.parametrize("sr", [16000, 22050, 44100, 11111])
def test_loudness_agrees_with_pyloudnorm(sr):
    rng = np.random.default_rng(0)
    n = int(2.7 * sr)
    x = rng.standard_normal((3, 2, n)) * np.linspace(0.01, 0.4, n) * np.array([1.0, 0.1, 0.01])[:, None, None]
    x[:, :, : sr // 2] *= 1e-3  # a quiet start that the gates must drop
    ours = integrated_loudness(x, sr)
    assert ours.shape == (3,)
    for k in range(3):
        assert ours[k] == pytest.approx(pyln.Meter(sr).integrated_loudness(x[k].T), abs=0.01)
        assert integrated_loudness(x[k].astype(np.float32), sr) == pytest.approx(ours[k], abs=0.01)
        assert integrated_loudness(x[k, :1], sr) == pytest.approx(pyln.Meter(sr).integrated_loudness(x[k, 0]), abs=0.01)
    assert integrated_loudness(np.zeros((1, SR)), SR) == -np.inf


def test_normalize_loudness_hits_target_and_leaves_silence():
    x = np.stack([tone(2.0, 1, 1).T, np.zeros((1, 2 * SR), np.float32)])
    y, gain = normalize_loudness(x, SR, -30.0)
    assert pyln_lufs(y[0, 0]) == pytest.approx(-30.0, abs=0.01)
    assert gain[1] == 0.0 and not y[1].any()


# ----------------------------------------------------------------------------- settings


def _bounds(specs):
    return np.array([p.min for p in specs]), np.array([p.max for p in specs])


def test_random_settings_stay_in_the_table_ranges():
    tlo, thi = _bounds(TRACK_PARAMS)
    mlo, mhi = _bounds(MASTER_PARAMS)
    for seed in range(200):
        tp, mp = random_settings(16, seed, pairs=[(0, 1), (4, 5)], track_lufs=[-48.0, -20.0, -70.0][seed % 3])
        assert tp.shape == (16, len(TRACK_PARAMS)) and mp.shape == (len(MASTER_PARAMS),)
        assert tp.dtype == torch.float32 and mp.dtype == torch.float32
        assert np.all(tp.numpy() >= tlo.astype(np.float32)) and np.all(tp.numpy() <= thi.astype(np.float32))
        assert np.all(mp.numpy() >= mlo.astype(np.float32)) and np.all(mp.numpy() <= mhi.astype(np.float32))


def test_random_settings_are_plausible_not_uniform():
    draws = [random_settings(16, seed) for seed in range(300)]
    tp = torch.stack([d[0] for d in draws]).reshape(-1, len(TRACK_PARAMS)).numpy()
    mp = torch.stack([d[1] for d in draws]).numpy()
    eq_gains = tp[:, [TRACK_INDEX[f"eq.{b}.gain_db"] for b in ("low_shelf", "band0", "band1", "high_shelf")]]
    assert np.median(np.abs(eq_gains)) < 4.0                  # mostly small moves
    assert np.mean(np.abs(eq_gains) > 9.0) < 0.05
    assert np.std(eq_gains) < 0.7 * 24 / np.sqrt(12)          # far narrower than uniform over +-12
    gains = tp[:, TRACK_INDEX["gain_db"]]
    assert abs(np.median(gains)) < 1.5 and np.percentile(np.abs(gains), 90) < 10  # near equal loudness
    f = tp[:, TRACK_INDEX["eq.band0.freq_hz"]]                 # log-uniform over 80..2000 Hz
    assert np.median(f) == pytest.approx(np.sqrt(80 * 2000), rel=0.2)
    ratio = tp[:, TRACK_INDEX["compressor.ratio"]]
    assert 0.1 < np.mean(ratio == 1.0) < 0.5 and np.median(ratio) < 4.0
    above = (tp[:, TRACK_INDEX["compressor.threshold_db"]] - (-48.0 + gains))[ratio > 1]
    assert np.all(above > -6.0) and np.all(above < 20.0)     # threshold follows the track level
    mratio = mp[:, MASTER_INDEX["compressor.ratio"]]
    assert np.median(mratio) < np.median(ratio[ratio > 1])    # master compression is lighter
    assert np.median(np.abs(mp[:, MASTER_INDEX["eq.band1.gain_db"]])) < 2.0
    pan = tp[:, TRACK_INDEX["pan"]]
    assert pan.std() > 0.1 and np.mean(np.abs(pan - 0.5) < 0.06) > 0.2  # spread, some centred


def test_random_settings_follow_the_track_level_and_keep_pairs():
    a, _ = random_settings(6, 7, pairs=[(2, 3)], track_lufs=-48.0)
    b, _ = random_settings(6, 7, pairs=[(2, 3)], track_lufs=-38.0)
    thr = TRACK_INDEX["compressor.threshold_db"]
    np.testing.assert_allclose(b[:, thr] - a[:, thr], 10.0, atol=1e-4)
    pan = TRACK_INDEX["pan"]
    same = [i for i in range(len(TRACK_PARAMS)) if i != pan]
    torch.testing.assert_close(a[2, same], a[3, same])
    assert a[2, pan] <= 0.5 <= a[3, pan] and a[2, pan] == pytest.approx(1 - a[3, pan].item())
    c, _ = random_settings(6, 8)
    assert not torch.equal(a, c)
    torch.testing.assert_close(random_settings(6, 7)[0], random_settings(6, 7)[0])


def test_settings_distribution_fields_shape_the_draws():
    dist = SettingsDistribution(gain_offset_db=6.0, gain_sd_db=0.0, comp_prob=0.0, eq_gain_sd_db=0.0)
    tp, _ = random_settings(8, 0, distribution=dist)
    np.testing.assert_allclose(tp[:, TRACK_INDEX["gain_db"]], 6.0)
    np.testing.assert_allclose(tp[:, TRACK_INDEX["compressor.ratio"]], 1.0)
    np.testing.assert_allclose(tp[:, TRACK_INDEX["eq.band1.gain_db"]], 0.0)
    master = SettingsDistribution.mastering()
    soft = np.median([random_settings(4, k)[1][MASTER_INDEX["compressor.ratio"]] for k in range(50)])
    firm = np.median([random_settings(4, k, distribution=master)[1][MASTER_INDEX["compressor.ratio"]]
                      for k in range(50)])
    assert firm > soft


def test_choose_stems_keeps_stereo_pairs_and_fills():
    stems = [Stem(f"s{k}", Path(f"s{k}.wav"), ch, SR, SR) for k, ch in enumerate([2, 1, 2, 1, 1, 2, 2])]
    for seed in range(50):
        chosen = choose_stems(stems, 8, np.random.default_rng(seed))
        count = sum(s.channels for s in chosen)
        assert count <= 8 and count >= 7  # full, or one short where only a stereo stem was left
        assert chosen == sorted(chosen, key=stems.index)
    assert sum(s.channels for s in choose_stems(stems, 100, np.random.default_rng(0))) == 11
    odd = stems[:3]  # 2 + 1 + 2 tracks: a draw of 4 may stop at 3 unless told otherwise
    counts = {sum(s.channels for s in choose_stems(odd, 4, np.random.default_rng(seed), 4, 16)) for seed in range(30)}
    assert min(counts) >= 4 and max(counts) <= 5
    assert 3 in {sum(s.channels for s in choose_stems(odd, 4, np.random.default_rng(seed))) for seed in range(30)}


# ----------------------------------------------------------------------------- Method 1


def render(tracks: torch.Tensor, tp: torch.Tensor, mp: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return console(tracks[None], tp[None], mp[None], SR, eq_method="iir")[0][0]


@pytest.mark.parametrize("max_tracks", [8, 16])
def test_method1_reference_and_target_come_from_one_mix_of_one_song(corpus, max_tracks):
    ds = Method1Dataset(corpus, max_tracks=max_tracks, segment_s=2.0, sample_rate=SR, seed=3, return_tracks_a=True)
    half = SR
    for index in range(3):
        it = ds[index]
        t = int(it["mask"].sum())
        names = it["track_names"][:t]
        assert it["tracks"].shape == (max_tracks, 1, half) and it["tracks_a"].shape == (max_tracks, 1, half)
        assert it["reference"].shape == (2, half) and it["target"].shape == (2, half)
        assert it["track_params"].shape == (max_tracks, len(TRACK_PARAMS))
        assert it["mask"].tolist() == [True] * t + [False] * (max_tracks - t)
        assert all(n for n in names) and not any(it["track_names"][t:])
        assert not it["tracks"][t:].any() and not it["tracks_a"][t:].any()
        assert t == min(max_tracks, len(corpus.tracks(it["song"]))) or t == max_tracks - 1
        for k, n in enumerate(names):  # stereo stems stay together
            if n.endswith(".L"):
                assert names[k + 1] == n[:-2] + ".R"

        # T_A and T_B are consecutive halves of one segment of the named song's tracks
        stems = list(dict.fromkeys(n.rsplit(".", 1)[0] if n[-2:] in (".L", ".R") else n for n in names))
        raw = corpus.read(it["song"], stems, it["start_s"], 2.0, SR).audio
        ours = torch.cat([it["tracks_a"], it["tracks"]], -1)[:t, 0].numpy()
        for k in range(t):
            assert np.corrcoef(raw[k], ours[k])[0, 1] > 0.999
            assert pyln_lufs(ours[k]) == pytest.approx(-48.0, abs=0.05)  # over the whole segment

        # the returned settings, applied to each half from rest, reproduce both mixes
        tp, mp = it["track_params"], it["master_params"]
        mix_b = render(it["tracks"], tp, mp) * 10 ** (it["target_gain_db"] / 20)
        mix_a = render(it["tracks_a"], tp, mp) * 10 ** (it["reference_gain_db"] / 20)
        peak = it["target"].abs().max()
        assert peak > 0
        torch.testing.assert_close(mix_b, it["target"], atol=1e-5 * peak, rtol=0)
        torch.testing.assert_close(mix_a, it["reference"], atol=1e-5 * it["reference"].abs().max(), rtol=0)
        assert not torch.allclose(it["reference"], it["target"])
        assert pyln_lufs(it["reference"].numpy()) == pytest.approx(-16.0, abs=0.05)
        assert pyln_lufs(it["target"].numpy()) == pytest.approx(-16.0, abs=0.05)


def test_method1_at_other_rate_and_padding_rows(corpus):
    ds = Method1Dataset(corpus, max_tracks=16, segment_s=1.0, sample_rate=8000, seed=1)
    it = ds[0]
    assert it["tracks"].shape[-1] == 4000 and it["sample_rate"] == 8000
    t = int(it["mask"].sum())
    pad = it["track_params"][t:]
    torch.testing.assert_close(pad, torch.tensor([p.default for p in TRACK_PARAMS]).expand_as(pad))


def test_method1_skips_silence(tmp_path):
    make_corpus(tmp_path, {"late": [1, 1, 2]}, seconds=8.0, silent_until=4.0)
    ds = Method1Dataset(GeneratedSource(tmp_path), max_tracks=8, segment_s=2.0, sample_rate=SR, max_tries=40,
                        return_tracks_a=True)
    for index in range(4):
        it = ds[index]
        assert it["start_s"] > 3.0  # both halves reach into the music (silent until 4 s)
        for half in ("tracks_a", "tracks"):
            assert it[half][:4].abs().amax(-1).min() > 1e-3


# ----------------------------------------------------------------------------- Method 2


def test_method2_track_counts_and_a_different_song(corpus):
    ds = Method2Dataset(corpus, min_tracks=4, max_tracks=16, segment_s=0.5, sample_rate=SR, seed=5)
    counts = []
    for index in range(16):
        it = ds[index]
        t = int(it["mask"].sum())
        counts.append(t)
        assert 4 <= t <= 16 and it["tracks"].shape == (16, 1, SR // 2)
        assert it["song"] != "gamma" and it["reference_song"] != it["song"]
        assert it["reference"].shape == (2, SR // 2)
        assert pyln_lufs(it["reference"].numpy()) == pytest.approx(-16.0, abs=0.05)
        assert len(it["track_names"]) == 16 and not any(it["track_names"][t:])
    assert len(set(counts)) >= 4 and max(counts) > 10


def test_method2_with_a_folder_of_finished_songs(corpus, tmp_path):
    refs_dir = tmp_path / "refs"
    refs_dir.mkdir()
    sf.write(str(refs_dir / "alpha.wav"), tone(3.0, 2, 7), SR)  # same name as a multitrack song
    sf.write(str(refs_dir / "other.flac"), tone(3.0, 1, 8), SR)
    ds = Method2Dataset(corpus, ReferenceSource(refs_dir), segment_s=1.0, sample_rate=SR, seed=2)
    seen = set()
    for index in range(16):
        it = ds[index]
        seen.add((it["song"], it["reference_song"]))
        assert it["reference_song"] != it["song"]
        assert pyln_lufs(it["reference"].numpy()) == pytest.approx(-16.0, abs=0.05)
    assert ("alpha", "other") in seen and any(r == "alpha" for _, r in seen)


def test_generated_references_are_mastered_mixes(corpus):
    refs = GeneratedReferences(corpus)
    x = refs.read("beta", 0.5, 2.0, SR)
    assert x.shape == (2, 2 * SR)
    assert np.abs(x).max() <= 10 ** (-1 / 20) + 1e-6       # soft clipper ceiling
    assert -14.5 < pyln_lufs(x) < -8.0                       # a loud finished master
    assert not np.allclose(x[0], x[1])                        # panned, not mono
    np.testing.assert_array_equal(x, refs.read("beta", 0.5, 2.0, SR))  # reads repeat


def test_method2_errors(tmp_path):
    make_corpus(tmp_path / "one", {"solo": [1, 1, 1, 1]})
    with pytest.raises(DiffmstError, match="one"):
        Method2Dataset(GeneratedSource(tmp_path / "one"))
    make_corpus(tmp_path / "small", {"a": [1, 1], "b": [1]})
    with pytest.raises(DiffmstError, match="small"):
        Method2Dataset(GeneratedSource(tmp_path / "small"), min_tracks=4)


# ----------------------------------------------------------------------------- seeding


def _key(it) -> tuple:
    return it["song"], round(it["start_s"], 6), tuple(it["track_names"])


def test_same_seed_same_items_different_seed_different_items(corpus):
    a = Method1Dataset(corpus, max_tracks=8, segment_s=1.0, sample_rate=SR, seed=11)
    b = Method1Dataset(corpus, max_tracks=8, segment_s=1.0, sample_rate=SR, seed=11)
    c = Method1Dataset(corpus, max_tracks=8, segment_s=1.0, sample_rate=SR, seed=12)
    x, y = a[4], b[4]
    for key in ("tracks", "reference", "target", "track_params", "master_params"):
        torch.testing.assert_close(x[key], y[key], atol=0, rtol=0)
    assert _key(x) == _key(y)
    assert not torch.equal(c[4]["track_params"], x["track_params"])
    assert not torch.equal(a[5]["track_params"], x["track_params"])


def test_epoch_sampler_new_items_per_epoch_and_disjoint_ranks():
    s = EpochSampler(10)
    first = list(s)
    s.set_epoch(1)
    second = list(s)
    assert first == list(range(10)) and not set(first) & set(second)
    s.set_epoch(0)
    assert list(s) == first
    r0, r1 = EpochSampler(10, 0, 2, epoch=3), EpochSampler(10, 1, 2, epoch=3)
    assert sorted(list(r0) + list(r1)) == list(range(30, 40)) and len(r0) == 5


def test_worker_copies_split_an_epoch_into_different_items(corpus):
    """What a DataLoader does with 2 workers, without processes: each worker holds a
    pickled copy of the dataset and fetches its share of the sampler's indices."""
    ds = Method1Dataset(corpus, max_tracks=8, segment_s=0.5, sample_rate=8000, items_per_epoch=6, seed=4)
    sampler = EpochSampler(len(ds), epoch=1)
    indices = list(sampler)
    workers = [pickle.loads(pickle.dumps(ds)) for _ in range(2)]
    items = {i: workers[k % 2][i] for k, i in enumerate(indices)}
    assert len({_key(it) for it in items.values()}) == 6
    for i in indices[:2]:
        torch.testing.assert_close(items[i]["target"], ds[i]["target"], atol=0, rtol=0)
    sampler.set_epoch(0)
    assert not set(sampler) & set(indices)


@pytest.mark.slow
def test_two_workers_give_the_items_of_one_process_all_different(corpus):
    ds = Method1Dataset(corpus, max_tracks=8, segment_s=0.5, sample_rate=8000, items_per_epoch=6, seed=4)
    loader = make_loader(ds, batch_size=1, num_workers=2, persistent_workers=False)
    loader.sampler.set_epoch(2)
    got = [b for b in loader]
    indices = list(loader.sampler)
    assert len(got) == 6
    keys = [(b["song"][0], round(b["start_s"][0], 6), tuple(b["track_names"][0])) for b in got]
    assert len(set(keys)) == 6                                  # no two workers repeat an item
    for batch, index in zip(got, indices):                      # same as in one process
        direct = collate([ds[index]])
        torch.testing.assert_close(batch["target"], direct["target"], atol=0, rtol=0)
        torch.testing.assert_close(batch["track_params"], direct["track_params"], atol=0, rtol=0)


def test_batch_loudness_with_a_floor_gives_the_floor_for_silence_and_leaves_the_rest():
    from diffmst.loudness import loudness_batch_np

    rng = np.random.default_rng(0)
    x = np.stack([0.1 * rng.standard_normal((1, 44100)), np.zeros((1, 44100)), 1e-5 * rng.standard_normal((1, 44100))])
    plain = loudness_batch_np(x.astype(np.float32), 44100)
    floored = loudness_batch_np(x.astype(np.float32), 44100, floor=-70.0)
    assert plain[1] == -np.inf and floored[1] == -70.0
    assert floored[0] == plain[0] and floored[2] == max(plain[2], -70.0)
