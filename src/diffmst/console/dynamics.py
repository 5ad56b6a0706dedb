"""Feed-forward compressor: log-domain gain computer + attack/release smoother.

Design (Giannoulis, Massberg & Reiss, JAES 2012, "smooth branching" in the log domain):

1. level ``x_db = 20 log10(max(|x|, eps))`` (for a linked stereo compressor, of
   ``max(|L|, |R|)``);
2. static curve with soft knee ``W`` around threshold ``T``, ratio ``R``::

       y = x                                   2 (x - T) <  -W
       y = x + (1/R - 1) (x - T + W/2)^2 / 2W   |2 (x - T)| <= W
       y = T + (x - T) / R                     2 (x - T) >   W

   gain reduction ``g_c = y - x <= 0`` dB;
3. one-pole smoother with **two** time constants::

       g[n] = a g[n-1] + (1 - a) g_c[n],  a = a_attack if g_c[n] < g[n-1] else a_release

   ``a = exp(-ln 9 / (t * sr))`` so that ``t`` is the 10-90 % time of a step;
4. output ``x * 10^((g + makeup) / 20)``.

dasp-pytorch (the paper's code) smooths with the attack constant only, because the
branching recursion cannot be written as a linear filter. Here the recursion runs in a
compiled numba kernel, and its backward pass is the exact adjoint recursion (the branch
decisions are piecewise constant), also compiled: no Python per-sample loop either way.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch

EPS = 1e-8  # level floor: -160 dB
LN9 = math.log(9.0)


def time_to_coef(time_ms: torch.Tensor, sample_rate: float) -> torch.Tensor:
    """Smoothing coefficient for a 10-90 % time of ``time_ms`` at ``sample_rate``."""
    return torch.exp(-LN9 / (time_ms * 1e-3 * sample_rate))


def gain_computer(level_db: torch.Tensor, threshold_db, ratio, knee_db) -> torch.Tensor:
    """Static soft-knee curve; returns gain reduction in dB (<= 0), same shape as ``level_db``."""
    over = level_db - threshold_db
    slope = 1.0 / ratio - 1.0
    knee = slope * (over + knee_db / 2) ** 2 / (2 * knee_db)
    above = slope * over
    g = torch.where(2 * over < -knee_db, torch.zeros_like(level_db), knee)
    return torch.where(2 * over > knee_db, above, g)


@numba.njit(parallel=True, cache=True)
def _smooth_fwd(gc, alpha_a, alpha_r, zi):  # pragma: no cover - compiled
    rows, n = gc.shape
    y = np.empty_like(gc)
    attack = np.empty((rows, n), dtype=np.bool_)
    for r in numba.prange(rows):
        prev = zi[r]
        aa, ar = alpha_a[r], alpha_r[r]
        for i in range(n):
            x = gc[r, i]
            att = x < prev
            a = aa if att else ar
            prev = a * prev + (1.0 - a) * x
            y[r, i] = prev
            attack[r, i] = att
    return y, attack


@numba.njit(parallel=True, cache=True)
def _smooth_bwd(grad_y, y, gc, attack, alpha_a, alpha_r, zi):  # pragma: no cover - compiled
    # adjoint of y[i] = a_i y[i-1] + (1 - a_i) gc[i]:
    #   lam[i] = grad_y[i] + a_{i+1} lam[i+1];  d gc[i] = (1 - a_i) lam[i]
    #   d a_i  = lam[i] (y[i-1] - gc[i]);       d zi = a_0 lam[0]
    rows, n = gc.shape
    g_gc = np.empty_like(gc)
    g_aa = np.zeros(rows, dtype=gc.dtype)
    g_ar = np.zeros(rows, dtype=gc.dtype)
    g_zi = np.zeros(rows, dtype=gc.dtype)
    for r in numba.prange(rows):
        aa, ar = alpha_a[r], alpha_r[r]
        lam = 0.0
        a_next = 0.0
        sa = 0.0
        sr = 0.0
        for i in range(n - 1, -1, -1):
            lam = grad_y[r, i] + a_next * lam
            a = aa if attack[r, i] else ar
            g_gc[r, i] = (1.0 - a) * lam
            prev = y[r, i - 1] if i > 0 else zi[r]
            d = lam * (prev - gc[r, i])
            if attack[r, i]:
                sa += d
            else:
                sr += d
            a_next = a
        g_aa[r] = sa
        g_ar[r] = sr
        g_zi[r] = a_next * lam
    return g_gc, g_aa, g_ar, g_zi


class _Smooth(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gc, alpha_a, alpha_r, zi):
        gc_np = gc.detach().cpu().contiguous().numpy()
        dt = gc_np.dtype
        aa = alpha_a.detach().cpu().numpy().astype(dt)
        ar = alpha_r.detach().cpu().numpy().astype(dt)
        z = zi.detach().cpu().numpy().astype(dt)
        y, attack = _smooth_fwd(gc_np, aa, ar, z)
        y_t = torch.from_numpy(y).to(gc.device)
        ctx.save_for_backward(gc, alpha_a, alpha_r, zi, y_t)
        ctx.attack = attack
        return y_t

    @staticmethod
    def backward(ctx, grad_y):
        gc, alpha_a, alpha_r, zi, y = ctx.saved_tensors
        dt = gc.dtype
        np_ = lambda t: t.detach().cpu().contiguous().numpy()  # noqa: E731
        g_gc, g_aa, g_ar, g_zi = _smooth_bwd(
            np_(grad_y.to(dt)), np_(y), np_(gc), ctx.attack,
            np_(alpha_a.to(dt)), np_(alpha_r.to(dt)), np_(zi.to(dt)),
        )
        dev = gc.device
        return (
            torch.from_numpy(g_gc).to(dev),
            torch.from_numpy(g_aa).to(dev, alpha_a.dtype),
            torch.from_numpy(g_ar).to(dev, alpha_r.dtype),
            torch.from_numpy(g_zi).to(dev, zi.dtype),
        )


# --- fused gain computer + smoother (what :func:`compressor` runs) ----------------------
# The same static curve and recursion as gain_computer() -> smooth_gain(), compiled and
# evaluated in float64 whatever the input dtype. As a chain of torch ops the curve cost
# ~13 full-signal tensors forward and as many again backward.
#
# Speed: a one-pole recursion is latency-bound (each sample waits for the previous one),
# so rows are processed in groups of four whose independent recursions are interleaved
# in one loop (the core overlaps them: ~4x). The curve, which has no recursion, is
# evaluated block by block (_BLOCK samples, scratch stays in cache) in a branch-free loop
# that vectorises, just before the recursion consumes it.

_GROUP = 4
_BLOCK = 2048


@numba.njit(inline="always")
def _curve(level, thr, slope, knee):  # pragma: no cover - compiled
    """Gain reduction and its partials (d/dlevel, d/dslope, d/dknee); d/dthr = -d/dlevel.
    Same expressions as :func:`gain_computer`, written as selects so loops vectorise."""
    over = level - thr
    u = over + knee / 2
    uu = u * u
    below = 2 * over < -knee
    above = 2 * over > knee
    gc = 0.0 if below else (slope * over if above else slope * uu / (2 * knee))
    d_lev = 0.0 if below else (slope if above else slope * u / knee)
    d_slope = 0.0 if below else (over if above else uu / (2 * knee))
    d_knee = 0.0 if (below or above) else slope * u / (2 * knee) - slope * uu / (2 * knee * knee)
    return gc, d_lev, d_slope, d_knee


@numba.njit(inline="always")
def _fill_curve(level, b0, length, thr, ratio, knee, out):  # pragma: no cover - compiled
    """out[:length] = curve(level[b0 : b0 + length])."""
    slope = 1.0 / ratio - 1.0
    lv = level[b0 : b0 + length]
    for i in range(length):
        out[i] = _curve(np.float64(lv[i]), thr, slope, knee)[0]


@numba.njit(inline="always")
def _step(x, prev, aa, ar):  # pragma: no cover - compiled
    """One smoother step: returns (new value, attack branch taken)."""
    att = x < prev
    a = aa if att else ar
    return a * prev + (1.0 - a) * x, att


@numba.njit(inline="always")
def _adjoint_step(gy, lam, a_next, att, aa, ar, prev, gc):  # pragma: no cover - compiled
    """One step of the smoother's adjoint (see _smooth_bwd): returns
    (lam, a, dL/d gc, contribution to dL/d alpha of the branch taken)."""
    lam = gy + a_next * lam
    a = aa if att else ar
    return lam, a, (1.0 - a) * lam, lam * (prev - gc)


@numba.njit(parallel=True, cache=True)
def _curve_smooth_fwd(level, thr, ratio, knee, alpha_a, alpha_r, zi, want_mask):  # pragma: no cover - compiled
    rows, n = level.shape
    y = np.empty_like(level)
    attack = np.empty((rows, n if want_mask else 0), dtype=np.bool_)
    for grp in numba.prange((rows + _GROUP - 1) // _GROUP):
        r0 = grp * _GROUP
        m = min(_GROUP, rows - r0)
        gc = np.empty((_GROUP, _BLOCK))
        state = np.empty(_GROUP)
        for k in range(m):
            state[k] = zi[r0 + k]
        for b0 in range(0, n, _BLOCK):
            nb = min(_BLOCK, n - b0)
            for k in range(m):
                _fill_curve(level[r0 + k], b0, nb, thr[r0 + k], ratio[r0 + k], knee[r0 + k], gc[k])
            if m == _GROUP:  # four interleaved recursions (row views and scalars: registers)
                g0, g1, g2, g3 = gc[0], gc[1], gc[2], gc[3]
                y0, y1 = y[r0, b0 : b0 + nb], y[r0 + 1, b0 : b0 + nb]
                y2, y3 = y[r0 + 2, b0 : b0 + nb], y[r0 + 3, b0 : b0 + nb]
                aa0, aa1, aa2, aa3 = alpha_a[r0], alpha_a[r0 + 1], alpha_a[r0 + 2], alpha_a[r0 + 3]
                ar0, ar1, ar2, ar3 = alpha_r[r0], alpha_r[r0 + 1], alpha_r[r0 + 2], alpha_r[r0 + 3]
                p0, p1, p2, p3 = state[0], state[1], state[2], state[3]
                if want_mask:
                    m0, m1 = attack[r0, b0 : b0 + nb], attack[r0 + 1, b0 : b0 + nb]
                    m2, m3 = attack[r0 + 2, b0 : b0 + nb], attack[r0 + 3, b0 : b0 + nb]
                    for i in range(nb):
                        p0, m0[i] = _step(g0[i], p0, aa0, ar0)
                        p1, m1[i] = _step(g1[i], p1, aa1, ar1)
                        p2, m2[i] = _step(g2[i], p2, aa2, ar2)
                        p3, m3[i] = _step(g3[i], p3, aa3, ar3)
                        y0[i], y1[i], y2[i], y3[i] = p0, p1, p2, p3
                else:
                    for i in range(nb):
                        p0 = _step(g0[i], p0, aa0, ar0)[0]
                        p1 = _step(g1[i], p1, aa1, ar1)[0]
                        p2 = _step(g2[i], p2, aa2, ar2)[0]
                        p3 = _step(g3[i], p3, aa3, ar3)[0]
                        y0[i], y1[i], y2[i], y3[i] = p0, p1, p2, p3
                state[0], state[1], state[2], state[3] = p0, p1, p2, p3
            else:
                for k in range(m):
                    r = r0 + k
                    prev, aa, ar, gg, yr = state[k], alpha_a[r], alpha_r[r], gc[k], y[r, b0 : b0 + nb]
                    for i in range(nb):
                        prev, att = _step(gg[i], prev, aa, ar)
                        yr[i] = prev
                        if want_mask:
                            attack[r, b0 + i] = att
                    state[k] = prev
    return y, attack


# reassoc: the three sums run in vector lanes (another, equally accurate summation order)
@numba.njit(cache=True, fastmath={"reassoc"})
def _curve_chain(level, g_gc, thr, ratio, knee, g_level):  # pragma: no cover - compiled
    """g_level = g_gc * d curve / d level; returns the sums of g_gc times d/dlevel,
    d/dslope and d/dknee. Partials as in :func:`_curve`, with the divisions by the knee
    hoisted out of the loop."""
    slope = 1.0 / ratio - 1.0
    inv_k, inv_2k = 1.0 / knee, 1.0 / (2 * knee)
    inv_2kk = inv_2k / knee
    s_lev = s_slope = s_knee = 0.0
    for j in range(level.shape[0]):
        over = np.float64(level[j]) - thr
        u = over + knee / 2
        uu = u * u
        below = 2 * over < -knee
        above = 2 * over > knee
        d_lev = 0.0 if below else (slope if above else slope * u * inv_k)
        d_slope = 0.0 if below else (over if above else uu * inv_2k)
        d_knee = 0.0 if (below or above) else slope * u * inv_2k - slope * uu * inv_2kk
        gg = g_gc[j]
        g_level[j] = gg * d_lev
        s_lev += gg * d_lev
        s_slope += gg * d_slope
        s_knee += gg * d_knee
    return s_lev, s_slope, s_knee


LN10_OVER_20 = math.log(10.0) / 20.0


@numba.njit(parallel=True, cache=True)
def _compressor_bwd(dy, x, gain, y, level, attack, thr, ratio, knee, alpha_a, alpha_r, zi):  # pragma: no cover
    # The whole compressor's backward for x (rows, channels, n) and one gain per row
    # (see _Compressor), block by block backwards in time, rows interleaved in groups as
    # in the forward. Per block:
    #   1. dL/dg (the smoothed gain in dB) = ln10 / 20 * gain * sum_c dy x, and its sum
    #      for the make-up gain;
    #   2. the smoother's adjoint (as in _smooth_bwd) -> dL/d gc;
    #   3. the chain rule through the curve (_curve_chain) -> dL/d level;
    #   4. dx = dy * gain + dL/d level * 20 / (ln10 x) on the channel(s) that set the level
    #      (|x| = max over channels >= EPS; ties share it equally, as torch's amax does).
    rows, n_ch, n = x.shape
    dx = np.empty_like(x)
    g = np.zeros((7, rows))  # thr, ratio, knee, alpha_a, alpha_r, zi, makeup
    db_per_np = 1.0 / LN10_OVER_20
    for grp in numba.prange((rows + _GROUP - 1) // _GROUP):
        r0 = grp * _GROUP
        m = min(_GROUP, rows - r0)
        gc = np.empty((_GROUP, _BLOCK))
        sg = np.empty((_GROUP, _BLOCK))   # dL/dg
        ggc = np.empty((_GROUP, _BLOCK))  # dL/d gc
        gl = np.empty((_GROUP, _BLOCK))   # dL/d level
        mx = np.empty((_GROUP, _BLOCK))   # largest |x| over channels
        tt = np.empty((_GROUP, _BLOCK))   # level-path scale per sample
        prv = np.empty((_GROUP, _BLOCK))  # smoother value before each sample
        lam = np.zeros(_GROUP)
        a_next = np.zeros(_GROUP)
        sums = np.zeros((6, _GROUP))  # s_lev, s_slope, s_knee, s_alpha_a, s_alpha_r, s_makeup
        for b0 in range(((n - 1) // _BLOCK) * _BLOCK, -1, -_BLOCK):
            nb = min(_BLOCK, n - b0)
            for k in range(m):
                r = r0 + k
                _fill_curve(level[r], b0, nb, thr[r], ratio[r], knee[r], gc[k])
                if b0 > 0:
                    prv[k, :nb] = y[r, b0 - 1 : b0 + nb - 1]
                else:
                    prv[k, 0] = zi[r]
                    prv[k, 1:nb] = y[r, 0 : nb - 1]
                gr, sk = gain[r, b0 : b0 + nb], sg[k]
                d0, x0 = dy[r, 0, b0 : b0 + nb], x[r, 0, b0 : b0 + nb]
                for i in range(nb):
                    sk[i] = np.float64(d0[i]) * np.float64(x0[i])
                for c in range(1, n_ch):
                    dc, xc = dy[r, c, b0 : b0 + nb], x[r, c, b0 : b0 + nb]
                    for i in range(nb):
                        sk[i] += np.float64(dc[i]) * np.float64(xc[i])
                tot = 0.0
                for i in range(nb):
                    sk[i] *= LN10_OVER_20 * np.float64(gr[i])
                    tot += sk[i]
                sums[5, k] += tot
            if m == _GROUP:
                l0, l1, l2, l3 = lam[0], lam[1], lam[2], lam[3]
                n0, n1, n2, n3 = a_next[0], a_next[1], a_next[2], a_next[3]
                sa0 = sa1 = sa2 = sa3 = sr0 = sr1 = sr2 = sr3 = 0.0
                aa0, aa1, aa2, aa3 = alpha_a[r0], alpha_a[r0 + 1], alpha_a[r0 + 2], alpha_a[r0 + 3]
                ar0, ar1, ar2, ar3 = alpha_r[r0], alpha_r[r0 + 1], alpha_r[r0 + 2], alpha_r[r0 + 3]
                g0, g1, g2, g3 = gc[0], gc[1], gc[2], gc[3]
                e0, e1, e2, e3 = ggc[0], ggc[1], ggc[2], ggc[3]
                q0, q1, q2, q3 = prv[0], prv[1], prv[2], prv[3]
                c0, c1, c2, c3 = sg[0], sg[1], sg[2], sg[3]
                m0, m1 = attack[r0, b0 : b0 + nb], attack[r0 + 1, b0 : b0 + nb]
                m2, m3 = attack[r0 + 2, b0 : b0 + nb], attack[r0 + 3, b0 : b0 + nb]
                for j in range(nb - 1, -1, -1):
                    t0, t1, t2, t3 = m0[j], m1[j], m2[j], m3[j]
                    l0, n0, e0[j], d0 = _adjoint_step(c0[j], l0, n0, t0, aa0, ar0, q0[j], g0[j])
                    l1, n1, e1[j], d1 = _adjoint_step(c1[j], l1, n1, t1, aa1, ar1, q1[j], g1[j])
                    l2, n2, e2[j], d2 = _adjoint_step(c2[j], l2, n2, t2, aa2, ar2, q2[j], g2[j])
                    l3, n3, e3[j], d3 = _adjoint_step(c3[j], l3, n3, t3, aa3, ar3, q3[j], g3[j])
                    sa0 += d0 if t0 else 0.0
                    sr0 += 0.0 if t0 else d0
                    sa1 += d1 if t1 else 0.0
                    sr1 += 0.0 if t1 else d1
                    sa2 += d2 if t2 else 0.0
                    sr2 += 0.0 if t2 else d2
                    sa3 += d3 if t3 else 0.0
                    sr3 += 0.0 if t3 else d3
                lam[0], lam[1], lam[2], lam[3] = l0, l1, l2, l3
                a_next[0], a_next[1], a_next[2], a_next[3] = n0, n1, n2, n3
                sums[3, 0] += sa0
                sums[3, 1] += sa1
                sums[3, 2] += sa2
                sums[3, 3] += sa3
                sums[4, 0] += sr0
                sums[4, 1] += sr1
                sums[4, 2] += sr2
                sums[4, 3] += sr3
            else:
                for k in range(m):
                    r = r0 + k
                    lk, nk, sa, sr = lam[k], a_next[k], 0.0, 0.0
                    aa, ar, gg, ee, qq = alpha_a[r], alpha_r[r], gc[k], ggc[k], prv[k]
                    cc, mm = sg[k], attack[r, b0 : b0 + nb]
                    for j in range(nb - 1, -1, -1):
                        att = mm[j]
                        lk, nk, ee[j], d = _adjoint_step(cc[j], lk, nk, att, aa, ar, qq[j], gg[j])
                        sa += d if att else 0.0
                        sr += 0.0 if att else d
                    lam[k], a_next[k] = lk, nk
                    sums[3, k] += sa
                    sums[4, k] += sr
            for k in range(m):
                r = r0 + k
                s_lev, s_slope, s_knee = _curve_chain(
                    level[r, b0 : b0 + nb], ggc[k, :nb], thr[r], ratio[r], knee[r], gl[k, :nb]
                )
                sums[0, k] += s_lev
                sums[1, k] += s_slope
                sums[2, k] += s_knee
                # dx: the direct path, then the level's (the level is 20 log10 of the
                # largest |x| over channels, floored at EPS); loops over one block's
                # samples on 1-d views, branch-free, so they vectorise
                gr, glk, mxk, tk = gain[r, b0 : b0 + nb], gl[k], mx[k], tt[k]
                for i in range(nb):
                    mxk[i] = 0.0
                    tk[i] = 0.0
                for c in range(n_ch):
                    xc = x[r, c, b0 : b0 + nb]
                    for i in range(nb):
                        mxk[i] = max(mxk[i], abs(np.float64(xc[i])))
                for c in range(n_ch):  # ties: tk counts the channels at the maximum
                    xc = x[r, c, b0 : b0 + nb]
                    for i in range(nb):
                        tk[i] += 1.0 if abs(np.float64(xc[i])) == mxk[i] else 0.0
                for i in range(nb):
                    tk[i] = glk[i] * db_per_np / tk[i] if mxk[i] >= EPS else 0.0
                for c in range(n_ch):
                    dc, xc, dxc = dy[r, c, b0 : b0 + nb], x[r, c, b0 : b0 + nb], dx[r, c, b0 : b0 + nb]
                    for i in range(nb):
                        xv = np.float64(xc[i])
                        lv = tk[i] / xv if abs(xv) == mxk[i] and tk[i] != 0.0 else 0.0
                        dxc[i] = np.float64(dc[i]) * np.float64(gr[i]) + lv
        for k in range(m):
            r = r0 + k
            g[0, r] = -sums[0, k]
            g[1, r] = -sums[1, k] / (ratio[r] * ratio[r])  # slope = 1 / ratio - 1
            g[2, r] = sums[2, k]
            g[3, r] = sums[3, k]
            g[4, r] = sums[4, k]
            g[5, r] = a_next[k] * lam[k]
            g[6, r] = sums[5, k]
    return dx, g


class _Compressor(torch.autograd.Function):
    """The compressor for ``x (rows, channels, samples)`` with one gain per row, from the
    largest ``|x|`` over its channels, and per-row parameters ``(rows,)``: ``threshold,
    ratio, knee`` (dB, :1, dB), smoothing coefficients ``alpha_a, alpha_r``, smoother
    state ``zi`` (dB) and ``makeup`` (dB). Returns ``(y, last smoothed gain (rows,))``.

    Forward: the level (torch: its log10 is vectorised, numba's is not), the curve and the
    smoother (:func:`_curve_smooth_fwd`), the gain (torch's exp). The backward is one
    compiled pass (:func:`_compressor_bwd`); as torch ops the level's and the gain's
    derivatives took a dozen full-signal tensors."""

    @staticmethod
    def forward(ctx, x, thr, ratio, knee, alpha_a, alpha_r, zi, makeup):
        rows, ch, n = x.shape
        xc = x.detach().cpu()
        mag = xc.abs()
        mag = mag.amax(1) if ch > 1 else mag.view(rows, n)
        level = mag.clamp_min_(EPS).log10_().mul_(20.0)  # (rows, n), x's dtype
        f64 = lambda t: t.detach().cpu().to(torch.float64).contiguous().numpy()  # noqa: E731
        params = [f64(p) for p in (thr, ratio, knee, alpha_a, alpha_r, zi)]
        want = any(ctx.needs_input_grad)
        g, attack = _curve_smooth_fwd(level.contiguous().numpy(), *params, want)
        g = torch.from_numpy(g)
        gain = (g + makeup.detach().cpu().to(g.dtype)[:, None]).mul_(LN10_OVER_20).exp_()
        y = x * gain.to(x.device).unsqueeze(1)
        if want:
            ctx.save_for_backward(xc, level, g, gain)
            ctx.attack, ctx.params = attack, params
            ctx.metas = [(t.dtype, t.device) for t in (x, thr, ratio, knee, alpha_a, alpha_r, zi, makeup)]
        state = g[:, -1].clone().to(x.device)
        ctx.mark_non_differentiable(state)
        return y, state

    @staticmethod
    def backward(ctx, dy, _d_state):
        xc, level, g, gain = ctx.saved_tensors
        dx, grads = _compressor_bwd(
            dy.detach().cpu().to(xc.dtype).contiguous().numpy(), xc.contiguous().numpy(), gain.numpy(), g.numpy(),
            level.numpy(), ctx.attack, *ctx.params,
        )
        out = [torch.from_numpy(dx)] + list(torch.from_numpy(grads))
        return tuple(
            gr.to(device, dtype) if need else None
            for gr, need, (dtype, device) in zip(out, ctx.needs_input_grad, ctx.metas)
        )


def smooth_gain(
    gc: torch.Tensor, alpha_attack: torch.Tensor, alpha_release: torch.Tensor, state: torch.Tensor | None = None
) -> torch.Tensor:
    """Attack/release smoothing of gain reduction (differentiable in every input).

    Args:
        gc: ``(rows, samples)`` gain reduction, dB.
        alpha_attack, alpha_release: ``(rows,)`` coefficients in (0, 1).
        state: ``(rows,)`` smoother value before the first sample (default 0 dB).
    Returns:
        ``(rows, samples)`` smoothed gain, dB; its last column is the next block's state.
    """
    if state is None:
        state = torch.zeros(gc.shape[0], dtype=gc.dtype, device=gc.device)
    return _Smooth.apply(gc, alpha_attack, alpha_release, state)


def compressor(
    x: torch.Tensor,
    params: torch.Tensor,
    sample_rate: float,
    link: bool = False,
    state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Compress ``x``.

    Args:
        x: ``(rows, channels, samples)``; with ``link=False`` every channel is compressed
            on its own, with ``link=True`` one gain (from ``max |x|`` over channels) is
            applied to all channels of a row.
        params: ``(rows, 6)`` in real units: threshold_db, ratio, attack_ms, release_ms,
            knee_db, makeup_db (the order of :func:`params._compressor_specs`).
        state: smoother state from the previous block, ``(rows * c,)`` where ``c`` is 1
            when linked else ``channels``; None starts at 0 dB.
    Returns:
        ``(y, new_state)``, ``y`` like ``x``.
    """
    rows, ch, n = x.shape
    thr, ratio, att, rel, knee, makeup = params.unbind(-1)
    c = 1 if link else ch  # gains per row
    rep = (lambda p: p) if c == 1 else (lambda p: p.repeat_interleave(c))  # noqa: E731
    if state is None:
        state = torch.zeros(rows * c, dtype=x.dtype, device=x.device)
    # unlinked: every channel is a row of its own
    xr = x if link else x.reshape(rows * ch, 1, n)
    y, last = _Compressor.apply(
        xr, rep(thr), rep(ratio), rep(knee), rep(time_to_coef(att, sample_rate)),
        rep(time_to_coef(rel, sample_rate)), state, rep(makeup),
    )
    return y.view(rows, ch, n), last
