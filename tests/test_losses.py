"""Loudness against pyloudnorm; MRSTFT and AF loss behaviour."""

import numpy as np
import pyloudnorm as pyln
import pytest
import torch

from diffmst.examples import example_song
from diffmst.features import frame_features, loudness_gain, style_features
from diffmst.losses import AF_WEIGHTS, AFLoss, MRSTFTLoss
from diffmst.loudness import integrated_loudness, loudness_normalize, loudness_np, normalize_np


def _music(sr, seconds=6.0, seed=0):
    """A stereo music-like signal: the example song's stems summed (keys in stereo)."""
    stems = example_song(seconds, seed, sr)
    mix = np.zeros((2, int(seconds * sr)))
    for i, (name, x) in enumerate(stems.items()):
        mix += x if x.shape[0] == 2 else np.array([[0.3 + 0.1 * i], [1.0 - 0.1 * i]]) * x
    return mix


def _signals(sr):
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.1, (2, 5 * sr))
    pinkish = np.cumsum(rng.normal(0, 1, (2, 5 * sr)), -1)
    pinkish = pinkish - np.convolve(pinkish[0], np.ones(64) / 64, "same")[None]
    quiet = _music(sr) * 10 ** (-40 / 20)  # about -50 LUFS
    gated = _music(sr)
    gated[:, : 2 * sr] *= 1e-3  # a quiet intro that the relative gate removes
    mono = rng.normal(0, 0.05, (1, 3 * sr))
    return {"noise": noise, "pinkish": 0.01 * pinkish, "music": _music(sr), "quiet": quiet,
            "gated": gated, "mono": mono}


@pytest.mark.parametrize("sr", [44100, 24000, 48000])
def test_loudness_matches_pyloudnorm(sr):
    meter = pyln.Meter(sr)
    for name, x in _signals(sr).items():
        ref = meter.integrated_loudness(x.T)
        assert np.isfinite(ref), name
        assert loudness_np(x, sr) == pytest.approx(ref, abs=0.1), name
        ours = float(integrated_loudness(torch.from_numpy(x.astype(np.float32))[None], sr))
        assert ours == pytest.approx(ref, abs=0.1), name


def test_loudness_of_silence_is_minus_infinity():
    assert loudness_np(np.zeros((2, 48000)), 48000) == float("-inf")
    assert float(integrated_loudness(torch.zeros(1, 2, 48000), 48000)) == float("-inf")


def test_loudness_normalize_hits_target_by_pyloudnorm():
    sr = 44100
    meter = pyln.Meter(sr)
    x = torch.from_numpy(np.stack([_music(sr, seed=1), _music(sr, seed=2) * 0.1]).astype(np.float32))
    y, gain = loudness_normalize(x, sr, -16.0)
    for i in range(2):
        assert meter.integrated_loudness(y[i].double().numpy().T) == pytest.approx(-16.0, abs=0.1)
    z, _ = normalize_np(x[1].numpy(), sr, -23.0)
    assert meter.integrated_loudness(z.T.astype(np.float64)) == pytest.approx(-23.0, abs=0.1)


def test_pooled_normalisation_keeps_relative_levels():
    sr = 24000
    x = torch.from_numpy(np.stack([_music(sr, 3, 1), 0.5 * _music(sr, 3, 2)]).astype(np.float32))
    y, gain = loudness_normalize(x, sr, -16.0, pool=True)
    assert gain.shape == (1,)
    ratio = (y[1].square().mean() / y[0].square().mean()) / (x[1].square().mean() / x[0].square().mean())
    assert float(ratio) == pytest.approx(1.0, rel=1e-4)
    # the two excerpts together, as one signal, read the target
    joined = y.transpose(0, 1).reshape(2, -1).double().numpy()
    assert pyln.Meter(sr).integrated_loudness(joined.T) == pytest.approx(-16.0, abs=0.3)


def test_loudness_gradient_finite():
    x = torch.from_numpy(_music(24000, 2.0).astype(np.float32))[None].requires_grad_(True)
    y, _ = loudness_normalize(x, 24000, -16.0)
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("sr", [44100, 24000])
def test_feature_loudness_matches_pyloudnorm(sr):
    """The loudness the features normalise with (measured on their own K-weighted signal)
    reads as pyloudnorm on noise and music, loud, quiet, gated or mono. ("pinkish" is left
    out: a random walk whose loudness lies mostly at 20-40 Hz, where the features' 20 Hz
    high-pass, on purpose, takes some away: it reads 0.3-0.4 LU below pyloudnorm.)"""
    meter = pyln.Meter(sr)
    for name, x in _signals(sr).items():
        if name == "pinkish":
            continue
        if x.shape[0] == 1:
            x = np.concatenate([x, x])
        ff = frame_features(torch.from_numpy(x.astype(np.float32))[None], sr, bark_frames=False)
        ours = -16.0 - 10 * np.log10(float(loudness_gain(ff, -16.0)))
        assert ours == pytest.approx(meter.integrated_loudness(x.T), abs=0.1), name


