"""Six-band parametric EQ: RBJ-cookbook biquads, applied two ways that agree.

* ``fft`` (differentiable): all six biquads of a channel are evaluated on one rfft grid,
  multiplied, and applied with a single rfft/irfft pair. The signal is zero-padded by
  ``tail`` samples so the (decaying) impulse response does not wrap around; the result is
  then the causal IIR output to within the truncated tail (< -100 dB for the table's
  ranges with the default one-second tail).
* ``iir`` (exact, no gradient): a cascade of transposed direct-form II biquads, compiled
  with numba and parallel over channels, with filter state in and out so a whole song can
  be rendered block by block.

EQ parameter tensors are ``(..., 18)``: for each band of :data:`params.EQ_BANDS` in order
``gain_db, freq_hz, q``. Frequencies are clamped below Nyquist at render time.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math

import numba
import numpy as np
import torch

from .params import EQ_BANDS

N_BANDS = len(EQ_BANDS)
N_EQ_PARAMS = 3 * N_BANDS
# highest usable centre frequency as a fraction of the sample rate (just below Nyquist)
MAX_FREQ_FRACTION = 0.49

# rfft of inputs kept by reuse_input_spectra(): key -> (input, spectrum, its version), or
# None (off)
# per thread (and asyncio task): two requests in one server must not share or drop each
# other's cache
_SPECTRA: contextvars.ContextVar[dict | None] = contextvars.ContextVar("diffmst_eq_spectra", default=None)
_MAX_SPECTRA = 4


@contextlib.contextmanager
def reuse_input_spectra():
    """Inside this block the FFT EQ keeps the rfft of each input that needs no gradient
    and reuses it while the same, unmodified tensor comes again.

    For an optimiser, whose tracks are fixed: reusing their rfft took about 6 % off its
    step (``benchmarks/optimize_step.py``). The key is the input's memory (pointer, offset,
    shape, strides, dtype, device) and padded length;
    the input itself is held, so that memory cannot be handed to another tensor while the
    entry lives, and an in-place change (its version counter) invalidates the entry. At
    most four entries; all dropped when the block ends."""
    token = _SPECTRA.set({})
    try:
        yield
    finally:
        _SPECTRA.reset(token)


def _input_spectrum(x: torch.Tensor, n_fft: int) -> tuple[torch.Tensor, bool]:
    """``(rfft(x, n_fft), shared)``; ``shared``: the tensor is cached, do not modify it."""
    cache = _SPECTRA.get()
    if cache is None or x.requires_grad:
        return torch.fft.rfft(x, n_fft), False
    key = (x.untyped_storage().data_ptr(), x.storage_offset(), tuple(x.shape), x.stride(), x.dtype,
           str(x.device), n_fft)
    hit = cache.get(key)
    if hit is not None and hit[0]._version == hit[2]:
        return hit[1], True
    spec = torch.fft.rfft(x, n_fft)
    if len(cache) >= _MAX_SPECTRA:
        cache.clear()
    cache[key] = (x, spec, x._version)
    return spec, True


def biquad(gain_db: torch.Tensor, freq_hz: torch.Tensor, q: torch.Tensor, sample_rate: float, kind: str):
    """RBJ cookbook biquad, normalised so that ``a0 = 1``.

    Args:
        gain_db, freq_hz, q: tensors of one shape ``S`` (dB, Hz, unitless).
        sample_rate: Hz.
        kind: ``"peaking"``, ``"low_shelf"`` or ``"high_shelf"``.
    Returns:
        ``(b, a)``, each ``(*S, 3)``.
    """
    freq = torch.minimum(freq_hz, torch.full_like(freq_hz, MAX_FREQ_FRACTION * sample_rate))
    A = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * freq / sample_rate
    cos_w0, alpha = torch.cos(w0), torch.sin(w0) / (2.0 * q)
    if kind == "peaking":
        b = (1 + alpha * A, -2 * cos_w0, 1 - alpha * A)
        a = (1 + alpha / A, -2 * cos_w0, 1 - alpha / A)
    elif kind in ("low_shelf", "high_shelf"):
        s = 1.0 if kind == "low_shelf" else -1.0  # high shelf: cookbook signs flipped
        two_sqrt_a_alpha = 2 * torch.sqrt(A) * alpha
        b = (
            A * ((A + 1) - s * (A - 1) * cos_w0 + two_sqrt_a_alpha),
            s * 2 * A * ((A - 1) - s * (A + 1) * cos_w0),
            A * ((A + 1) - s * (A - 1) * cos_w0 - two_sqrt_a_alpha),
        )
        a = (
            (A + 1) + s * (A - 1) * cos_w0 + two_sqrt_a_alpha,
            -s * 2 * ((A - 1) + s * (A + 1) * cos_w0),
            (A + 1) + s * (A - 1) * cos_w0 - two_sqrt_a_alpha,
        )
    else:
        raise ValueError(f"unknown biquad kind {kind!r}")
    b, a = torch.stack(b, -1), torch.stack(a, -1)
    return b / a[..., :1], a / a[..., :1]


def eq_coefficients(eq_params: torch.Tensor, sample_rate: float):
    """All six biquads: ``eq_params (..., 18)`` -> ``b, a`` each ``(..., 6, 3)``."""
    bs, as_ = [], []
    for k, (_, kind, *_rest) in enumerate(EQ_BANDS):
        g, f, q = eq_params[..., 3 * k], eq_params[..., 3 * k + 1], eq_params[..., 3 * k + 2]
        b, a = biquad(g, f, q, sample_rate, kind)
        bs.append(b)
        as_.append(a)
    return torch.stack(bs, -2), torch.stack(as_, -2)


def _response_torch(b: torch.Tensor, a: torch.Tensor, n_fft: int) -> torch.Tensor:
    """Reference implementation of :func:`response` in plain torch complex128 ops (any device)."""
    w = torch.arange(n_fft // 2 + 1, dtype=torch.float64, device=b.device) * (2 * math.pi / n_fft)
    z1 = torch.polar(torch.ones_like(w), -w)  # e^{-jw}
    z2 = z1 * z1
    b64, a64 = b.to(torch.float64).unsqueeze(-1), a.to(torch.float64).unsqueeze(-1)
    num = b64[..., 0, :] + b64[..., 1, :] * z1 + b64[..., 2, :] * z2
    den = a64[..., 0, :] + a64[..., 1, :] * z1 + a64[..., 2, :] * z2
    return torch.prod(num / den, dim=-2)


# --- compiled response and EQ (CPU) -----------------------------------------------------
# The torch form above materialises ~10 complex128 arrays of (rows, bands, bins) and its
# autograd graph (complex div + prod backward) several more: for 8 tracks x 5 s that was
# >90 % of the console's time. The kernels below compute the same float64 expressions
# in a loop over bins that vectorises, and the backward is the analytic adjoint
#     dH/db_si = H / num_s * z^-i,   dH/da_si = -H / den_s * z^-i.
# Work is split into (row, bin-chunk) jobs so even one row uses every thread.

_CHUNK = 2048


@functools.lru_cache(maxsize=8)
def _unit_circle(n_fft: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """e^{-jw} and e^{-2jw} on the rfft grid, as float64 real/imag arrays (same values as
    ``torch.polar(1, -w)`` and its square)."""
    w = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * (2 * math.pi / n_fft)
    z1 = torch.polar(torch.ones_like(w), -w)
    z2 = z1 * z1
    out = tuple(t.contiguous().numpy() for t in (z1.real, z1.imag, z2.real, z2.imag))
    for arr in out:
        arr.flags.writeable = False
    return out  # type: ignore[return-value]


@functools.lru_cache(maxsize=8)
def _irfft_weights(n_fft: int) -> np.ndarray:
    """Adjoint weights of ``irfft(., n_fft)`` w.r.t. its half spectrum: ``2 / n_fft``,
    ``1 / n_fft`` at DC and (even ``n_fft``) Nyquist."""
    w = np.full(n_fft // 2 + 1, 2.0 / n_fft)
    w[0] = 1.0 / n_fft
    if n_fft % 2 == 0:
        w[-1] = 1.0 / n_fft
    w.flags.writeable = False
    return w


@numba.njit(parallel=True, cache=True)
def _response_fwd(b, a, z1r, z1i, z2r, z2i, out):  # pragma: no cover - compiled
    # H = prod_s num_s / prod_s den_s: products of complex numbers (relative error ~1e-16
    # each, magnitudes >= ~1e-36, far from underflow) and one division per bin
    rows, n_sec, _ = b.shape
    nb = out.shape[1]
    n_chunks = (nb + _CHUNK - 1) // _CHUNK
    for job in numba.prange(rows * n_chunks):
        r = job // n_chunks
        lo = (job % n_chunks) * _CHUNK
        m = min(nb, lo + _CHUNK) - lo
        # chunk-local views, indexed by the loop counter: lets LLVM vectorise the bin loop
        c1r, c1i, c2r, c2i = z1r[lo : lo + m], z1i[lo : lo + m], z2r[lo : lo + m], z2i[lo : lo + m]
        pnr = np.ones(m)
        pni = np.zeros(m)
        pdr = np.ones(m)
        pdi = np.zeros(m)
        for s in range(n_sec):  # bands outer, bins inner
            b0, b1, b2 = b[r, s, 0], b[r, s, 1], b[r, s, 2]
            a0, a1, a2 = a[r, s, 0], a[r, s, 1], a[r, s, 2]
            for j in range(m):
                nr = b0 + b1 * c1r[j] + b2 * c2r[j]
                ni = b1 * c1i[j] + b2 * c2i[j]
                dr = a0 + a1 * c1r[j] + a2 * c2r[j]
                di = a1 * c1i[j] + a2 * c2i[j]
                tr, ti = pnr[j], pni[j]
                pnr[j] = tr * nr - ti * ni
                pni[j] = tr * ni + ti * nr
                tr, ti = pdr[j], pdi[j]
                pdr[j] = tr * dr - ti * di
                pdi[j] = tr * di + ti * dr
        o = out[r, lo : lo + m]
        for j in range(m):
            # num / den = num * conj(den) / |den|^2
            inv = 1.0 / (pdr[j] * pdr[j] + pdi[j] * pdi[j])
            o[j] = complex((pnr[j] * pdr[j] + pni[j] * pdi[j]) * inv, (pni[j] * pdr[j] - pnr[j] * pdi[j]) * inv)


# reassoc: the per-bin gradient terms are summed in vector lanes (a different, equally
# accurate summation order); no other fast-math liberties.
@numba.njit(parallel=True, cache=True, fastmath={"reassoc"})
def _response_bwd(b, a, z1r, z1i, z2r, z2i, y, g, w, partial):  # pragma: no cover - compiled
    # Gradient w.r.t. b and a of a loss through H, given q = dL/dH * conj(H) per bin:
    # PyTorch's convention for a real input x of a holomorphic H is
    # dL/dx = sum_k Re(conj(dH/dx) dL/dH), so with the derivatives above
    #     dL/db_si = sum_k Re(conj(z^-i / num_s) q),  dL/da_si = -sum_k Re(conj(z^-i / den_s) q).
    # (The cookbook numerators have no zeros on the unit circle for finite gain:
    # |num_s| >= 10^(-|gain_db| / 20) |den_s|.)
    # q is formed here from y, g (rows, channels, bins) complex and w (bins,) real:
    #     q_k = w_k sum_c g[r, c, k] conj(y[r, c, k]).
    # For H alone: y = H, g = dL/dH, w = 1. For the EQ y = irfft(X H), with Y = X H the
    # filtered spectrum and G = rfft(dL/dy): dL/dH = w G conj(X) (irfft's adjoint weights
    # w), so q = w G conj(Y) and the gradient never needs X or dL/dH as arrays.
    # partial: (rows, n_chunks, 2, n_sec, 3) per-job sums, [:, :, 0] for b and [:, :, 1] for a.
    rows, n_sec, _ = b.shape
    n_ch = y.shape[1]
    nb = y.shape[2]
    n_chunks = (nb + _CHUNK - 1) // _CHUNK
    for job in numba.prange(rows * n_chunks):
        r = job // n_chunks
        c = job % n_chunks
        lo = c * _CHUNK
        hi = min(nb, lo + _CHUNK)
        c1r, c1i, c2r, c2i = z1r[lo:hi], z1i[lo:hi], z2r[lo:hi], z2i[lo:hi]
        wc = w[lo:hi]
        q_r = np.zeros(hi - lo)
        q_i = np.zeros(hi - lo)
        for ch in range(n_ch):
            y_c, g_c = y[r, ch, lo:hi], g[r, ch, lo:hi]
            for k in range(hi - lo):
                yr, yi = np.float64(y_c[k].real), np.float64(y_c[k].imag)
                gr, gi = np.float64(g_c[k].real), np.float64(g_c[k].imag)
                q_r[k] += (yr * gr + yi * gi) * wc[k]
                q_i[k] += (yr * gi - yi * gr) * wc[k]
        for s in range(n_sec):
            b0, b1, b2 = b[r, s, 0], b[r, s, 1], b[r, s, 2]
            a0, a1, a2 = a[r, s, 0], a[r, s, 1], a[r, s, 2]
            gb0 = gb1 = gb2 = ga0 = ga1 = ga2 = 0.0
            for k in range(hi - lo):
                qr, qi = q_r[k], q_i[k]
                nr = b0 + b1 * c1r[k] + b2 * c2r[k]
                ni = b1 * c1i[k] + b2 * c2i[k]
                dr = a0 + a1 * c1r[k] + a2 * c2r[k]
                di = a1 * c1i[k] + a2 * c2i[k]
                # conj(1 / num) = num / |num|^2:  e = conj(1 / num) * q, f likewise with den;
                # one division: 1 / |num|^2 = |den|^2 / (|num|^2 |den|^2)
                nn = nr * nr + ni * ni
                dd = dr * dr + di * di
                inv = 1.0 / (nn * dd)
                mn = dd * inv
                md = nn * inv
                er = (nr * qr - ni * qi) * mn
                ei = (nr * qi + ni * qr) * mn
                fr = (dr * qr - di * qi) * md
                fi = (dr * qi + di * qr) * md
                gb0 += er
                gb1 += er * c1r[k] + ei * c1i[k]  # Re(e * conj(z1))
                gb2 += er * c2r[k] + ei * c2i[k]
                ga0 -= fr
                ga1 -= fr * c1r[k] + fi * c1i[k]
                ga2 -= fr * c2r[k] + fi * c2i[k]
            partial[r, c, 0, s, 0] = gb0
            partial[r, c, 0, s, 1] = gb1
            partial[r, c, 0, s, 2] = gb2
            partial[r, c, 1, s, 0] = ga0
            partial[r, c, 1, s, 1] = ga1
            partial[r, c, 1, s, 2] = ga2


def _coef_grads(b, a, n_fft, y, g, w):
    """dL/db, dL/da ``(rows, bands, 3)`` float64 via :func:`_response_bwd`."""
    rows, n_sec, _ = b.shape
    partial = np.empty((rows, -(-(n_fft // 2 + 1) // _CHUNK), 2, n_sec, 3))
    b_np, a_np = b.detach().contiguous().numpy(), a.detach().contiguous().numpy()
    _response_bwd(b_np, a_np, *_unit_circle(n_fft), y, g, w, partial)
    total = torch.from_numpy(partial.sum(axis=1))
    return total[:, 0], total[:, 1]


def _response_np(b: torch.Tensor, a: torch.Tensor, n_fft: int, dtype: torch.dtype) -> torch.Tensor:
    out = torch.empty(b.shape[0], n_fft // 2 + 1, dtype=dtype)
    _response_fwd(b.detach().contiguous().numpy(), a.detach().contiguous().numpy(), *_unit_circle(n_fft), out.numpy())
    return out


class _Response(torch.autograd.Function):
    """``(b, a) float64 (rows, bands, 3) -> (rows, bins)`` of complex ``dtype`` via the
    kernels above (evaluated in float64 whatever ``dtype``)."""

    @staticmethod
    def forward(ctx, b, a, n_fft, dtype):
        out = _response_np(b, a, n_fft, dtype)
        ctx.save_for_backward(b, a, out)
        ctx.n_fft = n_fft
        return out

    @staticmethod
    def backward(ctx, grad):
        b, a, h = ctx.saved_tensors
        g = grad.to(h.dtype).contiguous()
        gb, ga = _coef_grads(b, a, ctx.n_fft, h.numpy()[:, None], g.numpy()[:, None], np.ones(h.shape[1]))
        return gb, ga, None, None


def response(b: torch.Tensor, a: torch.Tensor, n_fft: int, dtype: torch.dtype = torch.complex128) -> torch.Tensor:
    """Product of biquad responses on the rfft grid of length ``n_fft``.

    ``b, a (..., bands, 3)`` -> ``(..., n_fft // 2 + 1)`` of complex ``dtype`` (default
    complex128). Evaluated in float64 whatever ``dtype``: near DC a low-frequency biquad's
    denominator is ~1e-6 and float32 would lose it.
    Differentiable; on CPU it runs compiled kernels with an analytic backward, elsewhere
    the same expressions as torch ops (:func:`_response_torch`).
    """
    if b.device.type != "cpu":
        return _response_torch(b, a, n_fft).to(dtype)
    lead = torch.broadcast_shapes(b.shape[:-2], a.shape[:-2])
    b64 = b.to(torch.float64).expand(*lead, *b.shape[-2:]).reshape(-1, *b.shape[-2:])
    a64 = a.to(torch.float64).expand(*lead, *a.shape[-2:]).reshape(-1, *a.shape[-2:])
    return _Response.apply(b64, a64, n_fft, dtype).view(*lead, n_fft // 2 + 1)


@numba.njit(parallel=True, cache=True)
def _mul_conj_(g, h):  # pragma: no cover - compiled
    """g[r, c, k] *= conj(h[r, k]) in place."""
    rows, n_ch, nb = g.shape
    for job in numba.prange(rows * n_ch):
        r = job // n_ch
        gr, hr = g[r, job % n_ch], h[r]
        for k in range(nb):
            gr[k] = gr[k] * hr[k].conjugate()


class _EQFilter(torch.autograd.Function):
    """The whole FFT EQ, ``y = irfft(rfft(x, n_fft) * H(b, a), n_fft)[..., :n]``, for
    ``x (rows, channels, n)`` and one filter per row ``b, a (rows, bands, 3)`` float64.

    Forward: the response kernel, one rfft, an in-place product, one irfft. Backward, by
    hand: ``G = rfft(dy, n_fft)``; ``dx = irfft(G conj(H))[:n]``; ``db, da`` from
    ``w G conj(Y)`` inside :func:`_response_bwd` (see there). Autograd through the same
    chain would differentiate ``rfft`` with a full-length complex FFT and materialise
    ``dL/dH``, ``conj(X)`` and friends: ~2x the time and memory.
    """

    @staticmethod
    def forward(ctx, x, b, a, n_fft):
        cdt = torch.complex64 if x.dtype == torch.float32 else torch.complex128
        h = _response_np(b, a, n_fft, cdt)
        spec, shared = _input_spectrum(x, n_fft)
        spec = spec * h.unsqueeze(1) if shared else spec.mul_(h.unsqueeze(1))  # Y = X H
        ctx.save_for_backward(b, a, h, spec if (ctx.needs_input_grad[1] or ctx.needs_input_grad[2]) else None)
        ctx.n_fft, ctx.n = n_fft, x.shape[-1]
        return torch.fft.irfft(spec, n_fft)[..., : x.shape[-1]]

    @staticmethod
    def backward(ctx, grad_y):
        b, a, h, spec = ctx.saved_tensors
        n_fft = ctx.n_fft
        G = torch.fft.rfft(grad_y, n_fft)
        grad_x = grad_b = grad_a = None
        if spec is not None:
            grad_b, grad_a = _coef_grads(b, a, n_fft, spec.numpy(), G.numpy(), _irfft_weights(n_fft))
        if ctx.needs_input_grad[0]:
            _mul_conj_(G.numpy(), h.numpy())
            grad_x = torch.fft.irfft(G, n_fft)[..., : ctx.n]
        return grad_x, grad_b, grad_a, None


class _FFTFilter(torch.autograd.Function):
    """``y = irfft(rfft(x, n_fft) * h, n_fft)[..., :n]`` for any ``h`` (broadcastable, any
    device), with a hand-written backward (see :class:`_EQFilter`):
    ``dx = irfft(rfft(dy, n_fft) * conj(h))[:n]`` and ``dh = w * rfft(dy, n_fft) * conj(X)``.
    """

    @staticmethod
    def forward(ctx, x, h, n_fft):
        X, _ = _input_spectrum(x, n_fft)  # used out of place only
        ctx.save_for_backward(X if ctx.needs_input_grad[1] else None, h)
        ctx.n_fft, ctx.x_shape = n_fft, x.shape
        return torch.fft.irfft(X * h, n_fft)[..., : x.shape[-1]]

    @staticmethod
    def backward(ctx, grad_y):
        X, h = ctx.saved_tensors
        n_fft = ctx.n_fft
        G = torch.fft.rfft(grad_y, n_fft)
        grad_x = grad_h = None
        # conj_physical: multiplying by a lazily conjugated tensor takes a slow path (~15x)
        if ctx.needs_input_grad[1]:
            w = torch.tensor(_irfft_weights(n_fft), dtype=G.real.dtype, device=G.device)
            grad_h = (G * torch.conj_physical(X)).mul_(w).sum_to_size(h.shape)
        if ctx.needs_input_grad[0]:
            hc = torch.conj_physical(h)
            G = G.mul_(hc) if G.shape == torch.broadcast_shapes(G.shape, hc.shape) else G * hc
            grad_x = torch.fft.irfft(G, n_fft)[..., : ctx.x_shape[-1]].sum_to_size(ctx.x_shape)
        return grad_x, grad_h, None


def _rows_channels(x_lead: torch.Size, p_lead: torch.Size) -> tuple[int, int] | None:
    """``(rows, channels)`` when parameters of leading shape ``p_lead`` give one filter per
    row of ``x`` viewed as ``(rows, channels, n)``: ``p_lead`` equals a prefix of
    ``x_lead`` followed by ones (after left-padding with ones). None otherwise."""
    if len(p_lead) > len(x_lead):
        return None
    p = (1,) * (len(x_lead) - len(p_lead)) + tuple(p_lead)
    k = len(p)
    while k > 0 and p[k - 1] == 1 and x_lead[k - 1] != 1:
        k -= 1
    if tuple(p[:k]) != tuple(x_lead[:k]) or any(d != 1 for d in p[k:]):
        return None
    rows = math.prod(x_lead[:k])
    return rows, math.prod(x_lead) // max(rows, 1)


def good_fft_size(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n (fast for pocketfft, at most ~1.25 n)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def eq_fft(x: torch.Tensor, eq_params: torch.Tensor, sample_rate: float, tail: int | None = None) -> torch.Tensor:
    """Differentiable EQ with one rfft/irfft pair per channel.

    Args:
        x: ``(..., samples)`` audio.
        eq_params: ``(..., 18)`` broadcastable to ``x``'s leading shape.
        tail: zero-padding in samples (default: one second, at least 4096). A shorter
            one is cheaper, and the part of the impulse response beyond it wraps around
            onto the first samples: fine when those are discarded anyway (the warm-up
            before an analysis window), not otherwise.
    Returns:
        ``(..., samples)``, time-aligned with ``x`` (causal, no latency).
    """
    n = x.shape[-1]
    tail = max(4096, int(sample_rate)) if tail is None else tail
    n_fft = good_fft_size(n + tail)
    # design in float64 too: for a low band at a high rate 1 - cos(w0) is ~1e-6, below
    # float32 resolution, and float32 coefficients miss the response by dBs (20 Hz at 96 kHz)
    b, a = eq_coefficients(eq_params.to(torch.float64), sample_rate)
    x_lead, p_lead = x.shape[:-1], b.shape[:-2]
    compiled = x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
    rc = _rows_channels(x_lead, p_lead) if compiled else None
    if rc is not None and n > 0:
        rows, ch = rc
        b3, a3 = b.reshape(rows, N_BANDS, 3), a.reshape(rows, N_BANDS, 3)
        return _EQFilter.apply(x.reshape(rows, ch, n), b3, a3, n_fft).view(*x_lead, n)
    h = response(b, a, n_fft, torch.complex64 if x.dtype == torch.float32 else torch.complex128)
    return _FFTFilter.apply(x, h, n_fft)


# numba, not scipy.signal.sosfilt: sosfilt takes one filter per call, so 16 tracks with
# different settings would need a Python loop over tracks; these kernels run all
# channels, each with its own cascade, in parallel, and keep state for block-wise
# rendering. Arithmetic is float64 whatever the audio dtype (float32 audio is read and
# written as float32: no float64 copies of whole blocks).
@numba.njit(parallel=True, cache=True)
def _sos_kernel_any(x, sos, zi):  # pragma: no cover - compiled
    """Any number of sections; ``zi (rows, sections, 2)`` is updated in place."""
    rows, n = x.shape
    n_sec = sos.shape[1]
    y = np.empty_like(x)
    for r in numba.prange(rows):
        z = zi[r].copy()
        for i in range(n):
            v = np.float64(x[r, i])
            for s in range(n_sec):
                b0, b1, b2 = sos[r, s, 0], sos[r, s, 1], sos[r, s, 2]
                a1, a2 = sos[r, s, 4], sos[r, s, 5]
                out = b0 * v + z[s, 0]
                z[s, 0] = b1 * v - a1 * out + z[s, 1]
                z[s, 1] = b2 * v - a2 * out
                v = out
            y[r, i] = v
        zi[r] = z
    return y


@numba.njit(cache=True)  # (LLVM inlines it; numba-level inlining trips parfor analysis)
def _section(v, c, s, z0, z1):  # pragma: no cover - compiled
    """One transposed direct-form II biquad step (as in _sos_kernel_any): (out, z0, z1)."""
    out = c[s, 0] * v + z0
    return out, c[s, 1] * v - c[s, 4] * out + z1, c[s, 2] * v - c[s, 5] * out


@numba.njit(cache=True)
def _cascade6(v, c, st):  # pragma: no cover - compiled
    """Six sections, state as a 12-tuple (kept in registers, not memory)."""
    s00, s01, s10, s11, s20, s21, s30, s31, s40, s41, s50, s51 = st
    v, s00, s01 = _section(v, c, 0, s00, s01)
    v, s10, s11 = _section(v, c, 1, s10, s11)
    v, s20, s21 = _section(v, c, 2, s20, s21)
    v, s30, s31 = _section(v, c, 3, s30, s31)
    v, s40, s41 = _section(v, c, 4, s40, s41)
    v, s50, s51 = _section(v, c, 5, s50, s51)
    return v, (s00, s01, s10, s11, s20, s21, s30, s31, s40, s41, s50, s51)


@numba.njit(cache=True)
def _load6(z):  # pragma: no cover - compiled
    return (z[0, 0], z[0, 1], z[1, 0], z[1, 1], z[2, 0], z[2, 1],
            z[3, 0], z[3, 1], z[4, 0], z[4, 1], z[5, 0], z[5, 1])  # fmt: skip


@numba.njit(cache=True)
def _store6(z, st):  # pragma: no cover - compiled
    for k in range(12):
        z[k // 2, k % 2] = st[k]


@numba.njit(parallel=True, cache=True)
def _sos_kernel(x, sos, zi):  # pragma: no cover - compiled
    """Six sections (the EQ's bands), same arithmetic as :func:`_sos_kernel_any`, ~2x
    faster: filter state in registers, and rows in pairs whose independent recursions
    the core overlaps. ``zi (rows, 6, 2)`` is updated in place."""
    rows, n = x.shape
    y = np.empty_like(x)
    for pair in numba.prange((rows + 1) // 2):
        r = 2 * pair
        ca, xa, ya = sos[r], x[r], y[r]
        sa = _load6(zi[r])
        if r + 1 < rows:
            cb, xb, yb = sos[r + 1], x[r + 1], y[r + 1]
            sb = _load6(zi[r + 1])
            for i in range(n):
                va, sa = _cascade6(np.float64(xa[i]), ca, sa)
                vb, sb = _cascade6(np.float64(xb[i]), cb, sb)
                ya[i] = va
                yb[i] = vb
            _store6(zi[r + 1], sb)
        else:
            for i in range(n):
                va, sa = _cascade6(np.float64(xa[i]), ca, sa)
                ya[i] = va
        _store6(zi[r], sa)
    return y


def eq_iir(
    x: torch.Tensor, eq_params: torch.Tensor, sample_rate: float, state: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact recursive EQ (no gradient), for rendering long audio block by block.

    Args:
        x: ``(..., samples)``.
        eq_params: ``(..., 18)`` broadcastable to ``x``'s leading shape.
        state: ``(..., 6, 2)`` float64 filter state from the previous block, or None (zeros).
    Returns:
        ``(y, new_state)``; ``y`` like ``x``.
    """
    lead = x.shape[:-1]
    b, a = eq_coefficients(eq_params.detach().to(torch.float64), sample_rate)
    sos = torch.cat([b, a], -1).expand(*lead, N_BANDS, 6).reshape(-1, N_BANDS, 6)
    xd = x.detach().cpu()
    if xd.dtype not in (torch.float32, torch.float64):
        xd = xd.to(torch.float64)
    xs = xd.reshape(-1, x.shape[-1]).contiguous().numpy()
    z = (
        np.zeros((xs.shape[0], N_BANDS, 2))
        if state is None
        else state.reshape(-1, N_BANDS, 2).to(torch.float64).numpy().copy()
    )
    kernel = _sos_kernel if N_BANDS == 6 else _sos_kernel_any
    y = kernel(xs, np.ascontiguousarray(sos.numpy()), z)
    y_t = torch.from_numpy(y).reshape(x.shape).to(x.device, x.dtype)
    return y_t, torch.from_numpy(z).reshape(*lead, N_BANDS, 2)


def apply_eq(
    x: torch.Tensor, eq_params: torch.Tensor, sample_rate: float, method: str = "fft", state: torch.Tensor | None = None,
    tail: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The EQ by ``method``: ``"fft"`` (:func:`eq_fft` with its zero-padding ``tail``,
    differentiable, stateless: returns ``(y, None)``) or ``"iir"`` (:func:`eq_iir`, exact,
    carries ``state`` between blocks)."""
    if method == "fft":
        return eq_fft(x, eq_params, sample_rate, tail), None
    if method == "iir":
        return eq_iir(x, eq_params, sample_rate, state)
    raise ValueError(f"eq method must be 'fft' or 'iir', got {method!r}")
