"""Mixing-style features (Diff-MST's audio-feature set), differentiable.

All functions take stereo audio ``x (batch, 2, samples)`` (float, full scale 1.0) at
``sample_rate`` Hz. Dynamics, spatial and spectral features:

========== ===================================================== =================
name       definition                                            unit / shape
========== ===================================================== =================
rms        10 log10 of the K-weighted mean square, both channels  dB  ``(batch,)``
crest      peak (either channel) over RMS of the waveform        dB  ``(batch,)``
width      E[(L-R)^2] / E[(L+R)^2]  (0 mono, 1 uncorrelated)      ratio ``(batch,)``
imbalance  (E[R^2] - E[L^2]) / (E[R^2] + E[L^2])  (-1 left-only)  ``(batch,)``
bark       log RMS magnitude in 24 Bark bands of mid, side       nepers ``(batch, 2, 24)``
           (long-term: one FFT of the whole signal; per STFT frame in :func:`bark_power`)
========== ===================================================== =================

Before any feature every signal is **DC-blocked and high-passed at 20 Hz** (mean removed,
then a zero-phase 4th-order Butterworth-magnitude high-pass), so DC offset and infrasonic
drift, which nobody hears, count for nothing. RMS is measured on the signal further
**K-weighted** (the magnitude of BS.1770's filters, as LUFS hears it): mixes are
compared at equal loudness, and with any other weighting RMS at a fixed LUFS could be
raised or lowered by shifting energy between bands the two weightings count differently
(an optimiser "matches" a reference's RMS by boosting 20-40 Hz rumble). K-weighted, RMS
at equal loudness only measures dynamics.

Whole signals give one number per feature (:func:`rms_db`, ...). :func:`frame_features`
gives the same features per frame (a song becomes a distribution over time), and
:func:`style_features` the summaries the AF loss compares: the mean over non-silent
frames for RMS and crest, energy ratios over the whole signal for width and imbalance,
and the long-term Bark spectrum. With ``pool=True`` the batch items are excerpts
(windows) of one song and are summarised together.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.fft import next_fast_len

from .loudness import block_powers, gain_to_target_db, k_weighting_response

# Zwicker's critical-band edges (Hz): 25 edges, 24 bands
BARK_EDGES_HZ: tuple[float, ...] = (
    20, 100, 200, 300, 400, 510, 630, 770, 920, 1080, 1270, 1480, 1720, 2000, 2320, 2700,
    3150, 3700, 4400, 5300, 6400, 7700, 9500, 12000, 15500,
)
N_BARK = len(BARK_EDGES_HZ) - 1
FEATURES = ("rms", "crest", "width", "imbalance", "bark")
UNITS = {"rms": "dB", "crest": "dB", "width": "", "imbalance": "", "bark": "Np"}

HP_HZ = 20.0          # DC block / infrasonic high-pass
EDGE_S = 0.025        # filtered signals lose this much at each end (at most 1/8 of the length)
HP_ORDER = 4
SILENT_DB = -70.0     # frames quieter than this (mean square, dBFS) are left out of summaries;
REL_FLOOR_DB = -20.0   # RMS counts frames below this (dB re the power mean) as lying on it
                      # (EBU R128's loudness range gates at -20 LU relative, too),
CREST_RAMP_DB = 6.0   # crest weights frames from 0 at that floor to 1 this far above it
POWER_EPS = 1e-12     # -120 dB
BARK_EPS = 1e-10      # band power floor: -100 dB
BARK_TAPER_S = 0.05   # raised-cosine ends of the long-term spectrum's window (at most n/8)


@dataclass(frozen=True)
class FeatureConfig:
    """Frame sizes (seconds) for frame-wise dynamics/stereo features, and the Bark STFT."""

    frame_s: float = 0.4
    hop_s: float = 0.2
    bark_fft_s: float = 0.085  # rounded to a power of two in samples (2048 at 24 kHz)
    highpass_hz: float = HP_HZ


def _hp_magnitude(f: torch.Tensor, cutoff: float, order: int = HP_ORDER) -> torch.Tensor:
    r = (f / cutoff).pow(order)
    return r / torch.sqrt(1 + r * r)


@functools.lru_cache(maxsize=16)
def _prepare_filters(sample_rate: float, n_fft: int, highpass_hz: float) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`prepare`'s magnitudes on the rfft grid, float64 ``(bins,)``: the high-pass,
    and the high-pass times the K-weighting (cached: evaluating them took as long as the
    filtering)."""
    f = torch.fft.rfftfreq(n_fft, 1.0 / sample_rate, dtype=torch.float64)
    h_hp = _hp_magnitude(f.clamp_min(1e-9), highpass_hz)
    return h_hp, h_hp * torch.from_numpy(np.abs(k_weighting_response(sample_rate, n_fft)))


