"""Training examples for Diff-MST: Method 1 and Method 2 samplers (torch Datasets).

**Method 1** (paper, section "Method 1"): pick a song and up to ``max_tracks`` of its
tracks, a 10 s segment that is not silent, and random console settings from
:class:`SettingsDistribution` (plausible mixes, not uniform noise over the ranges). The
tracks are loudness-normalised (-48 LUFS each, over the whole segment) and split in
halves ``T_A``, ``T_B``; each half is mixed by the console from zero filter and
compressor state, giving ``M_rA`` and ``M_rB``. Rendering each half from rest (rather
than the whole segment in one pass and cutting it) means the target is exactly what the
console makes of ``T_B`` with the returned settings: ``M_rB = g * console(T_B, settings)``
where ``g = 10 ** (target_gain_db / 20)`` normalises it to -16 LUFS. The model gets
``T_B`` and ``M_rA`` (normalised to -16 LUFS); ``M_rB`` is the ground truth.

**Method 2**: 4..16 tracks of song A (random count, stereo pairs kept together) and a
segment of a finished mix of a different song B, from a
:class:`~diffmst.data.sources.ReferenceSource`; without one, from
:class:`GeneratedReferences`: songs of the multitrack corpus mixed with random plausible
settings, then a mastering stage (heavier bus compression, loudness push and a soft
clipper).

Seeding: an item is a pure function of ``(seed, index)``, so the data do not depend on
which worker computes them or how many workers there are. :class:`EpochSampler` yields
the indices ``epoch * n .. epoch * n + n - 1`` (and splits them over ranks), so each
epoch sees new items and re-running an epoch repeats them; its ``set_epoch`` is called
by Lightning (or by hand) at the start of each epoch.

Loudness is BS.1770-4 integrated loudness, on numpy and vectorised over tracks
(:func:`diffmst.loudness.loudness_batch_np`; agrees with pyloudnorm).
"""

from __future__ import annotations

import functools
import math
import zlib
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import scipy.signal
import torch
from torch.utils.data import Dataset, Sampler

from ..console.console import console
from ..console.params import MASTER_INDEX, MASTER_PARAMS, TRACK_INDEX, TRACK_PARAMS, EQ_BANDS, defaults, table
from ..errors import DiffmstError
from ..loudness import loudness_batch_np, normalize_batch_np
from .sources import MultitrackSource, ReferenceSource, Stem

TRACK_LUFS = -48.0  #: loudness of each input track (paper code)
REFERENCE_LUFS = -16.0  #: loudness of references and targets (paper code)


# ----------------------------------------------------------------------------- loudness


@functools.lru_cache(maxsize=16)
def _dc_block(sample_rate: int) -> np.ndarray:
    return scipy.signal.butter(2, 20.0, "highpass", fs=sample_rate, output="sos")


