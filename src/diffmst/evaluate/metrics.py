"""The paper's audio-feature (AF) distance, measured faithfully on whole songs.

This is the measure results are judged by (``diffmst analyze --metric paper``,
:func:`paper_af`), kept apart from the optimiser's robust variant in
:mod:`diffmst.features`. It follows the Diff-MST reference code's features, on the whole
song at the file's own rate, both signals DC-removed and brought to -16 LUFS first:

========== =========================================================== ==================
name       definition                                                  unit / shape
========== =========================================================== ==================
rms        20 log10 sqrt(mean x^2), per channel, unweighted              dB ``(batch, 2)``
crest      20 log10(max |x| / rms), per channel                          dB ``(batch, 2)``
width      E[(L-R)^2] / E[(L+R)^2]                                        ``(batch,)``
imbalance  (E[R^2] - E[L^2]) / (E[R^2] + E[L^2])                          ``(batch,)``
bark       ln of the time-averaged STFT magnitude (Hann, about 0.74 s,   Np ``(batch, 2, 24)``
           hop 1/4) through 24 triangular Bark bands from 20 Hz to
           20 kHz (Traunmueller scale), of mid L+R and side L-R
========== =========================================================== ==================

The distance is ``sum_k w_k * mean((f_k(mix) - f_k(ref))^2)`` with the paper's weights
(RMS 0.1, crest 0.001, width 1, imbalance 1, Bark 0.1).

Differences from the reference code, each on purpose: the Bark scale's inverse applies
both of Traunmueller's corrections (the code applies only the low one, which moves the top
band's edge to 31.7 kHz, past Nyquist), so the top band ends at 20 kHz; the STFT uses a
Hann window (the code's default is rectangular, whose leakage fills empty bands); the FFT
size scales with the rate (32768 at 44.1 and 48 kHz).

All functions are torch and differentiable (the optimiser can use them on excerpts);
:func:`paper_af` takes numpy arrays of whole songs and does the DC removal, resampling
and loudness normalisation.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from ..losses import AF_WEIGHTS

PAPER_FEATURES = ("rms", "crest", "width", "imbalance", "bark")
PAPER_UNITS = {"rms": "dB", "crest": "dB", "width": "", "imbalance": "", "bark": "Np"}
PAPER_LUFS = -16.0
N_BANDS = 24
F_MIN, F_MAX = 20.0, 20000.0
EPS = 1e-8  # the reference code's floors (mean square, ratio, magnitude)


def _hz_to_bark(f: float) -> float:
    """Traunmueller's Bark scale with both end corrections."""
    b = 26.81 * f / (1960.0 + f) - 0.53
    if b < 2:
        return b + 0.15 * (2 - b)
    if b > 20.1:
        return b + 0.22 * (b - 20.1)
    return b


