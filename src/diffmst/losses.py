"""Losses of Diff-MST: the audio-feature (AF) loss, the multi-resolution STFT loss, and
loudness normalisation (re-exported from :mod:`diffmst.loudness`).

* :class:`AFLoss` compares style features (:mod:`diffmst.features`) of a mix and a
  reference: a weighted sum of per-feature mean squared errors. It needs no ground truth
  (the reference may be another song).
* :class:`MRSTFTLoss` is full-reference (same content): L1 distance of STFT magnitudes,
  linear and log, at windows 512 / 2048 / 8192 with hop W/2.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch

from .features import FEATURES, FeatureConfig, style_features
from .loudness import integrated_loudness, loudness_normalize  # noqa: F401  (re-exported)

# the paper's weights
AF_WEIGHTS: dict[str, float] = {"rms": 0.1, "crest": 0.001, "width": 1.0, "imbalance": 1.0, "bark": 0.1}


class AFLoss(torch.nn.Module):
    """Audio-feature loss: ``sum_k w_k * mean((f_k(pred) - f_k(target))^2)``.

    Args:
        sample_rate: Hz of the audio given to :meth:`forward`.
        weights: per-feature weights (default :data:`AF_WEIGHTS`, the paper's: RMS 0.1,
            crest 0.001, width 1, imbalance 1, Bark 0.1); missing names weigh 0.
        pool: treat the batch of each input as excerpts of one song, and compare the
            song-level summaries (for per-song optimisation over several windows).
        config: frame sizes of the features.
        lufs: compare the features of both signals brought to this integrated loudness
            (:func:`diffmst.features.loudness_gain`; no audio is scaled), or as given (None).

    ``forward(pred, target)`` takes stereo audio ``(batch, 2, samples)`` or a feature dict
    from :meth:`features` (to compute a fixed reference's features once), and returns
    ``(total, terms)``: a scalar and a dict of the weighted per-feature terms (they sum to
    ``total``). Features are in dB (RMS, crest), ratios (width, imbalance) and nepers
    (Bark); batch sizes must match unless ``target`` has batch 1 (broadcast)."""

    def __init__(self, sample_rate: float, weights: Mapping[str, float] | None = None, pool: bool = False,
                 config: FeatureConfig = FeatureConfig(), lufs: float | None = None):
        super().__init__()
        self.sample_rate = sample_rate
        w = dict(AF_WEIGHTS if weights is None else weights)
        unknown = set(w) - set(FEATURES)
        if unknown:
            raise ValueError(f"unknown AF feature(s) {sorted(unknown)}; known: {', '.join(FEATURES)}")
        self.weights = {k: float(w.get(k, 0.0)) for k in FEATURES}
        self.pool = pool
        self.config = config
        self.lufs = lufs

    def features(self, x: torch.Tensor) -> dict:
        return style_features(x, self.sample_rate, pool=self.pool, config=self.config, lufs=self.lufs)

    def forward(self, pred, target) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        fp = pred if isinstance(pred, Mapping) else self.features(pred)
        ft = target if isinstance(target, Mapping) else self.features(target)
        terms = {}
        for k in FEATURES:
            a, b = fp[k], ft[k].to(fp[k])
            terms[k] = self.weights[k] * (a - b.expand_as(a)).square().mean()
        total = torch.stack(list(terms.values())).sum()
        return total, terms


class MRSTFTLoss(torch.nn.Module):
    """Multi-resolution STFT loss (Steinmetz & Reiss 2020; the paper's MRSTFT).

    For each window ``W`` in ``windows`` (Hann, hop ``W/2``), the mean absolute difference
    of STFT magnitudes plus that of their logs (``log(|X| + eps)``), averaged over
    resolutions. ``forward(pred, target)`` with ``(batch, channels, samples)`` each (same
    shape) returns a scalar; zero iff the magnitudes agree."""

    def __init__(self, windows: Sequence[int] = (512, 2048, 8192), eps: float = 1e-5,
                 w_log: float = 1.0, w_lin: float = 1.0):
        super().__init__()
        self.windows = tuple(int(w) for w in windows)
        self.eps = eps
        self.w_log, self.w_lin = w_log, w_lin

    def _mag(self, x: torch.Tensor, w: int) -> torch.Tensor:
        n = x.shape[-1]
        flat = x.reshape(-1, n)
        if n < w:
            flat = torch.nn.functional.pad(flat, (0, w - n))
        win = torch.hann_window(w, dtype=x.dtype, device=x.device)
        spec = torch.stft(flat, w, w // 2, window=win, center=True, return_complex=True)
        return torch.sqrt(spec.real.square() + spec.imag.square() + 1e-12)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape != target.shape:
            raise ValueError(f"MRSTFT needs equal shapes, got {tuple(pred.shape)} and {tuple(target.shape)}")
        total = pred.new_zeros(())
        for w in self.windows:
            p, t = self._mag(pred, w), self._mag(target, w)
            lin = (p - t).abs().mean()
            log = (torch.log(p + self.eps) - torch.log(t + self.eps)).abs().mean()
            total = total + self.w_lin * lin + self.w_log * log
        return total / len(self.windows)
