"""The network's settings for a whole song: windows over the tracks and the reference,
their embeddings pooled, one pass of the controller.

The network was trained on tracks at -48 LUFS each and references at -16 LUFS
(:mod:`diffmst.data.samplers`); a song's tracks and reference are brought there before
encoding, and each track's predicted input gain then takes its own level offset back, so
the settings apply to the tracks as they are (gain and EQ are linear and come first in
the strip, so this is exact)."""

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
    from ..console.params import TRACK_INDEX
    from ..data.samplers import REFERENCE_LUFS, TRACK_LUFS
    from ..loudness import loudness_batch_np
    from ..pipeline.refine import StereoTie
    from ..pipeline.song import source_groups

    model.eval()
    sr = model.config.sample_rate
    audio = _resample(tracks.audio, tracks.sample_rate, sr)
    ref = _resample(reference, reference_sr, sr)
    # each track to -48 LUFS (a silent one counts as -70), the reference to -16 LUFS; a
    # linked stereo file's two tracks by one offset (their mean level), keeping its balance
    levels = loudness_batch_np(audio[:, None], sr, floor=-70.0)
    if link_stereo:
        for idx in source_groups(tracks.names):
            levels[idx] = levels[idx].mean()
    offsets = TRACK_LUFS - levels                                       # dB, per track
    audio = audio * (10 ** (offsets / 20))[:, None].astype(np.float32)
    ref_level = float(loudness_batch_np(ref, sr, floor=-70.0))
    ref = ref * np.float32(10 ** ((REFERENCE_LUFS - ref_level) / 20))
    length = int(round(window_s * sr))
    rng = np.random.default_rng(seed)
    t_starts = covering_window_starts(audio, sr, length, windows, rng)
    r_starts = window_starts(ref.shape[1], length, windows)
    t_win = [torch.from_numpy(np.ascontiguousarray(audio[None, :, s:s + length])) for s in t_starts]
    r_win = [torch.from_numpy(np.ascontiguousarray(ref[None, :, s:s + length])) for s in r_starts]
    r_emb = torch.stack([model.embed(w) for w in r_win]).mean(0)        # (1, 2, dim)
    if model.context is None:
        t_emb, ctx = torch.stack([model.embed(w) for w in t_win]).mean(0), (None, None)
    else:  # band powers from the same STFTs, averaged over the windows
        t_out = [model.embed(w, with_power=True) for w in t_win]
        t_emb = torch.stack([e for e, _ in t_out]).mean(0)                # (1, tracks, dim)
        ctx = (model.sum_powers(torch.stack([p for _, p in t_out]).mean(0)),
               torch.stack([model.reference_context(w) for w in r_win]).mean(0))
    track_u, master_u = model.control(t_emb, r_emb, None, *ctx)
    track_u = StereoTie(tracks.names, link_stereo).expand(track_u[0].double())
    tp = denormalize(track_u, TRACK_PARAMS)
    tp[:, TRACK_INDEX["gain_db"]] += torch.from_numpy(offsets).double()    # back to the tracks' own levels
    return Settings(list(tracks.names), tp.float(), denormalize(master_u[0].double(), MASTER_PARAMS).float())
