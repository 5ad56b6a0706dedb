"""The network's sizes: one frozen config per preset, saved beside the weights."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of :class:`~diffmst.model.network.DiffMST`.

    The encoder sees magnitude STFTs (Hann ``n_fft`` / ``hop``) at ``sample_rate`` Hz,
    compressed as ``|X| ** compress``, optionally summed into ``bands`` log-spaced
    triangular bands from ``fmin`` Hz to Nyquist first (0: the CNN sees every bin; bands make
    the encoder several times cheaper, and mixing decisions are made per band anyway);
    ``channels`` are its CNN widths (each block halves time and frequency). The controller is a transformer of ``layers`` x ``heads`` over
    ``dim``-wide tokens."""

    sample_rate: int = 44100
    n_fft: int = 2048
    hop: int = 512
    compress: float = 0.3
    bands: int = 0
    fmin: float = 20.0
    channels: tuple[int, ...] = (16, 32, 64, 128)
    dim: int = 256
    layers: int = 4
    heads: int = 4
    ff: int = 512
    dropout: float = 0.0
    max_tracks: int = 64

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown model config field(s): {', '.join(unknown)}")
        return cls(**{**d, "channels": tuple(d.get("channels", cls.channels))})


#: trains on 2 CPU cores (a few million parameters): the shipped model's preset. It hears
#: 22.05 kHz (half the encoder's cost of 44.1 kHz; the settings it predicts are in physical
#: units, so they apply at any rate) in 128 bands.
COMPACT = ModelConfig(sample_rate=22050, bands=128)
#: the paper's sizes (a wider encoder and controller), for GPUs
PAPER = ModelConfig(channels=(32, 64, 128, 256, 512), dim=512, layers=6, heads=8, ff=2048, dropout=0.1)

PRESETS = {"compact": COMPACT, "paper": PAPER}
