"""Compressor against a plain per-sample numpy reference, timing, linking, gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from diffmst.console import dynamics

SR = 16000


# ------------------------------------------------------------------ independent reference


def ref_compressor(x, thr, ratio, att_ms, rel_ms, knee, makeup, sr, link=False, g0=0.0):
    """Plain per-sample loop (float64): peak detector, soft-knee curve in dB, branching
    attack/release one-pole smoother, alpha = exp(-ln 9 / (t sr)).

    x: (channels, samples). Returns (y, g) with g the smoothed gain reduction in dB,
    (1 or channels, samples)."""
    x = np.asarray(x, dtype=np.float64)
    mags = [np.max(np.abs(x), axis=0)] if link else list(np.abs(x))
    aa = math.exp(-math.log(9) / (att_ms * 1e-3 * sr))
    ar = math.exp(-math.log(9) / (rel_ms * 1e-3 * sr))
    gs = []
    for mag in mags:
        g = np.empty(len(mag))
        prev = g0
        for i, m in enumerate(mag):
            lvl = 20 * math.log10(max(m, 1e-8))
            over = lvl - thr
            if 2 * over < -knee:
                out = lvl
            elif 2 * over > knee:
                out = thr + over / ratio
            else:
                out = lvl + (1 / ratio - 1) * (over + knee / 2) ** 2 / (2 * knee)
            gc = out - lvl
            a = aa if gc < prev else ar
            prev = a * prev + (1 - a) * gc
            g[i] = prev
        gs.append(g)
    g = np.stack(gs)
    y = x * 10 ** ((g + makeup) / 20)
    return y, g


def comp(x, params, sr=SR, link=False, dtype=torch.float64, state=None):
    """Run the module's compressor on numpy x (rows, channels, n) with params (rows, 6)."""
    xt = torch.as_tensor(np.asarray(x), dtype=dtype)
    pt = torch.as_tensor(np.asarray(params, dtype=np.float64), dtype=dtype)
    y, st = dynamics.compressor(xt, pt, sr, link=link, state=state)
    return y, st