def test_features_at_a_loudness_equal_those_of_the_normalised_signal():
    sr = 24000
    x = np.stack([_music(sr, 4, 1), 0.02 * _music(sr, 4, 2)])
    scaled = style_features(torch.from_numpy(x.astype(np.float32)), sr, lufs=-16.0)
    for i in range(2):
        y, _ = normalize_np(x[i], sr, -16.0)  # scipy's meter, then the features
        plain = style_features(torch.from_numpy(y)[None], sr)
        for k in ("rms", "crest"):
            assert float(scaled[k][i]) == pytest.approx(float(plain[k][0]), abs=0.1), k
        for k in ("width", "imbalance"):
            assert float(scaled[k][i]) == pytest.approx(float(plain[k][0]), abs=1e-4), k
        assert torch.allclose(scaled["bark"][i], plain["bark"][0], atol=0.012)  # 0.1 dB
    # a level change of the input changes nothing
    louder = style_features(torch.from_numpy((3.0 * x).astype(np.float32)), sr, lufs=-16.0)
    for k, v in scaled.items():
        assert torch.allclose(louder[k], v, atol=1e-4, rtol=1e-5), k


def test_pooled_features_at_a_loudness_keep_relative_levels():
    sr = 24000
    x = torch.from_numpy(np.stack([_music(sr, 5, 1), 0.5 * _music(sr, 5, 2)]).astype(np.float32))
    ff = frame_features(x, sr, bark_frames=False)
    gain = loudness_gain(ff, -16.0, pool=True)
    assert gain.shape == (1,)
    # the features at -16 LUFS are exactly those of both excerpts scaled by one gain
    a, b = style_features(x, sr, pool=True, lufs=-16.0), style_features(x * gain.sqrt(), sr, pool=True)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-4, rtol=1e-5), k
    # and that gain brings the two excerpts, as one signal, to -16 LUFS by pyloudnorm (to
    # within what BS.1770's relative gate makes of blocks straddling it: +-0.15 LU on
    # 3-8 s excerpts of this music depending on where the blocks fall)
    joined = (x * gain.sqrt()).transpose(0, 1).reshape(2, -1).double().numpy()
    assert pyln.Meter(sr).integrated_loudness(joined.T) == pytest.approx(-16.0, abs=0.15)


# ----------------------------------------------------------------------------- MRSTFT


def _np_stft_l1(a, b, w):
    """One resolution of the MRSTFT loss in numpy (Hann, hop w/2, centred reflect padding)."""
    def mag(x):
        x = np.pad(x, (w // 2, w // 2), mode="reflect")
        win = np.hanning(w + 1)[:-1]
        idx = np.arange(0, len(x) - w + 1, w // 2)
        fr = np.stack([x[i : i + w] * win for i in idx])
        return np.sqrt(np.abs(np.fft.rfft(fr, axis=-1)) ** 2 + 1e-12)
    pa, pb = mag(a), mag(b)
    return np.mean(np.abs(pa - pb)) + np.mean(np.abs(np.log(pa + 1e-5) - np.log(pb + 1e-5)))


def test_mrstft_zero_for_identical_and_matches_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 0.1, (2, 16000))
    loss = MRSTFTLoss(windows=(512,))
    ta, tb = torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None]
    assert float(loss(ta, ta)) == 0.0
    assert float(loss(ta, tb)) == pytest.approx(_np_stft_l1(a, b, 512), rel=1e-4)


def test_mrstft_decreases_towards_target():
    rng = np.random.default_rng(1)
    target = torch.from_numpy(_music(24000, 2.0).astype(np.float32))[None]
    noise = torch.from_numpy(rng.normal(0, 0.05, target.shape).astype(np.float32))
    loss = MRSTFTLoss()
    values = [float(loss(target + a * noise, target)) for a in (1.0, 0.5, 0.2, 0.05)]
    assert all(v > 0 for v in values)
    assert all(x > y for x, y in zip(values, values[1:]))
    pred = (target + 0.3 * noise).requires_grad_(True)
    loss(pred, target).backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- AF loss


def test_af_loss_terms_are_weighted_mse_of_features():
    sr = 24000
    x = torch.from_numpy(np.stack([_music(sr, 3, 1), _music(sr, 3, 2)[::-1].copy()]).astype(np.float32))
    y = torch.from_numpy(np.stack([_music(sr, 3, 3), 0.5 * _music(sr, 3, 4)]).astype(np.float32))
    loss = AFLoss(sr)
    total, terms = loss(x, y)
    fx, fy = style_features(x, sr), style_features(y, sr)
    for k, w in AF_WEIGHTS.items():
        expected = w * np.mean((fx[k].double().numpy() - fy[k].double().numpy()) ** 2)
        assert float(terms[k]) == pytest.approx(expected, rel=1e-4, abs=1e-9), k
    assert float(total) == pytest.approx(sum(float(v) for v in terms.values()), rel=1e-6)
    assert float(loss(x, x)[0]) == 0.0
    # precomputed reference features give the same loss
    assert float(loss(x, loss.features(y))[0]) == pytest.approx(float(total), rel=1e-6)


def test_af_loss_custom_weights_and_gradient():
    sr = 24000
    x = torch.from_numpy(_music(sr, 2, 1).astype(np.float32))[None].requires_grad_(True)
    y = torch.from_numpy(_music(sr, 2, 2)[::-1].copy().astype(np.float32))[None]
    only_width = AFLoss(sr, weights={"width": 1.0})
    total, terms = only_width(x, y)
    assert float(terms["rms"].detach()) == 0.0 and float(terms["bark"].detach()) == 0.0
    total.backward()
    assert torch.isfinite(x.grad).all()
    with pytest.raises(ValueError):
        AFLoss(sr, weights={"loudness": 1.0})
