"""The Diff-MST network: look at the tracks and a reference, predict every console setting.

Each track, and each channel of the reference, is encoded on its own by a spectrogram
CNN into one embedding. A transformer controller then attends over the track tokens,
the two reference tokens and a learned master-bus token; a shared head turns every track
token into that track's strip settings and a master head turns the master token into the
master bus's, all in normalised units ([0, 1] of each range in
:mod:`diffmst.console.params`; :func:`diffmst.console.denormalize` gives real units).

Track tokens carry no position, so the settings permute with the tracks; padded tracks
(``mask`` false) are hidden from attention, so they change nothing for the real ones.
"""

from __future__ import annotations

import torch
from torch import nn

from ..console.params import MASTER_PARAMS, TRACK_PARAMS, defaults, normalize
from .config import COMPACT, ModelConfig


def band_matrix(sample_rate: int, n_fft: int, bands: int, fmin: float) -> torch.Tensor:
    """``(n_fft // 2 + 1, bands)`` triangular filters with centres log-spaced from ``fmin``
    to Nyquist, each at least one bin wide (so none is empty at low frequencies)."""
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    edges = torch.logspace(torch.log10(torch.tensor(fmin)), torch.log10(torch.tensor(sample_rate / 2)),
                           bands + 2, dtype=torch.float64)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    bin_hz = sample_rate / n_fft
    up = (freqs - lo) / (mid - lo).clamp_min(bin_hz)
    down = (hi - freqs) / (hi - mid).clamp_min(bin_hz)
    tri = torch.minimum(up, down).clamp(0, 1)               # (bands, bins)
    nearest = (freqs[None] - mid).abs().argmin(1)          # a band narrower than a bin: its nearest bin
    rows = torch.arange(bands)
    tri[rows, nearest] = tri[rows, nearest].clamp_min(1.0)
    return (tri / tri.sum(1, keepdim=True)).T.float()      # each band: a weighted mean of its bins


class SpectrogramEncoder(nn.Module):
    """Mono audio -> one embedding.

    Shape:
        x: ``(batch, samples)`` at ``config.sample_rate`` -> ``(batch, config.dim)``.
    """

    def __init__(self, config: ModelConfig = COMPACT):
        super().__init__()
        self.config = config
        self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)
        if config.bands:
            fb = band_matrix(config.sample_rate, config.n_fft, config.bands, config.fmin)
            self.register_buffer("bands", fb, persistent=False)
        else:
            self.bands = None
        blocks, c_in = [], 1
        for c in config.channels:
            # GroupNorm(1, c): per signal, so padded tracks in a batch change nothing (BatchNorm would)
            blocks += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.GroupNorm(1, c), nn.GELU()]
            c_in = c
        self.cnn = nn.Sequential(*blocks)
        # the CNN's GroupNorm hides each signal's level and spectrum; they are what a mix
        # is made of, so each band's mean log power and its spread over time join the
        # pooled CNN features (with bands; without, the CNN alone)
        self.stats = 2 * config.bands
        self.out = nn.Linear(2 * c_in + self.stats, config.dim)

    def magnitude(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, samples)`` -> STFT magnitudes ``(batch, bands or bins, frames)``."""
        c = self.config
        spec = torch.stft(x, c.n_fft, c.hop, window=self.window, center=True, return_complex=True)
        mag = spec.abs()                                         # (batch, freq, frames)
        if self.bands is not None:
            mag = torch.einsum("bft,fk->bkt", mag, self.bands)  # (batch, bands, frames)
        return mag

    def band_power(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, samples)`` -> mean power per band ``(batch, bands)`` (linear)."""
        return self.magnitude(x).square().mean(-1)

    def forward(self, x: torch.Tensor, with_power: bool = False):
        """``(batch, samples)`` -> ``(batch, dim)``; with ``with_power`` also
        :meth:`band_power`'s ``(batch, bands)`` from the same STFT."""
        c = self.config
        mag = self.magnitude(x)
        power = mag.square().mean(-1) if with_power else None
        feats = []
        if self.stats:
            log_pow = torch.log10(mag.square() + 1e-10)         # (batch, bands, frames), bels
            feats = [log_pow.mean(-1) / 10 + 0.5, log_pow.std(-1)]   # about unit scale at -48 LUFS
        mag = mag.clamp_min(1e-8) ** c.compress
        h = self.cnn(mag[:, None])                               # (batch, C, freq', frames')
        h = h.mean(2)                                            # over frequency: (batch, C, frames')
        pooled = torch.cat([h.mean(-1), h.amax(-1), *feats], -1)  # over time: mean and max
        return (self.out(pooled), power) if with_power else self.out(pooled)