def gain_db(y, x):
    """Applied gain in dB (nan where the input is 0; callers mask those samples)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return 20 * np.log10(np.abs(y) / np.abs(x))


def bursts(seed=0, n=6000, sr=SR, kind="sine"):
    """Quiet - loud - quiet - loud(er) test signal: steps up and down in level."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    carrier = np.sin(2 * np.pi * 220 * t + 0.3) if kind == "sine" else rng.standard_normal(n) * 0.5
    env = np.full(n, 0.01)
    env[n // 6 : n // 2] = 1.0
    env[2 * n // 3 : 5 * n // 6] = 0.5
    return carrier * env


# ------------------------------------------------------------------ against the reference

CASES = [
    # threshold, ratio, attack_ms, release_ms, knee, makeup
    (-20.0, 4.0, 5.0, 50.0, 6.0, 0.0),
    (-30.0, 10.0, 20.0, 200.0, 3.0, 3.0),
    (-12.0, 2.0, 50.0, 10.0, 12.0, 6.0),
    (-45.0, 1.5, 250.0, 250.0, 8.0, 1.0),
    (-6.0, 8.0, 5.0, 10.0, 12.0, 0.0),
]


@pytest.mark.parametrize("kind", ["sine", "noise"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_matches_reference(kind, dtype):
    x = np.stack([bursts(s, kind=kind) for s in range(len(CASES))])[:, None]
    y, state = comp(x, CASES, dtype=dtype)
    assert y.dtype == dtype and y.shape == x.shape and state.shape == (len(CASES),)
    y = y.double().numpy()
    for i, c in enumerate(CASES):
        y_ref, g_ref = ref_compressor(x[i], *c, SR)
        ok = np.abs(x[i, 0]) > 1e-4
        err = np.abs(gain_db(y[i, 0], x[i, 0])[ok] - (g_ref[0] + c[5])[ok])
        assert err.max() < 0.1, (c, err.max())
        if dtype == torch.float64:  # the same arithmetic: far tighter than the 0.1 dB spec
            assert err.max() < 1e-6, (c, err.max())
            np.testing.assert_allclose(y[i, 0], y_ref[0], rtol=1e-9, atol=1e-12)
        # the state is the last smoothed gain
        assert float(state[i]) == pytest.approx(g_ref[0, -1], abs=1e-9 if dtype == torch.float64 else 1e-3)
        # and compression really happened on the loud parts
        assert g_ref.min() < -1.0


def test_matches_reference_multichannel_unlinked():
    x = np.stack([bursts(0), bursts(1, kind="noise") * 0.3, bursts(2) * 2])[None]
    c = CASES[0]
    y, st = comp(x, [c])
    assert st.shape == (3,)
    y_ref, _ = ref_compressor(x[0], *c, SR, link=False)
    np.testing.assert_allclose(y[0].numpy(), y_ref, rtol=1e-9, atol=1e-12)


def test_linked_stereo_same_gain_both_channels():
    rng = np.random.default_rng(3)
    left = bursts(0)
    right = rng.standard_normal(len(left)) * 0.2 * (np.arange(len(left)) > 3000)
    x = np.stack([left, right])[None]
    c = (-25.0, 6.0, 10.0, 80.0, 6.0, 2.0)
    y, st = comp(x, [c], link=True)
    assert st.shape == (1,)
    y = y[0].numpy()
    ok = (np.abs(x[0, 0]) > 1e-4) & (np.abs(x[0, 1]) > 1e-4)
    gl, gr = gain_db(y[0], x[0, 0]), gain_db(y[1], x[0, 1])
    np.testing.assert_allclose(gl[ok], gr[ok], atol=1e-9)
    # the linked gain follows max(|L|, |R|)
    y_ref, g_ref = ref_compressor(x[0], *c, SR, link=True)
    assert g_ref.shape[0] == 1
    np.testing.assert_allclose(y, y_ref, rtol=1e-9, atol=1e-12)
    # which differs from compressing each channel on its own
    y_un, _ = comp(x, [c], link=False)
    assert np.abs(y_un[0].numpy() - y).max() > 1e-2


def test_below_threshold_passes_unchanged():
    x = bursts(0) * 0.05  # peaks at 0.05 = -26 dB
    for dtype in (torch.float32, torch.float64):
        xt = torch.as_tensor(x, dtype=dtype).view(1, 1, -1)
        # -26 dB is below threshold - knee/2 = -20 - 6/2 = -23 dB
        p = torch.tensor([[-20.0, 10.0, 5.0, 10.0, 6.0, 0.0]], dtype=dtype)
        y, st = dynamics.compressor(xt, p, SR)
        assert torch.equal(y, xt)
        assert float(st[0]) == 0.0
    # ratio 1: never any gain change, whatever the level
    xt = torch.as_tensor(bursts(1) * 4, dtype=torch.float32).view(1, 1, -1)
    y, _ = dynamics.compressor(xt, torch.tensor([[-60.0, 1.0, 5.0, 10.0, 6.0, 0.0]]), SR)
    assert torch.equal(y, xt)


def test_makeup_gain_exact():
    x = bursts(0) * 0.05
    xt = torch.as_tensor(x).view(1, 1, -1)
    y, _ = dynamics.compressor(xt, torch.tensor([[-20.0, 4.0, 5.0, 10.0, 6.0, 6.0]], dtype=torch.float64), SR)
    np.testing.assert_allclose(y[0, 0].numpy(), x * 10 ** (6 / 20), rtol=1e-12)


def test_static_curve_values():
    """Steady-state gain of a constant-magnitude signal equals the static soft-knee curve."""
    thr, ratio, knee = -20.0, 4.0, 8.0
    levels = np.array([-40.0, -24.0, -22.0, -20.0, -17.0, -16.0, -10.0, 0.0])
    expected = []
    for lv in levels:
        if lv - thr < -knee / 2:
            expected.append(0.0)
        elif lv - thr > knee / 2:
            expected.append((thr + (lv - thr) / ratio) - lv)
        else:
            expected.append((1 / ratio - 1) * (lv - thr + knee / 2) ** 2 / (2 * knee))
    n = 8000
    sign = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)  # |x| constant
    x = (10 ** (levels / 20))[:, None, None] * sign
    p = np.tile([thr, ratio, 5.0, 10.0, knee, 0.0], (len(levels), 1))
    y, _ = comp(x, p)
    g = gain_db(y[:, 0, -1].numpy(), x[:, 0, -1])
    np.testing.assert_allclose(g, expected, atol=1e-6)
    # hand-checked points: above the knee, 4:1 leaves 1/4 of the excess; at threshold, -W/8 (1 - 1/R)
    assert g[-1] == pytest.approx(-15.0, abs=1e-6)
    assert g[3] == pytest.approx(-(1 - 1 / ratio) * knee / 8, abs=1e-6)
    # the curve is continuous at the knee edges
    gc = dynamics.gain_computer(torch.tensor([thr - knee / 2, thr + knee / 2], dtype=torch.float64), thr, ratio, knee)
    assert float(gc[0]) == pytest.approx(0.0, abs=1e-12)
    assert float(gc[1]) == pytest.approx((1 / ratio - 1) * knee / 2, abs=1e-12)


# ------------------------------------------------------------------ timing


def _crossing(g, frac, start):
    """First (fractional) sample index >= start where g reaches frac of its final change."""
    target = g[start - 1] + frac * (g[-1] - g[start - 1])
    rising = g[-1] > g[start - 1]
    idx = np.arange(start, len(g))
    hit = idx[(g[idx] >= target) if rising else (g[idx] <= target)][0]
    # linear interpolation between hit - 1 and hit
    a, b = g[hit - 1], g[hit]
    return hit - 1 + (target - a) / (b - a)


@pytest.mark.parametrize("att_ms,rel_ms", [(10.0, 100.0), (40.0, 25.0), (5.0, 250.0)])
def test_attack_and_release_times(att_ms, rel_ms):
    """10-90 % rise time of the gain reduction after a step up equals attack_ms, the
    recovery after a step down equals release_ms."""
    sr = 16000
    n_up, n_loud, n_down = 400, int(6 * att_ms * 1e-3 * sr) + 400, int(6 * rel_ms * 1e-3 * sr) + 400
    amp = np.concatenate([np.full(n_up, 0.001), np.full(n_loud, 1.0), np.full(n_down, 0.001)])
    x = amp * np.where(np.arange(len(amp)) % 2 == 0, 1.0, -1.0)  # constant |x|: a clean level step
    p = [(-30.0, 10.0, att_ms, rel_ms, 6.0, 0.0)]
    y, _ = comp(x[None, None], p, sr=sr)
    g = gain_db(y[0, 0].numpy(), x)
    assert g[:n_up].max() == 0.0
    g_att = g[: n_up + n_loud]
    assert g_att[-1] == pytest.approx(-27.0, abs=0.01)  # 0 dB -> -30 + 30/10 = -27 dB: GR 27 dB
    rise = (_crossing(g_att, 0.9, n_up) - _crossing(g_att, 0.1, n_up)) / sr * 1e3
    assert rise == pytest.approx(att_ms, rel=0.03)
    g_rel = g[n_up + n_loud :]
    g_rel = np.concatenate([[g_att[-1]], g_rel])
    assert g_rel[-1] == pytest.approx(0.0, abs=0.01)
    fall = (_crossing(g_rel, 0.9, 1) - _crossing(g_rel, 0.1, 1)) / sr * 1e3
    assert fall == pytest.approx(rel_ms, rel=0.03)


def test_release_changes_output_attack_fixed():
    # constant |x| within each segment: the peak detector sees clean level steps, so the
    # gain reduction only grows (attack branch) until the level first drops at `loud_end`
    n, loud_end = 8000, 4000
    levels = np.repeat([0.01, 1.0, 0.01, 0.5, 0.01], [1000, 3000, 1500, 1500, 1000])
    x = (levels * np.where(np.arange(n) % 2 == 0, 1.0, -1.0))[None, None]
    base = (-30.0, 6.0, 10.0, 30.0, 6.0, 0.0)
    slow_release = base[:3] + (200.0,) + base[4:]
    slow_attack = base[:2] + (80.0,) + base[3:]
    y1, y2, y3 = (comp(x, [c])[0][0, 0].numpy() for c in (base, slow_release, slow_attack))
    g1, g2, g3 = (gain_db(y, x[0, 0]) for y in (y1, y2, y3))
    # identical while the gain reduction only grows (attack) ...
    np.testing.assert_array_equal(y1[:loud_end], y2[:loud_end])
    # ... different once the level drops (release)
    assert np.max(np.abs(g1[loud_end:] - g2[loud_end:])) > 3.0
    # slower release: still more gain reduction 50 ms after the drop
    j = loud_end + int(0.05 * SR)
    assert g2[j] < g1[j] - 3.0
    # and the attack time matters during the rise
    assert np.max(np.abs(g3[:loud_end] - g1[:loud_end])) > 3.0


def test_time_to_coef():
    t = torch.tensor([5.0, 10.0, 250.0], dtype=torch.float64)
    for sr in (16000, 44100, 96000):
        a = dynamics.time_to_coef(t, sr).numpy()
        np.testing.assert_allclose(a, np.exp(-np.log(9) / (t.numpy() * 1e-3 * sr)), rtol=1e-14)
        # a step decays from 90 % to 10 % in exactly t: a^(t sr) = 1/9
        np.testing.assert_allclose(a ** (t.numpy() * 1e-3 * sr), 1 / 9, rtol=1e-12)


def test_state_over_blocks_equals_one_pass():
    x = np.stack([bursts(0), bursts(1, kind="noise")])
    xl = torch.as_tensor(x)[None]  # (1, 2, n) linked
    xu = torch.as_tensor(x)[:, None]  # (2, 1, n) unlinked
    pl = torch.tensor([[-25.0, 5.0, 10.0, 60.0, 6.0, 1.0]], dtype=torch.float64)
    pu = pl.repeat(2, 1)
    for xt, p, link in ((xl, pl, True), (xu, pu, False)):
        whole, st_whole = dynamics.compressor(xt, p, SR, link=link)
        parts, st = [], None
        for a, b in ((0, 1), (1, 999), (999, 1000), (1000, 4321), (4321, 6000)):
            y, st = dynamics.compressor(xt[..., a:b], p, SR, link=link, state=st)
            parts.append(y)
        torch.testing.assert_close(torch.cat(parts, -1), whole, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(st, st_whole)
        # the state matters
        fresh, _ = dynamics.compressor(xt[..., 1500:2500], p, SR, link=link)
        assert not torch.allclose(fresh, whole[..., 1500:2500], atol=1e-3)


def test_smooth_gain_matches_loop():
    rng = np.random.default_rng(0)
    gc = -np.abs(rng.standard_normal((3, 500))) * 10
    gc[:, ::7] = 0.0
    aa, ar, z0 = np.array([0.9, 0.5, 0.99]), np.array([0.99, 0.95, 0.5]), np.array([0.0, -3.0, -20.0])
    ref = np.empty_like(gc)
    for r in range(3):
        prev = z0[r]
        for i in range(gc.shape[1]):
            a = aa[r] if gc[r, i] < prev else ar[r]
            prev = a * prev + (1 - a) * gc[r, i]
            ref[r, i] = prev
    out = dynamics.smooth_gain(*(torch.from_numpy(v) for v in (gc, aa, ar, z0)))
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-12, atol=1e-12)
    out0 = dynamics.smooth_gain(torch.from_numpy(gc), torch.from_numpy(aa), torch.from_numpy(ar))
    assert out0[0, 0] == pytest.approx((1 - aa[0]) * gc[0, 0] if gc[0, 0] < 0 else 0.0)


# ------------------------------------------------------------------ gradients


def test_smooth_gain_gradcheck():
    g = torch.Generator().manual_seed(0)
    gc = (-torch.rand(3, 40, generator=g, dtype=torch.float64) * 12).requires_grad_(True)
    aa = torch.tensor([0.7, 0.9, 0.5], dtype=torch.float64, requires_grad=True)
    ar = torch.tensor([0.95, 0.8, 0.6], dtype=torch.float64, requires_grad=True)
    z0 = torch.tensor([0.0, -5.0, -2.5], dtype=torch.float64, requires_grad=True)
    # both branches are taken, and no sample sits on a branch boundary
    y = dynamics.smooth_gain(gc, aa, ar, z0).detach()
    prev = torch.cat([z0.detach()[:, None], y[:, :-1]], 1)
    att = gc.detach() < prev
    assert att.any() and (~att).any()
    assert (gc.detach() - prev).abs().min() > 1e-4
    assert torch.autograd.gradcheck(dynamics.smooth_gain, (gc, aa, ar, z0), eps=1e-7, atol=1e-7)


def test_compressor_gradcheck():
    rng = np.random.default_rng(1)
    sr = 1000  # short times -> coefficients far from 0 and 1 on a short signal
    n = 64
    x = torch.from_numpy(np.stack([bursts(0, n=n, sr=sr), rng.standard_normal(n) * 0.3])[:, None])
    params = torch.tensor(
        [[-20.0, 4.0, 5.0, 20.0, 6.0, 1.0], [-15.0, 3.0, 8.0, 12.0, 10.0, 0.5]], dtype=torch.float64, requires_grad=True
    )
    # no level within 1e-3 dB of a knee edge (the curve's second derivative jumps there)
    lvl = 20 * np.log10(np.maximum(np.abs(x.numpy()[:, 0]), 1e-8))
    for r in range(2):
        thr, knee = params[r, 0].item(), params[r, 4].item()
        assert np.abs(np.abs(lvl[r] - thr) - knee / 2).min() > 1e-3
    # below-knee, knee and above-knee regions are all visited
    assert ((lvl[1] + 15) > 5).any() and ((lvl[1] + 15) < -5).any() and (np.abs(lvl[1] + 15) < 5).any()

    assert torch.autograd.gradcheck(
        lambda p: dynamics.compressor(x, p, sr)[0], (params,), eps=1e-7, atol=1e-6, rtol=1e-4
    )
    assert torch.autograd.gradcheck(
        lambda p: dynamics.compressor(x.view(1, 2, n), p[:1], sr, link=True)[0], (params,), eps=1e-7, atol=1e-6,
        rtol=1e-4,
    )
    # w.r.t. the signal too (shorter)
    xs = x[..., :24].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x, p: dynamics.compressor(x, p, sr)[0], (xs, params), eps=1e-7, atol=1e-6, rtol=1e-4
    )


def test_compressor_gradients_reach_every_parameter():
    x = torch.from_numpy(bursts(0, kind="noise")).float().view(1, 1, -1)
    p = torch.tensor([[-25.0, 4.0, 10.0, 50.0, 6.0, 2.0]], requires_grad=True)
    y, _ = dynamics.compressor(x, p, SR)
    (y**2).mean().backward()
    assert torch.isfinite(p.grad).all()
    assert (p.grad != 0).all(), p.grad
    # signs: higher threshold / lower ratio / slower attack -> louder output
    assert p.grad[0, 0] > 0 and p.grad[0, 1] < 0 and p.grad[0, 2] > 0 and p.grad[0, 5] > 0


def _torch_ops_compressor(x, p, sr, link):
    """The compressor as plain torch ops (autograd differentiates it): the independent
    reference for the fused forward/backward, ties in the linked level included."""
    thr, ratio, att, rel, knee, makeup = p.unbind(-1)
    mag = x.abs().amax(1, keepdim=True) if link else x.abs()
    level = 20 * torch.log10(mag.clamp_min(dynamics.EPS))
    rows, c, n = level.shape
    rep = lambda t: t.repeat_interleave(c)  # noqa: E731
    gc = dynamics.gain_computer(level.reshape(rows * c, n), rep(thr)[:, None], rep(ratio)[:, None], rep(knee)[:, None])
    g = dynamics.smooth_gain(gc, rep(dynamics.time_to_coef(att, sr)), rep(dynamics.time_to_coef(rel, sr)))
    return x * 10 ** ((g.view(rows, c, n) + makeup.view(-1, 1, 1)) / 20)


@pytest.mark.parametrize("case", ["dual_mono_linked", "stereo_linked", "stereo_unlinked"])
def test_fused_gradients_match_torch_ops(case):
    """Gradients w.r.t. signal and every parameter equal autograd's through plain torch ops,
    on 3000-sample signals; dual mono makes every sample a tie for the linked level (the
    gradient is shared equally between the channels, as torch's amax does)."""
    rng = np.random.default_rng(5)
    n = 3000
    left = bursts(1, n=n, kind="noise")
    right = left.copy() if case == "dual_mono_linked" else bursts(2, n=n, kind="noise") * 0.7
    right[:50] = 0.0  # a stretch of silence: the level floor
    left[:50] = 0.0
    x0 = torch.from_numpy(np.stack([np.stack([left, right]), np.stack([right, -left])]))  # (2, 2, n)
    p0 = torch.tensor([[-25.0, 4.0, 10.0, 60.0, 6.0, 1.5], [-18.0, 2.5, 30.0, 20.0, 9.0, 0.5]], dtype=torch.float64)
    w = torch.from_numpy(rng.normal(size=(2, 2, n)))
    link = case != "stereo_unlinked"
    grads = []
    for fn in (lambda x, p: dynamics.compressor(x, p, SR, link=link)[0],
               lambda x, p: _torch_ops_compressor(x, p, SR, link)):
        x, p = x0.clone().requires_grad_(True), p0.clone().requires_grad_(True)
        y = fn(x, p)
        (y * w).sum().backward()
        grads.append((y.detach(), x.grad, p.grad))
    (y1, gx1, gp1), (y2, gx2, gp2) = grads
    torch.testing.assert_close(y1, y2, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(gx1, gx2, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(gp1, gp2, rtol=1e-7, atol=1e-9)
    if case == "dual_mono_linked":  # the tie is really there and shared
        assert torch.equal(x0[0, 0].abs(), x0[0, 1].abs())
