"""Refinement: Adam on the console settings of one song, from any start settings, against
the paper's AF distance to a reference.

The console runs on a few windows of the song (chosen to hear every track that plays) at
the analysis rate, batched; each window's mix goes through what finishing will do to it
(the output loudness, the master's true-peak limiter, then -16 LUFS for the measure).
Settings move in normalised units (each parameter in [0, 1] of its range,
:mod:`diffmst.console.params`), projected back after every step, with a weak prior
towards the start. A stereo file's two tracks share their settings (:class:`StereoTie`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from .options import BARK_FLOOR, Options
from .finish import clip_to_table
from .result import terms_dict
from .song import Notify, Progress, analysis_windows, quiet, source_groups


def bounds(u0, specs, analysis_sr: float):
    """Per-parameter [lo, hi] in normalised units: [0, 1], except EQ frequencies limited
    below 0.45 x the analysis rate (what the analysis cannot hear it must not move), and
    EQ bands wholly above that frozen at their start value."""
    import torch

    from ..console.params import EQ_BANDS

    lo = torch.zeros_like(u0)
    hi = torch.ones_like(u0)
    index = {p.name: i for i, p in enumerate(specs)}
    limit = 0.45 * analysis_sr
    for key, _kind, fmin, fmax, _fdef in EQ_BANDS:
        fi = index[f"eq.{key}.freq_hz"]
        if fmin >= limit:
            for name in ("gain_db", "freq_hz", "q"):
                i = index[f"eq.{key}.{name}"]
                lo[..., i] = u0[..., i]
                hi[..., i] = u0[..., i]
        elif fmax > limit:
            hi[..., fi] = specs[fi].normalize(limit)
    return lo, hi


def start_settings(settings, levels_db: np.ndarray, target_lufs: float):
    """Optimiser start: the equal-loudness settings, with each compressor's threshold at
    the level of its input (ratio 1, so the sound is unchanged) so that compression can
    start to act as soon as the ratio moves."""
    from ..console import Settings
    from ..console.params import MASTER_INDEX, TRACK_INDEX

    s = Settings(list(settings.track_names), settings.track_params.clone(), settings.master_params.clone())
    thr = np.clip(levels_db, -60.0, 0.0)
    s.track_params[:, TRACK_INDEX["compressor.threshold_db"]] = torch_tensor(thr)
    s.master_params[MASTER_INDEX["compressor.threshold_db"]] = float(np.clip(target_lufs, -60.0, 0.0))
    return s


class StereoTie:
    """Tracks <-> the values the optimiser moves. With ``link``, a stereo file's ``name.L``
    and ``name.R`` (see :func:`source_groups`) share one gain, EQ and compressor setting
    (the L track's), so the file's own balance and timbre are kept, while each side keeps
    its own pan: the pair can be narrowed, widened and moved, as a DAW's stereo panner
    does. (Pans mirrored about the centre could not follow a lopsided reference:
    planetblupi's music004, 14 dB louder on the right, ended at AF 0.73 instead of 0.08.)

    Rows are ``(tracks, params)`` normalised; when linked an R track's own columns other
    than its pan are unused."""

    def __init__(self, names: Sequence[str], link: bool = True):
        import torch

        from ..console.params import TRACK_INDEX

        src = list(range(len(names)))
        if link:
            for idx in source_groups(names):
                for i in idx:
                    src[i] = idx[0]
        self.src = torch.tensor(src)
        self.pan = TRACK_INDEX["pan"]

    def expand(self, rows):
        """``(tracks, params)`` normalised -> the same with the ties applied."""
        import torch

        u = rows[self.src.to(rows.device)]
        return torch.cat([u[:, : self.pan], rows[:, self.pan : self.pan + 1], u[:, self.pan + 1:]], 1)


def torch_tensor(a):
    import torch

    return torch.as_tensor(np.asarray(a, dtype=np.float32))


@dataclass
class Refined:
    """What :func:`refine` returns (features and distances on the analysis windows)."""

    settings: Any                 # diffmst.console.Settings: the best found, within the table
    history: list[dict]           # per step: t (s), loss, af, prior, sections and the AF terms
    features: dict                # reference / start / refined -> plain-Python features
    af: dict                      # start / refined -> {"total", per-term}
    push_db: float                # the limiter's loudness loss, learnt: finish() starts from it
    windows_s: list[float]        # window start times in the song
    seconds: dict                 # prepare, optimize (s)


def refine(song, ref: np.ndarray, ref_sr: int, start, opts: Options, out_lufs: float, ceiling: float, *,
           notify: Notify = quiet, progress: Progress | None = None, console_fn: Callable | None = None) -> Refined:
    """Refine ``start`` (:class:`~diffmst.console.Settings` for ``song``'s tracks) so that
    the song's mix matches ``ref`` (``(2, samples)`` at ``ref_sr``) on the paper's measure.

    ``out_lufs`` and ``ceiling`` (dBTP) are what finishing will do to the mix (the windows
    are measured as finished). ``console_fn`` as for :func:`diffmst.optimize`.
    """
    import torch

    from ..console import MASTER_PARAMS, TRACK_PARAMS, Settings, console, denormalize, normalize
    from ..console.eq import reuse_input_spectra
    from ..console.limiter import gain_db as limiter_gain_db
    from ..console.params import MASTER_INDEX
    from ..evaluate.metrics import PAPER_LUFS, paper_distance, paper_features, song_features
    from ..evaluate.metrics import stereo_imbalance as paper_stereo_imbalance
    from ..evaluate.metrics import stereo_width as paper_stereo_width
    from ..features import prepare as hp_prepare
    from ..features import to_python
    from ..losses import AF_WEIGHTS
    from ..loudness import block_powers, gain_to_target_db, k_weight

    t0 = time.perf_counter()
    seconds: dict[str, float] = {}
    torch.manual_seed(opts.seed)
    dev = torch.device(opts.device)
    analysis_sr, steps, lr, prior, w = opts.analysis_sr, opts.steps, opts.lr, opts.prior, opts.weights

    # inputs at the analysis rate; the reference's features from the whole song, as the
    # paper's measure takes them (DC removed, at -16 LUFS)
    x, pre, starts = analysis_windows(song, opts, notify)
    x = x.to(dev)
    # the optimiser's target: the same features after a 20 Hz high-pass, so that a
    # reference's infrasonic drift (which the measure counts in its RMS) is not matched
    ref_hp = hp_prepare(torch.from_numpy(np.ascontiguousarray(ref, dtype=np.float64)), ref_sr)[0].numpy()
    ref_feats = {k: v.float().to(dev) for k, v in song_features(ref_hp, ref_sr, analysis_sr).items()}
    # the optimiser's Bark floor: 30 dB below each of the reference's bands (the measure's
    # 1e-8 makes an empty band, e.g. the side of an all-centred start, cost ~600 Np^2)
    bark_floor = ref_feats["bark"].exp()[0] * BARK_FLOOR
    ref_feats["bark"] = torch.log(ref_feats["bark"].exp() + bark_floor)
    seconds["prepare"] = time.perf_counter() - t0

    k = x.shape[0]
    eq_tail = pre or None  # the FFT EQ's padding only as long as the discarded warm-up
    release = torch.tensor([MASTER_PARAMS[MASTER_INDEX["limiter.release_ms"]].default], device=dev)
    ceil_t = torch.tensor([ceiling], device=dev)

    def run_console(xx, tp, mp, sr):
        return console(xx, tp, mp, sr, eq_tail=eq_tail, wet=False, limit=False)[0]

    mixer = console_fn or run_console
    # the limiter takes away loudness: the windows are brought this much above the output
    # loudness before it, learnt from step to step (what finish() does on the whole song)
    push = [0.0]

    def mix_features(tp, mp, learn: bool = False):
        mix = mixer(x, tp.expand(k, -1, -1), mp.expand(k, -1), analysis_sr)[..., pre:]
        mix = mix - mix.mean(-1, keepdim=True)
        # as finished: at the output loudness, through the limiter; then measured at -16
        # LUFS. One K-weighting: the limiter's slow gain is applied to the weighted signal too.
        kw = k_weight(mix, analysis_sr)
        g_out = torch.pow(10.0, gain_to_target_db(block_powers(kw, analysis_sr), out_lufs + push[0], pool=True) / 20)
        lim = torch.pow(10.0, limiter_gain_db(mix * g_out.detach(), ceil_t.expand(k), release.expand(k),
                                              analysis_sr) / 20).unsqueeze(1)
        g16 = gain_to_target_db(block_powers(kw * (g_out * lim), analysis_sr), PAPER_LUFS, pool=True)
        if learn:
            short = out_lufs - (PAPER_LUFS - float(g16.detach()))  # the output's loudness shortfall
            push[0] = min(max(push[0] + short, 0.0), 20.0)
        y = mix * (g_out * lim) * torch.pow(10.0, g16 / 20)
        feats = paper_features(y, analysis_sr, pool=True, bark_floor=bark_floor)
        # each window's own stereo image (see `sections` below)
        feats["width_each"], feats["imbalance_each"] = paper_stereo_width(y), paper_stereo_imbalance(y)
        return feats

    def af(fa, fb):
        return paper_distance(fa, fb, w)

    aw = {**AF_WEIGHTS, **(w or {})}

    def sections(fa, fb):
        """Width and imbalance of every window against the reference's whole song. The
        measure pools them over the song, and so can a mix that is lopsided in every
        section (an organ hard left in the verses, a guitar hard right in the last
        chorus): the windows then balance by chance and the rest of the song does not."""
        return (aw["width"] * (fa["width_each"] - fb["width"]).square().mean()
                + aw["imbalance"] * (fa["imbalance_each"] - fb["imbalance"]).square().mean())

    # a stereo file's pair shares its strip settings (the pans aside)
    tie = StereoTie(song.names, opts.link_stereo)
    u0_t = normalize(start.track_params.double(), TRACK_PARAMS).clamp(0, 1).float().to(dev)
    u0_m = normalize(start.master_params.double(), MASTER_PARAMS).clamp(0, 1).float().to(dev)
    lo_t, hi_t = bounds(u0_t, TRACK_PARAMS, analysis_sr)
    lo_m, hi_m = bounds(u0_m, MASTER_PARAMS, analysis_sr)
    u_t = u0_t.clone().requires_grad_(True)
    u_m = u0_m.clone().requires_grad_(True)
    opt = torch.optim.Adam([u_t, u_m], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps), eta_min=lr / 10)

    def real(ut, um):
        return denormalize(tie.expand(ut)[None], TRACK_PARAMS), denormalize(um[None], MASTER_PARAMS)

    # the tracks are the same every step: the EQ keeps their rfft (about 6 % of a step)
    with reuse_input_spectra():
        with torch.no_grad():
            tp_b = start.track_params[None].to(dev)
            mp_b = start.master_params[None].to(dev)
            for _ in range(3):  # settle the limiter's push for the start
                base_feats = mix_features(tp_b, mp_b, learn=True)
            base_total, base_terms = af(base_feats, ref_feats)

        history: list[dict] = []
        best = (float(base_total), u0_t.detach().clone(), u0_m.detach().clone())
        t_opt = time.perf_counter()
        for step in range(steps):
            opt.zero_grad(set_to_none=True)
            tp, mp = real(u_t, u_m)
            feats = mix_features(tp, mp, learn=True)
            total, terms = af(feats, ref_feats)
            sect = sections(feats, ref_feats)
            reg = prior * (((u_t - u0_t) ** 2).mean() + ((u_m - u0_m) ** 2).mean())
            loss = total + sect + reg
            if not torch.isfinite(loss):
                notify(f"loss became non-finite at step {step}; keeping the best settings so far")
                break
            loss.backward()
            af_value = float(total.detach())
            if af_value < best[0]:
                best = (af_value, u_t.detach().clone(), u_m.detach().clone())
            history.append({"step": step, "t": round(time.perf_counter() - t_opt, 3),
                            "loss": round(float(loss.detach()), 6), "af": round(af_value, 6),
                            "prior": round(float(reg.detach()), 6), "sections": round(float(sect.detach()), 6),
                            **{key: round(float(v.detach()), 6) for key, v in terms.items()}})
            for u in (u_t, u_m):
                if u.grad is not None:
                    torch.nan_to_num_(u.grad, nan=0.0, posinf=0.0, neginf=0.0)
            opt.step()
            sched.step()
            with torch.no_grad():
                u_t.copy_(torch.maximum(torch.minimum(u_t, hi_t), lo_t))
                u_m.copy_(torch.maximum(torch.minimum(u_m, hi_m), lo_m))
            if progress is not None:
                progress(step + 1, steps, af_value)
        seconds["optimize"] = time.perf_counter() - t_opt

        with torch.no_grad():  # the last update has not been measured yet
            tp, mp = real(u_t, u_m)
            last_total, _ = af(mix_features(tp, mp), ref_feats)
            if float(last_total) < best[0]:
                best = (float(last_total), u_t.detach().clone(), u_m.detach().clone())
            tp, mp = real(best[1], best[2])
            opt_feats = mix_features(tp, mp)
            opt_total, opt_terms = af(opt_feats, ref_feats)
    settings = Settings(list(song.names), tp[0].float().cpu(), mp[0].float().cpu())
    clip_to_table(settings)
    return Refined(
        settings=settings, history=history,
        features={"reference": to_python(ref_feats), "start": to_python(base_feats), "refined": to_python(opt_feats)},
        af={"start": terms_dict(base_total, base_terms), "refined": terms_dict(opt_total, opt_terms)},
        push_db=push[0], windows_s=starts, seconds=seconds)

