"""The network's settings for a whole song: windows over the tracks and the reference,
their embeddings pooled, one pass of the controller."""

from __future__ import annotations

import numpy as np
import torch

from ..pipeline.song import covering_window_starts, window_starts
from .network import DiffMST


def _resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    from ..audio import resample

    return resample(np.ascontiguousarray(x, dtype=np.float32), sr_in, sr_out)


@torch.no_grad()
def predict_settings(model: DiffMST, tracks, reference: np.ndarray, reference_sr: int, windows: int = 4,
                     window_s: float = 5.0, seed: int = 0, link_stereo: bool = True):
    """:class:`~diffmst.console.Settings` for ``tracks`` (a :class:`~diffmst.audio.Tracks`)
    in the style of ``reference`` (``(2, samples)`` at ``reference_sr``).

    Each track is encoded on ``windows`` windows of ``window_s`` seconds chosen to hear
    every track that plays (as the optimiser's), the reference on as many evenly spread
    windows; embeddings are averaged over the windows, so a whole song costs ``windows``
    encoder passes per signal and one controller pass. With ``link_stereo`` a stereo file's
    two tracks share their settings but their pans, as in the optimiser
    (:class:`~diffmst.pipeline.refine.StereoTie`).
    """
    from ..console import MASTER_PARAMS, TRACK_PARAMS, Settings, denormalize
    from ..pipeline.refine import StereoTie

    model.eval()
    sr = model.config.sample_rate
    audio = _resample(tracks.audio, tracks.sample_rate, sr)
    ref = _resample(reference, reference_sr, sr)
    length = int(round(window_s * sr))
    rng = np.random.default_rng(seed)
    t_starts = covering_window_starts(audio, sr, length, windows, rng)
    r_starts = window_starts(ref.shape[1], length, windows)
    t_emb = torch.stack([model.embed(torch.from_numpy(np.ascontiguousarray(audio[None, :, s:s + length])))
                         for s in t_starts]).mean(0)                    # (1, tracks, dim)
    r_emb = torch.stack([model.embed(torch.from_numpy(np.ascontiguousarray(ref[None, :, s:s + length])))
                         for s in r_starts]).mean(0)                    # (1, 2, dim)
    track_u, master_u = model.control(t_emb, r_emb)
    track_u = StereoTie(tracks.names, link_stereo).expand(track_u[0].double())
    return Settings(list(tracks.names), denormalize(track_u, TRACK_PARAMS).float(),
                    denormalize(master_u[0].double(), MASTER_PARAMS).float())