class DiffMST(nn.Module):
    """Tracks and a reference -> normalised strip and master settings.

    Shape:
        tracks: ``(batch, tracks, samples)``, mono tracks (a stereo file's L and R are two).
        reference: ``(batch, 2, samples)`` (any length).
        mask: ``(batch, tracks)`` bool, true for real tracks (default: all real).
        returns ``(track_u (batch, tracks, len(TRACK_PARAMS)), master_u (batch, len(MASTER_PARAMS)))``
        in [0, 1].
    """

    def __init__(self, config: ModelConfig = COMPACT):
        super().__init__()
        self.config = config
        self.encoder = SpectrogramEncoder(config)
        d = config.dim
        self.kind = nn.Embedding(3, d)  # 0: track, 1: reference channel, 2: master bus
        self.master = nn.Parameter(torch.randn(d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, config.heads, config.ff, config.dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        # no nested tensors: the padded and unpadded paths must compute the same numbers
        self.controller = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        # the master token also hears how the reference differs from the tracks, band by
        # band (reference mid vs the tracks' sum, side vs mid, left vs right, and the mid
        # itself): what a master EQ, stereo width and balance must change is then a
        # direct input, not something to be inferred from pooled embeddings (starts at zero)
        self.context = nn.Linear(4 * config.bands, d) if config.bands else None
        if self.context is not None:
            nn.init.zeros_(self.context.weight)
            nn.init.zeros_(self.context.bias)
        self.track_head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, len(TRACK_PARAMS)))
        self.master_head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, len(MASTER_PARAMS)))
        # an untrained network predicts (close to) the console's neutral settings: unity
        # gains, flat EQ, compressors barely on, centred; training moves away from there
        # rather than from the middle of every range (a 3:1 compressor at -30 dB)
        for head, specs in ((self.track_head, TRACK_PARAMS), (self.master_head, MASTER_PARAMS)):
            u = normalize(defaults(specs), specs).clamp(0.1, 0.9)  # not where the sigmoid is flat
            with torch.no_grad():
                head[-1].weight.mul_(0.1)
                head[-1].bias.copy_(torch.log(u / (1 - u)))

    def embed(self, audio: torch.Tensor, with_power: bool = False):
        """``(batch, n, samples)`` -> ``(batch, n, dim)``: every signal encoded on its own;
        with ``with_power`` also each signal's band powers ``(batch, n, bands)``."""
        b, n, t = audio.shape
        if not with_power:
            return self.encoder(audio.reshape(b * n, t)).reshape(b, n, -1)
        emb, power = self.encoder(audio.reshape(b * n, t), with_power=True)
        return emb.reshape(b, n, -1), power.reshape(b, n, -1)

    def forward(self, tracks: torch.Tensor, reference: torch.Tensor,
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if tracks.shape[1] > self.config.max_tracks:
            raise ValueError(f"{tracks.shape[1]} tracks; this model takes at most {self.config.max_tracks}")
        if self.context is None:
            return self.control(self.embed(tracks), self.embed(reference), mask)
        t_emb, t_pow = self.embed(tracks, with_power=True)
        ctx = (self.sum_powers(t_pow, mask), self.reference_context(reference))
        return self.control(t_emb, self.embed(reference), mask, *ctx)

    def track_context(self, tracks: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(batch, tracks, samples)`` -> the real tracks' summed band powers ``(batch, bands)``."""
        b, n, t = tracks.shape
        return self.sum_powers(self.encoder.band_power(tracks.reshape(b * n, t)).reshape(b, n, -1), mask)

    @staticmethod
    def sum_powers(power: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Band powers ``(batch, tracks, bands)`` (:meth:`embed` with ``with_power``) ->
        the real tracks' sum ``(batch, bands)``: :meth:`track_context` without a second STFT."""
        return (power if mask is None else power * mask[..., None].to(power)).sum(1)

    def reference_context(self, reference: torch.Tensor) -> torch.Tensor:
        """``(batch, 2, samples)`` -> band powers of mid, side, left, right ``(batch, 4, bands)``."""
        mid, side = reference.sum(1) / 2, (reference[:, 0] - reference[:, 1]) / 2
        x = torch.stack([mid, side, reference[:, 0], reference[:, 1]], 1)
        b, k, t = x.shape
        return self.encoder.band_power(x.reshape(b * k, t)).reshape(b, k, -1)

    def control(self, track_emb: torch.Tensor, ref_emb: torch.Tensor, mask: torch.Tensor | None = None,
                track_ctx: torch.Tensor | None = None, ref_ctx: torch.Tensor | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """The controller and heads on embeddings (e.g. pooled over a song's windows).

        Shape:
            track_emb: ``(batch, tracks, dim)``; ref_emb: ``(batch, 2, dim)``; mask as in
            :meth:`forward`; track_ctx ``(batch, bands)`` and ref_ctx ``(batch, 4, bands)``:
            :meth:`track_context` and :meth:`reference_context` (band powers: average them
            over windows); returns as :meth:`forward`.
        """
        b, n, _ = track_emb.shape
        if mask is None:
            mask = torch.ones(b, n, dtype=torch.bool, device=track_emb.device)
        t_tok = track_emb + self.kind.weight[0]
        r_tok = ref_emb + self.kind.weight[1]
        m_tok = (self.master + self.kind.weight[2]).expand(b, 1, -1)
        if self.context is not None:
            if track_ctx is None or ref_ctx is None:
                raise ValueError("this model needs track_ctx and ref_ctx (see track_context, reference_context)")

            def db(p: torch.Tensor) -> torch.Tensor:  # in units of 20 dB
                return torch.log10(p + 1e-12) / 2

            mid, side, left, right = db(ref_ctx).unbind(1)
            c = torch.cat([mid - db(track_ctx), side - mid, left - right, mid], -1)
            m_tok = m_tok + self.context(c)[:, None]
        tokens = torch.cat([m_tok, r_tok, t_tok], 1)
        keep = torch.cat([torch.ones(b, 1 + r_tok.shape[1], dtype=torch.bool, device=mask.device), mask], 1)
        h = self.norm(self.controller(tokens, src_key_padding_mask=~keep))
        track_u = torch.sigmoid(self.track_head(h[:, 1 + r_tok.shape[1]:]))
        master_u = torch.sigmoid(self.master_head(h[:, 0]))
        return track_u, master_u