def prepare(x: torch.Tensor, sample_rate: float, highpass_hz: float = HP_HZ) -> tuple[torch.Tensor, torch.Tensor]:
    """DC-block and high-pass ``x (..., samples)``; returns ``(x_hp, x_weighted)``.

    ``x_hp`` has its mean removed and is high-passed at ``highpass_hz`` (zero phase,
    24 dB/octave, -3 dB at the cut-off; -48 dB at a quarter of it). ``x_weighted`` is
    ``x_hp`` also through the magnitude of the K-weighting (BS.1770: RLB high-pass at 38 Hz
    and +4 dB shelf above ~2 kHz, zero phase), used for RMS and loudness. The ends are reflected before
    filtering so that nothing wraps around, and the first and last 25 ms (at most an
    eighth of the signal each), where the filters settle, are dropped: both outputs are
    ``(..., samples - 2 * edge)``."""
    n = x.shape[-1]
    x = x - x.mean(-1, keepdim=True)
    pad = min(n - 1, int(0.25 * sample_rate))
    lead = x.shape[:-1]
    flat = x.reshape(-1, 1, n)
    if pad > 0:
        # even reflection keeps the level continuous at the ends (an odd one would shift
        # the pad's mean by twice the end sample, a step the high-pass then spreads)
        flat = torch.nn.functional.pad(flat, (pad, pad), mode="reflect")
    m = flat.shape[-1]
    n_fft = next_fast_len(m, real=True)
    h_hp, h_w = (h.to(device=x.device, dtype=x.dtype) for h in _prepare_filters(float(sample_rate), n_fft, highpass_hz))
    # the reflection's slope kink makes the low filters ring for ~20 ms: drop the ends
    edge = min(int(EDGE_S * sample_rate), n // 8)
    hp, w = _ZeroPhasePair.apply(flat, h_hp, h_w, n_fft, pad + edge, n - 2 * edge)
    k = hp.shape[-1]
    return hp.reshape(*lead, k), w.reshape(*lead, k)


class _ZeroPhasePair(torch.autograd.Function):
    """Two zero-phase filters of one signal: ``x (rows, 1, m)``, real magnitudes ``h1, h2
    (bins,)`` -> ``irfft(rfft(x, n_fft) * h_i, n_fft)[..., start : start + length]``.

    By hand because each output is a circular convolution with a real, even kernel, a
    symmetric operator, so the backward is the same filtering of the gradients (zero-embedded
    at ``start``): ``dx = irfft(rfft(g1) h1 + rfft(g2) h2)[:m]``, three FFTs. Autograd
    through the chain took a full-length complex FFT for the rfft, plus the slices' and
    products' temporaries: half of the features' backward."""

    @staticmethod
    def forward(ctx, x, h1, h2, n_fft, start, length):
        spec = torch.fft.rfft(x, n_fft)
        keep = slice(start, start + length)
        y1 = torch.fft.irfft(spec * h1, n_fft)[..., keep]
        y2 = torch.fft.irfft(spec.mul_(h2), n_fft)[..., keep]
        ctx.save_for_backward(h1, h2)
        ctx.geometry = (n_fft, start, x.shape[-1])
        return y1, y2

    @staticmethod
    def backward(ctx, g1, g2):
        h1, h2 = ctx.saved_tensors
        n_fft, start, m = ctx.geometry
        spec = None
        for g, h in ((g1, h1), (g2, h2)):
            if g is None:
                continue
            # zero-embedding by left padding; rfft's n pads the right
            part = torch.fft.rfft(torch.nn.functional.pad(g, (start, 0)), n_fft).mul_(h)
            spec = part if spec is None else spec.add_(part)
        if spec is None:
            return None, None, None, None, None, None
        return torch.fft.irfft(spec, n_fft)[..., :m], None, None, None, None, None


def _check(x: torch.Tensor) -> None:
    if x.dim() != 3 or x.shape[1] != 2:
        raise ValueError(f"expected stereo audio (batch, 2, samples), got {tuple(x.shape)}")


# ----------------------------------------------------------------------------- whole-signal


def rms_db(x: torch.Tensor, sample_rate: float, prepared: bool = False) -> torch.Tensor:
    """RMS level of ``x (batch, 2, samples)`` over both channels, dB re full scale,
    ``(batch,)``. Measured after the 20 Hz high-pass and K-weighting (unless
    ``prepared``: then ``x`` is used as given)."""
    _check(x)
    w = x if prepared else prepare(x, sample_rate)[1]
    return 10 * torch.log10(w.square().mean(dim=(-2, -1)) + POWER_EPS)


def crest_db(x: torch.Tensor, sample_rate: float, prepared: bool = False) -> torch.Tensor:
    """Crest factor (peak of either channel over the RMS of both) in dB, ``(batch,)``, of
    the waveform after the 20 Hz high-pass (not K-weighted: a waveform property).
    A sine gives 3.01 dB, a square wave 0 dB."""
    _check(x)
    hp = x if prepared else prepare(x, sample_rate)[0]
    peak2 = hp.square().amax(dim=(-2, -1))
    return 10 * torch.log10(peak2 + POWER_EPS) - 10 * torch.log10(hp.square().mean(dim=(-2, -1)) + POWER_EPS)


def stereo_width(x: torch.Tensor, sample_rate: float, prepared: bool = False) -> torch.Tensor:
    """E[(L-R)^2] / E[(L+R)^2] of ``x (batch, 2, samples)``, ``(batch,)``: 0 for mono,
    1 for uncorrelated channels of equal level or one channel alone."""
    _check(x)
    hp = x if prepared else prepare(x, sample_rate)[0]
    side = (hp[:, 0] - hp[:, 1]).square().mean(-1)
    mid = (hp[:, 0] + hp[:, 1]).square().mean(-1)
    return side / (mid + POWER_EPS)


def stereo_imbalance(x: torch.Tensor, sample_rate: float, prepared: bool = False) -> torch.Tensor:
    """(E[R^2] - E[L^2]) / (E[R^2] + E[L^2]), ``(batch,)``: -1 left only, 0 balanced, +1
    right only."""
    _check(x)
    hp = x if prepared else prepare(x, sample_rate)[0]
    left, right = hp[:, 0].square().mean(-1), hp[:, 1].square().mean(-1)
    return (right - left) / (right + left + POWER_EPS)


def bark_fft_size(sample_rate: float, seconds: float = FeatureConfig.bark_fft_s) -> int:
    return 1 << max(6, round(math.log2(seconds * sample_rate)))


@functools.lru_cache(maxsize=16)
def _band_index(sample_rate: float, n_fft: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For the rfft grid of ``n_fft``: each bin's Bark band (``N_BARK`` for bins in none),
    ``(n_fft // 2 + 1,)`` int64, and the bins per band ``(24,)`` float64: a bin belongs to
    the band its centre lies in ([lo, hi)), if it is below Nyquist."""
    f = torch.fft.rfftfreq(n_fft, 1.0 / sample_rate, dtype=torch.float64)
    edges = torch.tensor(BARK_EDGES_HZ, dtype=torch.float64)
    band = torch.bucketize(f, edges, right=True) - 1  # edges[band] <= f < edges[band + 1]
    band[(band < 0) | (band >= N_BARK) | (f >= sample_rate / 2)] = N_BARK
    counts = torch.bincount(band, minlength=N_BARK + 1)[:N_BARK].to(torch.float64)
    return band, counts


def bark_matrix(sample_rate: float, n_fft: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(n_fft // 2 + 1, 24)`` averaging matrix (each column sums to 1 over the rfft bins
    whose centre lies in the band) and a ``(24,)`` bool mask of bands that have bins (bands
    above Nyquist have none)."""
    band, count = _band_index(float(sample_rate), n_fft)
    mat = torch.nn.functional.one_hot(band, N_BARK + 1)[:, :N_BARK].to(torch.float64) / count.clamp_min(1)
    return mat.to(device=device, dtype=torch.float32), (count > 0).to(device)


def _mid_side(x: torch.Tensor) -> torch.Tensor:
    """``(batch, 2, samples)`` L/R -> mid ``(L+R)/2`` and side ``(L-R)/2``, same shape."""
    return torch.cat([x.sum(1, keepdim=True), -x.diff(dim=1)], 1) / 2


def bark_power(x_hp: torch.Tensor, sample_rate: float, n_fft: int | None = None) -> torch.Tensor:
    """Band power of mid ``(L+R)/2`` and side ``(L-R)/2`` per STFT frame.

    ``x_hp (batch, 2, samples)`` (already high-passed) -> ``(batch, 2, frames, 24)``: the mean
    over the band's bins of ``|X|^2 / sum(window^2)`` (Hann window, hop ``n_fft/4``), so
    white noise of variance s^2 reads s^2 in every band. Bands above Nyquist are 0."""
    n_fft = n_fft or bark_fft_size(sample_rate)
    b, _, n = x_hp.shape
    ms = _mid_side(x_hp)
    if n < n_fft:
        ms = torch.nn.functional.pad(ms, (0, n_fft - n))
    win = torch.hann_window(n_fft, periodic=True, dtype=x_hp.dtype, device=x_hp.device)
    spec = torch.stft(ms.reshape(b * 2, -1), n_fft, n_fft // 4, window=win, center=False, return_complex=True)
    power = (spec.real.square() + spec.imag.square()) / win.square().sum()  # (2b, bins, frames)
    mat, _ = bark_matrix(sample_rate, n_fft, x_hp.device)
    bands = power.transpose(1, 2) @ mat.to(power.dtype)  # (2b, frames, 24)
    return bands.view(b, 2, -1, N_BARK)


class _BandPower(torch.autograd.Function):
    """``x (rows, n)`` -> ``(rows, 24)``: mean of ``|rfft(x, n_fft)|^2`` over each band's bins.

    By hand because autograd would differentiate the rfft with a full-length complex FFT
    and keep the ``(rows, bins)`` power for the band sums; here the backward is one irfft:
    ``dL/dx = n_fft irfft(2 c dL/dP X)[:n]`` (``c`` = 1/2, 1 at DC and Nyquist: the
    adjoint of the rfft), with ``dL/dP`` per bin the band's gradient over its bin count.
    Band sums are accumulated in float64 (a whole song's top band has a million bins)."""

    @staticmethod
    def forward(ctx, x, band, counts, n_fft):
        spec = torch.fft.rfft(x, n_fft)
        power = (spec.real.square() + spec.imag.square()).to(torch.float64)
        sums = power.new_zeros(x.shape[0], N_BARK + 1).index_add_(1, band, power)
        ctx.save_for_backward(spec, band, counts)
        ctx.n_fft, ctx.n = n_fft, x.shape[-1]
        return (sums[:, :N_BARK] / counts.clamp_min(1)).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        spec, band, counts = ctx.saved_tensors
        n_fft = ctx.n_fft
        per_bin = torch.nn.functional.pad(grad.to(torch.float64) / counts.clamp_min(1), (0, 1))  # none: 0
        w = per_bin[:, band] * float(n_fft)  # 2 (from |X|^2) x n_fft x c, c = 1/2 ...
        w[:, 0] *= 2.0  # ... and 1 at DC and Nyquist
        if n_fft % 2 == 0:
            w[:, -1] *= 2.0
        grad_x = torch.fft.irfft(spec * w.to(spec.real.dtype), n_fft)[..., : ctx.n]
        return grad_x, None, None, None


def bark_long_term(x_hp: torch.Tensor, sample_rate: float) -> torch.Tensor:
    """Long-term band power of mid ``(L+R)/2`` and side ``(L-R)/2``: ``x_hp (batch, 2,
    samples)`` (already high-passed) -> ``(batch, 2, 24)``.

    One FFT of the whole signal (raised-cosine ends of 50 ms, at most an eighth of it, so
    that no edge discontinuity leaks into quiet bands), ``|X|^2 / sum(window^2)`` averaged
    over the band's bins: white noise of variance s^2 reads s^2 in every band, as the
    frame-wise :func:`bark_power` does on average. Bands above Nyquist are 0."""
    b, _, n = x_hp.shape
    ms = _mid_side(x_hp)
    ramp = min(int(BARK_TAPER_S * sample_rate), n // 8)
    taper = torch.ones(n, dtype=x_hp.dtype, device=x_hp.device)
    if ramp > 0:
        rise = 0.5 - 0.5 * torch.cos(math.pi * (torch.arange(ramp, dtype=torch.float64) + 0.5) / ramp)
        taper[:ramp] = rise.to(taper)
        taper[n - ramp:] = rise.flip(0).to(taper)
    n_fft = next_fast_len(n, real=True)
    band, counts = _band_index(float(sample_rate), n_fft)
    power = _BandPower.apply((ms * taper).reshape(b * 2, n), band.to(x_hp.device), counts.to(x_hp.device), n_fft)
    return (power / taper.square().sum()).view(b, 2, N_BARK)


def bark_spectrum(x: torch.Tensor, sample_rate: float, prepared: bool = False) -> torch.Tensor:
    """Long-term Bark spectrum of mid and side: ``x (batch, 2, samples)`` ->
    ``(batch, 2, 24)``, ``0.5 ln(band power + 1e-10)`` in nepers (1 Np = 8.69 dB) from
    :func:`bark_long_term`, so that white noise of RMS s gives ``ln s`` in every band.
    Index 0 is mid, 1 side; bands above Nyquist read the floor (-11.5 Np)."""
    _check(x)
    hp = x if prepared else prepare(x, sample_rate)[0]
    return 0.5 * torch.log(bark_long_term(hp, sample_rate) + BARK_EPS)


# ----------------------------------------------------------------------------- frame-wise


def frame_features(x: torch.Tensor, sample_rate: float, config: FeatureConfig = FeatureConfig(),
                   bark_frames: bool = True) -> dict:
    """Frame-wise features of ``x (batch, 2, samples)``.

    Returns a dict of ``(batch, frames)`` tensors ``rms``, ``crest`` (dB), ``width``,
    ``imbalance``, the mean squares behind them (``power``: K-weighted, both channels;
    ``power_hp``: high-passed; ``peak2``: largest square of either channel), ``energy``
    ``(batch, 4)`` (whole-signal mean squares of left, right, L-R and L+R), ``bark_mean``
    ``(batch, 2, 24)`` (long-term band power, :func:`bark_long_term`), ``blocks``
    ``(batch, 2, blocks)`` (BS.1770 gating-block mean squares of the K-weighted channels,
    for the loudness) and, with ``bark_frames``, ``bark_power`` ``(batch, 2, stft_frames,
    24)`` (:func:`bark_power`; the summaries do not need it)."""
    _check(x)
    hp, w = prepare(x, sample_rate, config.highpass_hz)
    frame = max(1, int(round(config.frame_s * sample_rate)))
    hop = max(1, int(round(config.hop_s * sample_rate)))
    frame = min(frame, hp.shape[-1])  # a signal shorter than a frame is one frame
    # frame means of squares by pooling (not by unfolding into overlapping frames, whose
    # copies dominated the backward), and no per-channel indexing (each index's backward fills a
    # zero tensor the size of the signal): the loss's backward is a large part of a step
    sq = torch.cat([w.square(), hp.square(), hp.diff(dim=1).square()], 1)  # L_w, R_w, L, R, (R-L)
    ms = torch.nn.functional.avg_pool1d(sq, frame, hop)  # (B, 5, F)
    peak2 = torch.nn.functional.max_pool1d(sq[:, 2:4], frame, hop).amax(1)
    power = ms[:, :2].mean(1)
    left, right, side = ms[:, 2], ms[:, 3], ms[:, 4]
    mid = 2 * (left + right) - side  # (L+R)^2 = 2 L^2 + 2 R^2 - (L-R)^2
    power_hp = (left + right) / 2
    whole = sq[:, 2:].mean(-1)  # (B, 3): left, right, side
    out = {
        "rms": 10 * torch.log10(power + POWER_EPS),
        "crest": _crest(peak2, power_hp),
        "width": side / (mid + POWER_EPS),
        "imbalance": (right - left) / (right + left + POWER_EPS),
        "power": power,
        "power_hp": power_hp,
        "peak2": peak2,
        # whole-signal mean squares (B, 4): left, right, side (L-R), mid (L+R)
        "energy": torch.cat([whole, 2 * whole[:, :2].sum(-1, keepdim=True) - whole[:, 2:]], -1),
        "bark_mean": bark_long_term(hp, sample_rate),
        "blocks": block_powers(w, sample_rate),
    }
    if bark_frames:
        out["bark_power"] = bark_power(hp, sample_rate, bark_fft_size(sample_rate, config.bark_fft_s))
    return out


def _crest(peak2: torch.Tensor, power_hp: torch.Tensor) -> torch.Tensor:
    return 10 * torch.log10(peak2 + POWER_EPS) - 10 * torch.log10(power_hp + POWER_EPS)


def loudness_gain(ff: dict, lufs: float, pool: bool = False) -> torch.Tensor:
    """Power gain that brings the signal of :func:`frame_features` output ``ff`` to
    ``lufs`` (integrated loudness, BS.1770 gating, over ``ff["blocks"]``): ``(batch,)``, or
    ``(1,)`` with ``pool`` (one gain for all excerpts). Differentiable with the gates held
    fixed; silence is measured as -70 LUFS, so the gain stays finite.

    The loudness is that of the 20 Hz high-passed, K-weighted signal the features already
    compute, so normalising costs no filtering of its own; it agrees with
    :func:`diffmst.loudness.loudness_np` to a few hundredths of a LU on music (the high-pass
    only removes what the K-weighting's 38 Hz high-pass nearly does; the phase does not
    matter to block powers). But its 400 ms blocks start 25 ms into the signal (the part
    :func:`prepare` drops), and on a strongly rhythmic song whose blocks straddle the
    relative gate that alone can move the reading by half a LU: measure a whole
    reference song with :func:`diffmst.loudness.normalize_np` instead, whose blocks
    start at its first sample as in any meter."""
    return torch.pow(10.0, gain_to_target_db(ff["blocks"], lufs, pool) / 10.0)


def summarize(ff: dict, pool: bool = False, lufs: float | None = None) -> dict:
    """Whole-signal style features from :func:`frame_features` output.

    ``rms`` is the mean frame level over frames louder than -70 dBFS (all frames if none
    is), each frame counted at no less than 20 dB below the power mean of those frames;
    ``crest`` the mean over the same frames, weighted from 0 at that floor to 1 at 6 dB
    above it (both continuous in the signal, so an optimiser sees no jumps); ``width`` and
    ``imbalance`` are energy ratios over the whole signal, ``bark`` the long-term spectrum.
    Shapes ``(batch,)`` and ``(batch, 2, 24)``, or ``(1,)`` and ``(1, 2, 24)`` with ``pool``
    (all batch items are excerpts of one song, of equal length).

    With ``lufs``, the features are those of the signal scaled to that integrated loudness
    (:func:`loudness_gain`; with ``pool`` one gain for the whole song), without scaling
    any audio: every power above is multiplied by the gain."""
    gain = loudness_gain(ff, lufs, pool) if lufs is not None else None

    def scaled(t: torch.Tensor) -> torch.Tensor:  # (B, ...) powers, brought to lufs
        return t if gain is None else t * gain.view(-1, *([1] * (t.dim() - 1)))

    def p(t: torch.Tensor) -> torch.Tensor:  # (B, F, ...) -> (1, B*F, ...), scaled to lufs
        t = scaled(t)
        return t.reshape(1, -1, *t.shape[2:]) if pool else t

    power = p(ff["power"])
    level = 10 * torch.log10(power + POWER_EPS)
    with torch.no_grad():
        sounding = level > SILENT_DB
        none = ~sounding.any(-1, keepdim=True)
        sounding = sounding | none  # all frames if none is
        count = sounding.sum(-1, keepdim=True)
    # Frames below the floor count as lying on it (not left out): a hard gate would make
    # the mean jump by several dB when a quiet passage crosses it during optimisation.
    mean_power = (power * sounding).sum(-1, keepdim=True) / count
    floor = 10 * torch.log10(mean_power + POWER_EPS) + REL_FLOOR_DB
    rms = (torch.maximum(level, floor) * sounding).sum(-1) / count.squeeze(-1)
    with torch.no_grad():  # crest: frames weighted by a 6 dB ramp above the floor (continuous)
        weight = ((level - floor) / CREST_RAMP_DB).clamp(0, 1) * sounding
        weight = torch.where(weight.sum(-1, keepdim=True) > 0, weight, sounding.to(weight.dtype))
        weight = weight / weight.sum(-1, keepdim=True)
    crest = _crest(p(ff["peak2"]), p(ff["power_hp"]))
    energy = scaled(ff["energy"])
    energy = energy.sum(0, keepdim=True) if pool else energy
    left, right, side, mid = energy.unbind(-1)
    bark = scaled(ff["bark_mean"])
    if pool:  # excerpts of equal length: the song's long-term spectrum is their mean
        bark = bark.mean(0, keepdim=True)
    return {
        "rms": rms,
        "crest": (crest * weight).sum(-1),
        "width": side / (mid + POWER_EPS),
        "imbalance": (right - left) / (right + left + POWER_EPS),
        "bark": 0.5 * torch.log(bark + BARK_EPS),
    }


def style_features(
    x: torch.Tensor, sample_rate: float, pool: bool = False, config: FeatureConfig = FeatureConfig(),
    lufs: float | None = None,
) -> dict:
    """The AF-loss features of ``x (batch, 2, samples)``: dict ``rms``, ``crest``, ``width``,
    ``imbalance`` ``(batch,)`` and ``bark`` ``(batch, 2, 24)`` (see :func:`summarize`;
    ``pool=True`` summarises all batch items as excerpts of one song, shapes with batch 1;
    ``lufs`` gives the features of ``x`` brought to that loudness)."""
    return summarize(frame_features(x, sample_rate, config, bark_frames=False), pool=pool, lufs=lufs)


def to_python(feats: dict) -> dict:
    """Features of one signal (batch 1) as plain floats / lists, for JSON and tables."""
    out = {}
    for k in FEATURES:
        v = feats[k].detach().cpu().double()[0]
        out[k] = v.tolist() if v.dim() else float(v)
    return out