def _bark_to_hz(b: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_hz_to_bark` (both corrections undone)."""
    b = np.asarray(b, dtype=np.float64).copy()
    low, high = b < 2, b > 20.1
    b[low] = (b[low] - 0.3) / 0.85
    b[high] = (b[high] + 4.422) / 1.22
    return 1960.0 * (b + 0.53) / (26.28 - b)


def fft_size(sample_rate: float) -> int:
    """The Bark STFT's size: a power of two near 0.743 s (32768 at 44.1 and 48 kHz)."""
    return 1 << round(math.log2(0.743 * sample_rate))


@functools.lru_cache(maxsize=8)
def bark_filterbank(sample_rate: float, n_fft: int) -> torch.Tensor:
    """Triangular filters ``(n_fft // 2 + 1, 24)`` float64: band k rises from edge k to
    edge k+1 and falls to edge k+2, 26 edges evenly spaced in Bark from 20 Hz to 20 kHz
    (filters are cut at Nyquist)."""
    edges = _bark_to_hz(np.linspace(_hz_to_bark(F_MIN), _hz_to_bark(F_MAX), N_BANDS + 2))
    f = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)[:, None]
    lo, mid, hi = edges[None, :-2], edges[None, 1:-1], edges[None, 2:]
    fb = np.maximum(0.0, np.minimum((f - lo) / (mid - lo), (hi - f) / (hi - mid)))
    return torch.from_numpy(fb)


def _check(x: torch.Tensor) -> None:
    if x.dim() != 3 or x.shape[1] != 2:
        raise ValueError(f"expected stereo audio (batch, 2, samples), got {tuple(x.shape)}")


def _mean_square(x: torch.Tensor, pool: bool) -> torch.Tensor:
    """Per-channel mean square ``(batch, 2)``, or ``(1, 2)`` over all excerpts with ``pool``."""
    ms = x.square().mean(-1)
    return ms.mean(0, keepdim=True) if pool else ms


def rms_db(x: torch.Tensor, pool: bool = False) -> torch.Tensor:
    """Per-channel RMS of ``x (batch, 2, samples)`` in dB re full scale, ``(batch, 2)``
    (``(1, 2)`` with ``pool``: the batch items are equal-length excerpts of one song)."""
    return 10 * torch.log10(_mean_square(x, pool).clamp_min(EPS))


def crest_db(x: torch.Tensor, pool: bool = False) -> torch.Tensor:
    """Per-channel sample peak over RMS in dB, ``(batch, 2)``; a sine reads 3.01 dB."""
    rms = _mean_square(x, pool).clamp_min(EPS).sqrt()
    peak = x.abs().amax(-1)
    peak = peak.amax(0, keepdim=True) if pool else peak
    return 20 * torch.log10((peak / rms.clamp_min(EPS)).clamp_min(EPS))


def _energies(x: torch.Tensor, pool: bool) -> tuple[torch.Tensor, ...]:
    """Mean squares of L, R, L-R and L+R, each ``(batch,)`` (``(1,)`` with ``pool``)."""
    e = torch.stack([x[:, 0].square().mean(-1), x[:, 1].square().mean(-1),
                     (x[:, 0] - x[:, 1]).square().mean(-1), (x[:, 0] + x[:, 1]).square().mean(-1)], -1)
    return (e.mean(0, keepdim=True) if pool else e).unbind(-1)


def stereo_width(x: torch.Tensor, pool: bool = False) -> torch.Tensor:
    """E[(L-R)^2] / E[(L+R)^2], ``(batch,)``: 0 for mono."""
    _, _, side, mid = _energies(x, pool)
    return side / mid.clamp_min(EPS)


def stereo_imbalance(x: torch.Tensor, pool: bool = False) -> torch.Tensor:
    """(E[R^2] - E[L^2]) / (E[R^2] + E[L^2]), ``(batch,)``: -1 left only, +1 right only."""
    left, right, _, _ = _energies(x, pool)
    return (right - left) / (right + left).clamp_min(EPS)


def bark_spectrum(x: torch.Tensor, sample_rate: float, pool: bool = False,
                  floor: torch.Tensor | float = EPS) -> torch.Tensor:
    """``ln`` of the time-averaged magnitude in 24 Bark bands of mid ``L+R`` and side
    ``L-R``: ``x (batch, 2, samples)`` -> ``(batch, 2, 24)`` (index 0 mid, 1 side; with
    ``pool`` the frames of all excerpts are averaged together, ``(1, 2, 24)``).
    Magnitudes are those of ``torch.stft`` (not normalised), as in the reference code;
    ``floor`` is added before the log (the measure's 1e-8, or per band ``(2, 24)``: an
    optimiser's floor relative to the reference keeps the gradient of a near-empty band,
    such as the side of an all-centred mix, from swamping all others)."""
    b, _, n = x.shape
    n_fft = fft_size(sample_rate)
    ms = torch.stack([x[:, 0] + x[:, 1], x[:, 0] - x[:, 1]], 1).reshape(b * 2, n)
    if n < n_fft // 2 + 1:  # reflect padding needs more than half a window
        ms = torch.nn.functional.pad(ms, (0, n_fft // 2 + 1 - n))
    win = torch.hann_window(n_fft, dtype=x.dtype, device=x.device)
    spec = torch.stft(ms, n_fft, n_fft // 4, window=win, center=True, return_complex=True)
    mag = spec.abs().mean(-1).view(b, 2, -1)  # mean over frames
    if pool:
        mag = mag.mean(0, keepdim=True)
    fb = bark_filterbank(float(sample_rate), n_fft).to(device=x.device, dtype=x.dtype)
    return torch.log(mag @ fb + floor)


def paper_features(x: torch.Tensor, sample_rate: float, pool: bool = False,
                   bark_floor: torch.Tensor | float = EPS) -> dict[str, torch.Tensor]:
    """The five features of ``x (batch, 2, samples)`` as given (no DC removal or
    normalisation: see :func:`prepare`): ``rms``, ``crest`` ``(batch, 2)``, ``width``,
    ``imbalance`` ``(batch,)``, ``bark`` ``(batch, 2, 24)``. With ``pool`` the batch items
    are equal-length excerpts of one song, summarised together (batch 1). ``bark_floor``:
    see :func:`bark_spectrum`."""
    _check(x)
    return {"rms": rms_db(x, pool), "crest": crest_db(x, pool), "width": stereo_width(x, pool),
            "imbalance": stereo_imbalance(x, pool), "bark": bark_spectrum(x, sample_rate, pool, bark_floor)}


def paper_distance(fa: dict, fb: dict, weights: dict | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``(total, terms)``: the weighted mean squared differences of two feature dicts
    (:func:`paper_features`; ``fb`` may have batch 1 and is broadcast)."""
    w = AF_WEIGHTS if weights is None else weights
    terms = {k: w.get(k, 0.0) * (fa[k] - fb[k].to(fa[k]).expand_as(fa[k])).square().mean() for k in PAPER_FEATURES}
    return torch.stack(list(terms.values())).sum(), terms


def prepare(audio: np.ndarray, sample_rate: int, to_rate: int | None = None,
            lufs: float = PAPER_LUFS) -> np.ndarray:
    """A whole song as the measure sees it: ``audio (channels <= 2, samples)`` -> float64
    ``(2, samples)`` (mono as dual mono), resampled to ``to_rate`` (soxr) if given, DC
    removed per channel, at ``lufs`` integrated loudness (silence is left as it is)."""
    from ..loudness import normalize_np

    x = np.atleast_2d(np.asarray(audio, dtype=np.float64))
    if x.shape[0] == 1:
        x = np.concatenate([x, x])
    if x.shape[0] != 2:
        raise ValueError(f"expected mono or stereo audio (channels, samples), got shape {x.shape}")
    if to_rate is not None and to_rate != sample_rate:
        import soxr

        x = soxr.resample(x.T, sample_rate, to_rate, quality="HQ").T
        sample_rate = to_rate
    x = x - x.mean(-1, keepdims=True)
    return normalize_np(x, sample_rate, lufs)[0].astype(np.float64)


def song_features(audio: np.ndarray, sample_rate: int, to_rate: int | None = None) -> dict:
    """:func:`paper_features` of a whole song after :func:`prepare` (batch 1, float64)."""
    x = prepare(audio, sample_rate, to_rate)
    with torch.no_grad():
        return paper_features(torch.from_numpy(x)[None], to_rate or sample_rate)


def paper_af(mix: np.ndarray, reference: np.ndarray, sample_rate: int, reference_sr: int | None = None,
             weights: dict | None = None) -> dict[str, float]:
    """The paper's AF distance between two whole songs (numpy ``(channels, samples)``).

    The mix is resampled to the reference's rate if they differ; both are DC-removed and
    brought to -16 LUFS. Returns ``{"total": ..., "rms": ..., ...}`` (weighted terms that
    sum to the total)."""
    rate = reference_sr or sample_rate
    fm = song_features(mix, sample_rate, rate)
    fr = song_features(reference, rate)
    total, terms = paper_distance(fm, fr, weights)
    return {"total": float(total), **{k: float(v) for k, v in terms.items()}}