def dc_block(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Remove DC and infrasonic drift: 2nd-order 20 Hz Butterworth high-pass (last axis)."""
    return scipy.signal.sosfilt(_dc_block(int(sample_rate)), x, axis=-1).astype(np.float32)


# ----------------------------------------------------------------------------- settings


def _rng(generator: np.random.Generator | int | None) -> np.random.Generator:
    return generator if isinstance(generator, np.random.Generator) else np.random.default_rng(generator)


@dataclass(frozen=True)
class SettingsDistribution:
    """How random console settings are drawn (Method 1 and generated references).

    The aim is mixes an engineer might make from tracks that arrive at equal loudness
    (-48 LUFS each), not uniform noise over the parameter ranges. Every value is finally
    clipped to the range in :mod:`diffmst.console.params`; the numbers here shape the
    distribution inside it. Pairs ``(lo, hi)`` are drawn uniformly, or log-uniformly for
    times, ratios, Q and frequencies.

    Per track:

    - ``gain_db ~ gain_offset_db + N(0, gain_sd_db)``: a balance around equal loudness;
    - each EQ band: gain ``N(0, eq_gain_sd_db)``, frequency log-uniform over the band's
      range in the parameter table, Q log-uniform in ``eq_peak_q`` (peaking bands) or
      ``eq_shelf_q`` (shelves);
    - compressor: with probability ``comp_prob`` a ratio log-uniform in ``comp_ratio``,
      else 1 (bypassed); threshold ``comp_threshold_rel_db`` above the track's loudness
      after its gain (the detector follows sample peaks, which sit 10-20 dB above the
      loudness, so this compresses the louder parts gently); attack, release log-uniform;
      knee uniform over the table's range; makeup in ``comp_makeup_db``;
    - pan: mono tracks near the centre with probability ``pan_centre_prob`` (within
      ``pan_centre_width``), else anywhere in ``0.5 +- pan_spread``; a stereo pair shares
      gain, EQ and compressor, its left track panned in ``[0, stereo_width]`` and its
      right mirrored.

    Master bus: EQ gains ``N(0, master_eq_gain_sd_db)``; a light compressor (ratio in
    ``master_comp_ratio``, threshold ``master_comp_threshold_rel_db`` above the mix's
    estimated loudness, attack and release log-uniform); output gain ``N(0,
    master_gain_sd_db)`` (the level is normalised away before any loss).
    """

    gain_offset_db: float = 0.0
    gain_sd_db: float = 4.0
    eq_gain_sd_db: float = 3.5
    eq_peak_q: tuple[float, float] = (0.4, 3.0)
    eq_shelf_q: tuple[float, float] = (0.5, 1.0)
    comp_prob: float = 0.7
    comp_ratio: tuple[float, float] = (1.5, 5.0)
    comp_threshold_rel_db: tuple[float, float] = (-4.0, 8.0)
    comp_attack_ms: tuple[float, float] = (5.0, 60.0)
    comp_release_ms: tuple[float, float] = (40.0, 250.0)
    comp_makeup_db: tuple[float, float] = (0.0, 3.0)
    pan_centre_prob: float = 0.35
    pan_centre_width: float = 0.05
    pan_spread: float = 0.4
    stereo_width: tuple[float, float] = (0.0, 0.3)
    master_eq_gain_sd_db: float = 1.5
    master_comp_ratio: tuple[float, float] = (1.0, 2.5)
    master_comp_threshold_rel_db: tuple[float, float] = (0.0, 8.0)
    master_comp_attack_ms: tuple[float, float] = (10.0, 60.0)
    master_comp_release_ms: tuple[float, float] = (50.0, 250.0)
    master_gain_sd_db: float = 1.0

    @classmethod
    def mastering(cls) -> "SettingsDistribution":
        """A finished-record variant for generated references: firmer bus compression."""
        return cls(master_comp_ratio=(2.0, 4.0), master_comp_threshold_rel_db=(-4.0, 6.0),
                   master_comp_attack_ms=(5.0, 30.0))

    def sample(
        self,
        n_tracks: int,
        generator: np.random.Generator | int | None = None,
        pairs: Sequence[tuple[int, int]] = (),
        track_lufs: float = TRACK_LUFS,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw settings for ``n_tracks`` tracks arriving at ``track_lufs``.

        Args:
            pairs: ``(left, right)`` track indices of stereo stems, kept together.
        Returns:
            ``(track_params (n_tracks, len(TRACK_PARAMS)), master_params (len(MASTER_PARAMS),))``
            float32 in real units, inside the table's ranges.
        """
        rng = _rng(generator)
        tp = _sample_strips(self, n_tracks, rng, track_lufs)
        for left, right in pairs:
            tp[right] = tp[left]
        pan = TRACK_INDEX["pan"]
        c = self.pan_centre_width
        centred = rng.random(n_tracks) < self.pan_centre_prob
        tp[:, pan] = np.where(centred, 0.5 + rng.uniform(-c, c, n_tracks),
                              0.5 + rng.uniform(-self.pan_spread, self.pan_spread, n_tracks))
        for left, right in pairs:
            w = rng.uniform(*self.stereo_width)
            tp[left, pan], tp[right, pan] = w, 1.0 - w
        tp = _clip(tp, TRACK_PARAMS)

        # master: threshold relative to the estimated loudness of the bus (uncorrelated
        # tracks add in power; pan gains at the -4.5 dB law give about -1.5 dB per track
        # summed over both channels)
        level = track_lufs + tp[:, TRACK_INDEX["gain_db"]] + tp[:, TRACK_INDEX["compressor.makeup_db"]] - 1.5
        mix_lufs = 10 * np.log10(np.sum(10 ** (level / 10))) if n_tracks else track_lufs
        mp = defaults(MASTER_PARAMS).double().numpy()
        _sample_eq(mp, MASTER_INDEX, rng, self.master_eq_gain_sd_db, self)
        mp[MASTER_INDEX["compressor.ratio"]] = _loguniform(rng, *self.master_comp_ratio)
        mp[MASTER_INDEX["compressor.threshold_db"]] = mix_lufs + rng.uniform(*self.master_comp_threshold_rel_db)
        mp[MASTER_INDEX["compressor.attack_ms"]] = _loguniform(rng, *self.master_comp_attack_ms)
        mp[MASTER_INDEX["compressor.release_ms"]] = _loguniform(rng, *self.master_comp_release_ms)
        mp[MASTER_INDEX["compressor.knee_db"]] = rng.uniform(*_range(MASTER_PARAMS, "compressor.knee_db"))
        mp[MASTER_INDEX["compressor.makeup_db"]] = 0.0
        mp[MASTER_INDEX["gain_db"]] = rng.normal(0.0, self.master_gain_sd_db)
        mp = _clip(mp, MASTER_PARAMS)
        return torch.from_numpy(tp).float(), torch.from_numpy(mp).float()


DEFAULT_SETTINGS = SettingsDistribution()


def random_settings(
    n_tracks: int,
    generator: np.random.Generator | int | None = None,
    pairs: Sequence[tuple[int, int]] = (),
    track_lufs: float = TRACK_LUFS,
    distribution: SettingsDistribution = DEFAULT_SETTINGS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random plausible console settings in real units: ``(track_params (T, 26),
    master_params (25,))``. See :class:`SettingsDistribution` for the distribution."""
    return distribution.sample(n_tracks, generator, pairs, track_lufs)


def _range(specs, name: str) -> tuple[float, float]:
    p = next(s for s in specs if s.name == name)
    return p.min, p.max


def _loguniform(rng: np.random.Generator, lo: float, hi: float, size=None):
    return np.exp(rng.uniform(math.log(lo), math.log(hi), size))


def _clip(values: np.ndarray, specs) -> np.ndarray:
    return np.clip(values, table(specs, "min").numpy(), table(specs, "max").numpy())


def _sample_eq(out: np.ndarray, index: dict[str, int], rng: np.random.Generator, gain_sd: float,
               dist: SettingsDistribution) -> None:
    """Fill the six EQ bands of ``out (..., params)`` (last axis in table order)."""
    lead = out.shape[:-1]
    for key, kind, fmin, fmax, _ in EQ_BANDS:
        out[..., index[f"eq.{key}.gain_db"]] = rng.normal(0.0, gain_sd, lead)
        out[..., index[f"eq.{key}.freq_hz"]] = _loguniform(rng, fmin, fmax, lead)
        q = dist.eq_peak_q if kind == "peaking" else dist.eq_shelf_q
        out[..., index[f"eq.{key}.q"]] = _loguniform(rng, *q, lead)


def _sample_strips(dist: SettingsDistribution, n: int, rng: np.random.Generator, track_lufs: float) -> np.ndarray:
    tp = defaults(TRACK_PARAMS, n).double().numpy()
    i = TRACK_INDEX
    tp[:, i["gain_db"]] = dist.gain_offset_db + rng.normal(0.0, dist.gain_sd_db, n)
    _sample_eq(tp, i, rng, dist.eq_gain_sd_db, dist)
    on = rng.random(n) < dist.comp_prob
    tp[:, i["compressor.ratio"]] = np.where(on, _loguniform(rng, *dist.comp_ratio, n), 1.0)
    tp[:, i["compressor.threshold_db"]] = (track_lufs + tp[:, i["gain_db"]]
                                           + rng.uniform(*dist.comp_threshold_rel_db, n))
    tp[:, i["compressor.attack_ms"]] = _loguniform(rng, *dist.comp_attack_ms, n)
    tp[:, i["compressor.release_ms"]] = _loguniform(rng, *dist.comp_release_ms, n)
    tp[:, i["compressor.knee_db"]] = rng.uniform(*_range(TRACK_PARAMS, "compressor.knee_db"), n)
    tp[:, i["compressor.makeup_db"]] = np.where(on, rng.uniform(*dist.comp_makeup_db, n), 0.0)
    return tp


# ----------------------------------------------------------------------------- helpers


def choose_stems(stems: Sequence[Stem], n_tracks: int, rng: np.random.Generator,
                 at_least: int = 0, at_most: int | None = None) -> list[Stem]:
    """Random stems adding up to at most ``n_tracks`` mono tracks (a stereo stem counts
    two and is never split), as many as fit; returned in song order.

    If that leaves fewer than ``at_least`` tracks (only stereo stems were left to fill an
    odd gap), more stems are added while the count stays within ``at_most``.
    """
    order = [int(k) for k in rng.permutation(len(stems))]
    chosen, count = [], 0
    for limit in (n_tracks, n_tracks if at_most is None else at_most):
        for k in order:
            c = stems[k].channels
            if k not in chosen and count + c <= limit and (limit == n_tracks or count < at_least):
                chosen.append(k)
                count += c
        if count >= at_least:
            break
    return [stems[k] for k in sorted(chosen)]


def stereo_pairs(track_names: Sequence[str]) -> list[tuple[int, int]]:
    """Index pairs of consecutive ``name.L``/``name.R`` tracks."""
    return [(k, k + 1) for k in range(len(track_names) - 1)
            if track_names[k].endswith(".L") and track_names[k + 1] == track_names[k][:-2] + ".R"]


def _activity(audio: np.ndarray, parts: int, silence_db: float) -> np.ndarray:
    """Fraction of tracks whose RMS exceeds ``silence_db`` dBFS in each of ``parts`` equal
    parts of ``audio (tracks, samples)`` -> ``(parts,)``."""
    n = audio.shape[-1] // parts
    seg = audio[:, : n * parts].reshape(audio.shape[0], parts, n)
    rms_db = 10 * np.log10(np.mean(seg.astype(np.float64) ** 2, axis=-1) + 1e-20)
    return (rms_db > silence_db).mean(axis=0)


def _pad(x: np.ndarray, n: int) -> np.ndarray:
    return np.pad(x, ((0, n - x.shape[0]),) + ((0, 0),) * (x.ndim - 1))


@torch.no_grad()
def render_mix(tracks: np.ndarray, track_params: torch.Tensor, master_params: torch.Tensor,
               sample_rate: int) -> np.ndarray:
    """Console mix of ``tracks (batch, tracks, samples)`` with one setting for the whole
    batch (exact IIR path, from rest) -> ``(batch, 2, samples)``."""
    b = tracks.shape[0]
    x = torch.from_numpy(np.ascontiguousarray(tracks, dtype=np.float32)).unsqueeze(2)
    mix, _ = console(x, track_params.expand(b, -1, -1), master_params.expand(b, -1), sample_rate, eq_method="iir")
    return mix.numpy()


def soft_clip(x: np.ndarray, ceiling_db: float = -1.0, knee: float = 0.5) -> np.ndarray:
    """Limiter-like soft clipper: linear below ``knee * ceiling``, tanh-shaped above,
    never exceeding ``ceiling``."""
    c = 10 ** (ceiling_db / 20)
    k = knee * c
    a = np.abs(x)
    over = k + (c - k) * np.tanh((a - k) / (c - k))
    return np.where(a > k, np.sign(x) * over, x).astype(np.float32)


def _subset(source: MultitrackSource, songs: Sequence[str] | None) -> list[str]:
    """``source``'s songs, or those of ``songs`` (e.g. a training split; unknown names are an error)."""
    if songs is None:
        return source.songs()
    unknown = sorted(set(songs) - set(source.songs()))
    if unknown:
        raise DiffmstError(f"{source.root}: no song(s) named {', '.join(unknown[:5])}")
    return [s for s in source.songs() if s in set(songs)]


class _Base(Dataset):
    """Shared plumbing: per-index random generator, segment search, item count."""

    def __init__(self, source: MultitrackSource, *, sample_rate: int, items_per_epoch: int, seed: int,
                 silence_db: float, min_active: float, max_tries: int, dc: bool):
        if not isinstance(source, MultitrackSource):
            raise TypeError(f"source must be a MultitrackSource, got {type(source).__name__}")
        self.source = source
        self.sample_rate = int(sample_rate)
        self.items_per_epoch = int(items_per_epoch)
        self.seed = int(seed)
        self.silence_db = silence_db
        self.min_active = min_active
        self.max_tries = max(1, int(max_tries))
        self.dc = dc

    def __len__(self) -> int:
        return self.items_per_epoch

    def rng(self, index: int) -> np.random.Generator:
        """The generator of item ``index`` (a pure function of ``seed`` and ``index``)."""
        return np.random.default_rng([self.seed, int(index)])

    def _segment(self, song: str, stems: list[Stem], seconds: float, parts: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, list[str], float]:
        """Read ``seconds`` of ``stems`` from a random start, retrying starts until at
        least ``min_active`` of the tracks sound in every one of ``parts`` (or keeping
        the liveliest of ``max_tries``). Returns ``(audio (tracks, n), names, start_s)``."""
        span = max(self.source.duration(song) - seconds, 0.0)
        best = None
        for _ in range(self.max_tries):
            start = float(rng.uniform(0.0, span)) if span > 0 else 0.0
            seg = self.source.read(song, stems, start, seconds, self.sample_rate)
            score = float(_activity(seg.audio, parts, self.silence_db).min()) if seg.audio.shape[0] else 0.0
            if best is None or score > best[0]:
                best = (score, seg)
            if score >= self.min_active:
                break
        seg = best[1]
        audio = dc_block(seg.audio, self.sample_rate) if self.dc else seg.audio
        return audio, seg.track_names, seg.start_s


# ----------------------------------------------------------------------------- Method 1


class Method1Dataset(_Base):
    """Method 1 examples (see the module docstring).

    Args:
        source: a multitrack corpus.
        max_tracks: ``N`` (8 or 16 in the paper); songs with fewer tracks are padded.
        segment_s: the segment before splitting (10 s); each half is ``segment_s / 2``.
        sample_rate: rate of everything returned (e.g. 44100, or an analysis rate 24000).
        items_per_epoch: ``len()``; use :class:`EpochSampler` for new items each epoch.
        seed: base seed; item ``i`` depends only on ``(seed, i)``.
        settings: the :class:`SettingsDistribution` of the random mixes.
        silence_db, min_active, max_tries: a segment is accepted when at least
            ``min_active`` of the chosen tracks exceed ``silence_db`` dBFS RMS in each
            half; up to ``max_tries`` starts are tried.
        dc_block: high-pass the tracks at 20 Hz before normalising.
        return_tracks_a: also return ``tracks_a`` (``T_A``).
        songs: draw only from these songs of ``source`` (a training or validation split).

    Items are dicts:

    ``tracks``         ``(N, 1, S)`` float32 ``T_B``, -48 LUFS per track (over the whole
                       segment), zeros in padding slots; ``S = round(segment_s * sr) // 2``
    ``mask``           ``(N,)`` bool, True for real tracks
    ``reference``      ``(2, S)`` ``M_rA``, normalised to -16 LUFS
    ``target``         ``(2, S)`` ``M_rB``, normalised to -16 LUFS
    ``track_params``   ``(N, 26)`` real units (padding rows hold the defaults)
    ``master_params``  ``(25,)`` real units
    ``reference_gain_db``, ``target_gain_db``  gain that normalised each console output
    ``song``, ``track_names`` (length N, ``""`` for padding), ``start_s``, ``sample_rate``
    """

    def __init__(
        self,
        source: MultitrackSource,
        max_tracks: int = 8,
        segment_s: float = 10.0,
        sample_rate: int = 44100,
        items_per_epoch: int = 1000,
        seed: int = 0,
        settings: SettingsDistribution = DEFAULT_SETTINGS,
        track_lufs: float = TRACK_LUFS,
        reference_lufs: float = REFERENCE_LUFS,
        silence_db: float = -60.0,
        min_active: float = 0.5,
        max_tries: int = 8,
        dc_block: bool = True,
        return_tracks_a: bool = False,
        songs: Sequence[str] | None = None,
    ):
        super().__init__(source, sample_rate=sample_rate, items_per_epoch=items_per_epoch, seed=seed,
                         silence_db=silence_db, min_active=min_active, max_tries=max_tries, dc=dc_block)
        if max_tracks < 1:
            raise DiffmstError(f"max_tracks must be at least 1, got {max_tracks}")
        self.max_tracks = int(max_tracks)
        self.segment_s = float(segment_s)
        self.settings = settings
        self.track_lufs = track_lufs
        self.reference_lufs = reference_lufs
        self.return_tracks_a = return_tracks_a
        self.songs = [s for s in _subset(source, songs) if min(st.channels for st in source.stems(s)) <= max_tracks]
        if not self.songs:
            raise DiffmstError(f"{source.root}: no song has a stem that fits in {max_tracks} track(s)")

    def __getitem__(self, index: int) -> dict[str, Any]:
        rng = self.rng(index)
        song = self.songs[rng.integers(len(self.songs))]
        stems = choose_stems(self.source.stems(song), self.max_tracks, rng)
        audio, names, start = self._segment(song, stems, self.segment_s, 2, rng)
        audio, _ = normalize_batch_np(audio[:, None, :], self.sample_rate, self.track_lufs)
        audio = audio[:, 0]
        half = audio.shape[-1] // 2
        halves = np.stack([audio[:, :half], audio[:, half : 2 * half]])  # (2, T, S): T_A, T_B
        tp, mp = self.settings.sample(len(names), rng, stereo_pairs(names), self.track_lufs)
        mixes = render_mix(halves, tp, mp, self.sample_rate)  # M_rA, M_rB from rest
        mixes, gains = normalize_batch_np(mixes, self.sample_rate, self.reference_lufs)
        n, t = self.max_tracks, len(names)
        item = {
            "tracks": torch.from_numpy(_pad(halves[1], n)).unsqueeze(1),
            "mask": torch.arange(n) < t,
            "reference": torch.from_numpy(mixes[0]),
            "target": torch.from_numpy(mixes[1]),
            "track_params": torch.cat([tp, defaults(TRACK_PARAMS, n - t)]),
            "master_params": mp,
            "reference_gain_db": torch.tensor(gains[0], dtype=torch.float32),
            "target_gain_db": torch.tensor(gains[1], dtype=torch.float32),
            "song": song,
            "track_names": names + [""] * (n - t),
            "start_s": start,
            "sample_rate": self.sample_rate,
        }
        if self.return_tracks_a:
            item["tracks_a"] = torch.from_numpy(_pad(halves[0], n)).unsqueeze(1)
        return item


# ----------------------------------------------------------------------------- Method 2


class GeneratedReferences:
    """Finished-sounding references made from a multitrack corpus, for Method 2 when no
    real mixes are at hand: a segment of up to ``max_tracks`` tracks of a song, each at
    -48 LUFS, mixed with random settings (:meth:`SettingsDistribution.mastering`: the
    usual track settings, firmer bus compression), then a mastering stage: loudness
    pushed to ``master_lufs`` (drawn uniformly) and a soft clipper at -1 dBFS.

    Same reading interface as :class:`ReferenceSource`, plus an optional ``generator``
    for the settings (default: seeded by song and start, so reads repeat). ``songs``
    restricts the songs mixed (a split).
    """

    def __init__(self, source: MultitrackSource, max_tracks: int = 32,
                 settings: SettingsDistribution | None = None,
                 master_lufs: tuple[float, float] = (-14.0, -9.0), dc_block: bool = True,
                 songs: Sequence[str] | None = None):
        self.source = source
        self._songs = _subset(source, songs)
        self.root = source.root
        self.max_tracks = max_tracks
        self.settings = settings or SettingsDistribution.mastering()
        self.master_lufs = master_lufs
        self.dc = dc_block

    def __len__(self) -> int:
        return len(self._songs)

    def songs(self) -> list[str]:
        return list(self._songs)

    def song_name(self, song: str) -> str:
        return song

    def duration(self, song: str) -> float:
        return self.source.duration(song)

    def read(self, song: str, start_s: float = 0.0, duration_s: float | None = None,
             sample_rate: int | None = None, generator: np.random.Generator | None = None) -> np.ndarray:
        """Stereo float32 ``(2, samples)`` mastered mix of a segment of ``song``."""
        rng = generator or np.random.default_rng([zlib.crc32(song.encode()), int(round(start_s * 1000))])
        stems = choose_stems(self.source.stems(song), self.max_tracks, rng)
        sr = int(sample_rate or self.source.song(song).sample_rate)
        if duration_s is None:
            duration_s = max(self.source.duration(song) - start_s, 0.0)
        seg = self.source.read(song, stems, start_s, duration_s, sr)
        audio = dc_block(seg.audio, sr) if self.dc else seg.audio
        audio, _ = normalize_batch_np(audio[:, None, :], sr, TRACK_LUFS)
        tp, mp = self.settings.sample(len(seg.track_names), rng, stereo_pairs(seg.track_names))
        mix = render_mix(audio[None, :, 0], tp, mp, sr)[0]
        mix, _ = normalize_batch_np(mix, sr, float(rng.uniform(*self.master_lufs)))
        return soft_clip(mix)


class Method2Dataset(_Base):
    """Method 2 examples: tracks of song A and a mix of a different song B.

    Args:
        source: the multitrack corpus (songs A).
        references: a :class:`ReferenceSource` of finished songs, or None to mix
            references from ``source`` itself (:class:`GeneratedReferences`).
        min_tracks, max_tracks: the track count is drawn uniformly in this range (stereo
            stems are never split, so a draw may land one short); items are padded to
            ``max_tracks``. Songs with fewer than ``min_tracks`` tracks are not used.
        segment_s: length of the tracks' segment; ``reference_s`` of the reference's
            (default: the same).
        songs: draw songs A only from these songs of ``source`` (a split).

    Items are dicts: ``tracks (N, 1, S)`` (-48 LUFS each), ``mask (N,)``, ``reference
    (2, R)`` (-16 LUFS), ``song``, ``reference_song``, ``track_names``, ``start_s``,
    ``reference_start_s``, ``sample_rate``.
    """

    def __init__(
        self,
        source: MultitrackSource,
        references: ReferenceSource | GeneratedReferences | None = None,
        min_tracks: int = 4,
        max_tracks: int = 16,
        segment_s: float = 5.0,
        reference_s: float | None = None,
        sample_rate: int = 44100,
        items_per_epoch: int = 1000,
        seed: int = 0,
        track_lufs: float = TRACK_LUFS,
        reference_lufs: float = REFERENCE_LUFS,
        silence_db: float = -60.0,
        min_active: float = 0.5,
        reference_silence_lufs: float = -50.0,
        max_tries: int = 8,
        dc_block: bool = True,
        songs: Sequence[str] | None = None,
    ):
        super().__init__(source, sample_rate=sample_rate, items_per_epoch=items_per_epoch, seed=seed,
                         silence_db=silence_db, min_active=min_active, max_tries=max_tries, dc=dc_block)
        if not 1 <= min_tracks <= max_tracks:
            raise DiffmstError(f"need 1 <= min_tracks <= max_tracks, got {min_tracks} and {max_tracks}")
        self.min_tracks, self.max_tracks = int(min_tracks), int(max_tracks)
        self.segment_s = float(segment_s)
        self.reference_s = float(reference_s or segment_s)
        self.references = references if references is not None else GeneratedReferences(source)
        self.track_lufs, self.reference_lufs = track_lufs, reference_lufs
        self.reference_silence_lufs = reference_silence_lufs
        self.songs = [s for s in _subset(source, songs) if len(source.tracks(s)) >= min_tracks]
        if not self.songs:
            raise DiffmstError(f"{source.root}: no song has at least {min_tracks} tracks")
        self.reference_songs = self.references.songs()
        ref_names = {self.references.song_name(r) for r in self.reference_songs}
        self.songs = [a for a in self.songs if ref_names - {a}]
        if not self.songs:
            raise DiffmstError(f"{self.references.root}: Method 2 needs a reference from a different song "
                               f"than the tracks, but the only song is {next(iter(ref_names))!r}")

    def _reference(self, song_a: str, rng: np.random.Generator) -> tuple[np.ndarray, str, float]:
        refs = self.references
        names = [r for r in self.reference_songs if refs.song_name(r) != song_a]
        if not names:
            raise DiffmstError(f"{refs.root}: no reference song other than {song_a!r}")
        ref = names[rng.integers(len(names))]
        span = max(refs.duration(ref) - self.reference_s, 0.0)
        best = None
        for _ in range(self.max_tries):
            start = float(rng.uniform(0.0, span)) if span > 0 else 0.0
            if isinstance(refs, GeneratedReferences):
                x = refs.read(ref, start, self.reference_s, self.sample_rate, generator=rng)
            else:
                x = refs.read(ref, start, self.reference_s, self.sample_rate)
                if self.dc:
                    x = dc_block(x, self.sample_rate)
            lufs = float(loudness_batch_np(x, self.sample_rate))
            if best is None or lufs > best[0]:
                best = (lufs, x, start)
            if lufs > self.reference_silence_lufs:
                break
        _, x, start = best
        x, _ = normalize_batch_np(x, self.sample_rate, self.reference_lufs)
        return x, ref, start

    def __getitem__(self, index: int) -> dict[str, Any]:
        rng = self.rng(index)
        song = self.songs[rng.integers(len(self.songs))]
        n_target = int(rng.integers(self.min_tracks, self.max_tracks + 1))
        stems = choose_stems(self.source.stems(song), n_target, rng, self.min_tracks, self.max_tracks)
        audio, names, start = self._segment(song, stems, self.segment_s, 1, rng)
        audio, _ = normalize_batch_np(audio[:, None, :], self.sample_rate, self.track_lufs)
        ref, ref_song, ref_start = self._reference(song, rng)
        n, t = self.max_tracks, len(names)
        return {
            "tracks": torch.from_numpy(_pad(audio[:, 0], n)).unsqueeze(1),
            "mask": torch.arange(n) < t,
            "reference": torch.from_numpy(ref),
            "song": song,
            "reference_song": ref_song,
            "track_names": names + [""] * (n - t),
            "start_s": start,
            "reference_start_s": ref_start,
            "sample_rate": self.sample_rate,
        }


# ----------------------------------------------------------------------------- loading


class EpochSampler(Sampler[int]):
    """Indices ``epoch * n + k`` for ``k`` in ``rank, rank + world_size, ... < n``.

    With the datasets here (items a pure function of their index) this gives new items
    every epoch, the same items when an epoch is repeated, and disjoint items per rank.
    Call :meth:`set_epoch` at the start of each epoch (Lightning does).
    """

    def __init__(self, n: int, rank: int = 0, world_size: int = 1, epoch: int = 0):
        self.n, self.rank, self.world_size, self.epoch = int(n), int(rank), int(world_size), int(epoch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        base = self.epoch * self.n
        return iter(range(base + self.rank, base + self.n, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world_size))


def worker_init(_worker_id: int) -> None:
    """Data-loader worker set-up: one compute thread (torch and numba) per worker, so
    workers and the training process do not oversubscribe the cores. Randomness needs
    no seeding here: items are functions of their index."""
    torch.set_num_threads(1)
    try:
        import numba

        numba.set_num_threads(1)
    except Exception:  # pragma: no cover - numba without a threading layer
        pass


def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch items: tensors stacked, everything else (names, songs, times) as lists."""
    out: dict[str, Any] = {}
    for key in items[0]:
        values = [it[key] for it in items]
        out[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
    return out


def make_loader(dataset: Dataset, batch_size: int = 4, num_workers: int = 2, epoch: int = 0,
                rank: int = 0, world_size: int = 1, **kwargs) -> torch.utils.data.DataLoader:
    """A DataLoader over ``dataset`` with an :class:`EpochSampler`, :func:`collate` and
    :func:`worker_init`; call ``loader.sampler.set_epoch(e)`` for epoch ``e``.

    Workers are started with ``spawn`` (persistent by default): the console's compiled
    kernels run on numba's OpenMP threads, and forking a process that has used GNU
    OpenMP kills the child ("fork() called from a process already using GNU OpenMP").
    Scripts that use workers need the usual ``if __name__ == "__main__":`` guard.
    """
    if num_workers > 0:
        kwargs.setdefault("persistent_workers", True)
        kwargs.setdefault("prefetch_factor", 2)
        kwargs.setdefault("multiprocessing_context", "spawn")
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, sampler=EpochSampler(len(dataset), rank, world_size, epoch),
        num_workers=num_workers, collate_fn=collate, worker_init_fn=worker_init, **kwargs)
