"""The Diff-MST network's contract: shapes, range, padding, permutation, any track count."""

import pytest
import torch

from diffmst.console.params import MASTER_PARAMS, TRACK_PARAMS
from diffmst.model import COMPACT, PAPER, DiffMST, ModelConfig

SR = 44100


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return DiffMST(COMPACT)


def signals(b, n, seconds=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(b, n, int(seconds * SR), generator=g)


def test_outputs_are_settings_in_normalised_units(model):
    track_u, master_u = model(signals(2, 5), signals(2, 2, seed=1))
    assert track_u.shape == (2, 5, len(TRACK_PARAMS)) and master_u.shape == (2, len(MASTER_PARAMS))
    assert ((track_u >= 0) & (track_u <= 1)).all() and ((master_u >= 0) & (master_u <= 1)).all()


@pytest.mark.parametrize("train", [False, True])
def test_padded_tracks_change_nothing_for_the_real_ones(model, train):
    model.train(train)
    x, ref = signals(1, 3), signals(1, 2, seed=1)
    t0, m0 = model(x, ref)
    padded = torch.cat([x, signals(1, 4, seed=2)], 1)  # four more "tracks", masked out
    mask = torch.tensor([[True] * 3 + [False] * 4])
    t1, m1 = model(padded, ref, mask)
    torch.testing.assert_close(t1[:, :3], t0, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(m1, m0, atol=1e-5, rtol=1e-4)
    model.eval()


def test_settings_permute_with_the_tracks(model):
    x, ref = signals(1, 6), signals(1, 2, seed=1)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    t0, m0 = model(x, ref)
    t1, m1 = model(x[:, perm], ref)
    torch.testing.assert_close(t1, t0[:, perm], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(m1, m0, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("n", [1, 64])
def test_any_track_count_from_one_to_sixty_four(model, n):
    with torch.no_grad():
        t, m = model(signals(1, n, seconds=0.25), signals(1, 2, seed=1))
    assert t.shape == (1, n, len(TRACK_PARAMS)) and torch.isfinite(t).all() and torch.isfinite(m).all()
    with pytest.raises(ValueError, match="at most 64"):
        model(signals(1, 65, seconds=0.05), signals(1, 2, seconds=0.05))


def test_every_parameter_gets_a_gradient(model):
    t, m = model(signals(1, 3), signals(1, 2, seed=1))
    (t.square().mean() + m.square().mean()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    model.zero_grad()


def test_configs_round_trip_and_refuse_unknown_fields():
    for cfg in (COMPACT, PAPER):
        assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown model config field"):
        ModelConfig.from_dict({**COMPACT.to_dict(), "depth": 3})
    assert sum(p.numel() for p in DiffMST(COMPACT).parameters()) < 5e6  # "compact": trains on 2 CPU cores


def test_weights_round_trip_through_safetensors_only(tmp_path):
    import pickle

    from diffmst.errors import DiffmstError
    from diffmst.model.weights import load_weights, save_weights

    small = ModelConfig(channels=(8, 16), dim=32, layers=1, heads=2, ff=64)
    torch.manual_seed(1)
    model = DiffMST(small).eval()
    path = save_weights(model, tmp_path / "w.safetensors", meta={"steps": 12})
    loaded, meta = load_weights(path)
    assert meta == {"steps": 12} and loaded.config == small
    x, ref = signals(1, 2, seconds=0.2), signals(1, 2, seconds=0.2, seed=1)
    for a, b in zip(model(x, ref), loaded(x, ref)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(DiffmstError, match="another model config"):
        load_weights(path, config=COMPACT)
    pickled = tmp_path / "w.pt"
    pickled.write_bytes(pickle.dumps(model.state_dict()))
    with pytest.raises(DiffmstError, match="not a safetensors weights file"):
        load_weights(pickled)
    with pytest.raises(DiffmstError, match="no such weights file"):
        load_weights(tmp_path / "missing.safetensors")


def test_predict_gives_settings_for_a_whole_song_with_stereo_pairs_tied():
    import numpy as np

    from diffmst.audio import Tracks
    from diffmst.examples import example_song
    from diffmst.model.predict import predict_settings

    small = ModelConfig(sample_rate=22050, channels=(8, 16), dim=32, layers=1, heads=2, ff=64)
    torch.manual_seed(2)
    model = DiffMST(small)
    stems = example_song(12.0, seed=3)
    names, rows = [], []
    for k, v in stems.items():
        names += [k] if v.shape[0] == 1 else [f"{k}.L", f"{k}.R"]
        rows += list(v)
    song = Tracks(names, np.stack(rows).astype(np.float32), SR, [])
    ref = np.stack([song.audio.sum(0), song.audio[:2].sum(0)]) * 0.2
    s = predict_settings(model, song, ref, SR, windows=3, window_s=2.0)
    assert s.track_names == names and torch.isfinite(s.track_params).all()
    for specs, v in ((TRACK_PARAMS, s.track_params), (MASTER_PARAMS, s.master_params)):
        lo = torch.tensor([p.min for p in specs]); hi = torch.tensor([p.max for p in specs])
        assert ((v >= lo - 1e-4) & (v <= hi + 1e-4)).all()
    from diffmst.console.params import TRACK_INDEX

    pan = TRACK_INDEX["pan"]
    for i, n in enumerate(names):
        if n.endswith(".L"):
            others = [j for j in range(len(TRACK_PARAMS)) if j != pan]
            torch.testing.assert_close(s.track_params[i, others], s.track_params[i + 1, others])
    from diffmst.console import Settings

    Settings.from_dict(s.to_dict())  # a valid settings file: every value within its range


def test_a_tiny_model_learns_two_fixed_examples_through_the_console():
    """Network -> console -> AF loss end to end: Adam on two Method-1 style examples (random
    settings rendered by the console as the references) drives the loss down by half."""
    from diffmst.console import console, denormalize
    from diffmst.features import style_features
    from diffmst.losses import AFLoss

    torch.manual_seed(0)
    sr = 22050
    model = DiffMST(ModelConfig(sample_rate=sr, channels=(8, 16, 32), dim=64, layers=2, heads=2, ff=128))
    g = torch.Generator().manual_seed(1)
    x = 0.1 * torch.randn(2, 4, 2 * sr, generator=g) * torch.tensor([1.0, 0.3, 0.6, 0.2])[None, :, None]
    u_t = 0.2 + 0.6 * torch.rand(2, 4, len(TRACK_PARAMS), generator=g)
    u_m = 0.2 + 0.6 * torch.rand(2, len(MASTER_PARAMS), generator=g)
    with torch.no_grad():
        ref = console(x[:, :, None], denormalize(u_t, TRACK_PARAMS), denormalize(u_m, MASTER_PARAMS), sr,
                      limit=False)[0]
    af, ref_features = AFLoss(sr), style_features(ref, sr)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(80):
        tu, mu = model(x, ref)
        mix = console(x[:, :, None], denormalize(tu, TRACK_PARAMS), denormalize(mu, MASTER_PARAMS), sr, limit=False)[0]
        loss, _ = af(style_features(mix, sr), ref_features)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert min(losses[-10:]) <= 0.5 * losses[0], losses[::5]
