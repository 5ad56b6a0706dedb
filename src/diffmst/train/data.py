"""The data of a training stage: the corpus split into training and held-back songs, the
Method 1 / Method 2 datasets of :mod:`diffmst.data.samplers`, and real references."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from torch.utils.data import Dataset

from ..data.samplers import GeneratedReferences, Method1Dataset, Method2Dataset
from ..data.sources import GeneratedSource, MultitrackSource, ReferenceSource
from ..errors import DiffmstError
from .config import TrainConfig


def split_songs(source: MultitrackSource, val_songs: int) -> tuple[list[str], list[str]]:
    """``(train, val)``: the last ``val_songs`` songs by name are held back (so adding
    songs to a corpus never moves a validation song into training)."""
    songs = source.songs()
    if len(songs) <= val_songs:
        raise DiffmstError(f"{source.root}: {len(songs)} songs; need more than the {val_songs} held back "
                           "for validation")
    return songs[: len(songs) - val_songs], songs[len(songs) - val_songs:]


class RealReferences:
    """Finished songs from several folders, less the excluded ones: the reading
    interface of :class:`~diffmst.data.sources.ReferenceSource`. Songs are named by their
    path without extension (``/usr/share/planetblupi/music/music004``); an ``exclude``
    entry drops every song whose name ends with it (``planetblupi/music/music004``)."""

    def __init__(self, folders: Sequence[str], exclude: Sequence[str] = ()):
        self.parts: dict[str, tuple[ReferenceSource, str]] = {}
        for folder in folders:
            src = ReferenceSource(folder)
            for song in src.songs():
                name = (Path(folder).resolve() / song).as_posix()
                if not any(name.endswith("/" + e.strip("/")) for e in exclude):
                    self.parts[name] = (src, song)
        if not self.parts:
            raise DiffmstError(f"no reference songs left in {', '.join(folders)} after excluding {list(exclude)}")
        self.root = ", ".join(folders)

    def __len__(self) -> int:
        return len(self.parts)

    def songs(self) -> list[str]:
        return sorted(self.parts)

    def song_name(self, song: str) -> str:
        return song.rsplit("/", 1)[-1]

    def duration(self, song: str) -> float:
        src, name = self.parts[song]
        return src.duration(name)

    def read(self, song: str, start_s: float = 0.0, duration_s: float | None = None,
             sample_rate: int | None = None) -> np.ndarray:
        src, name = self.parts[song]
        return src.read(name, start_s, duration_s, sample_rate)


class Choice(Dataset):
    """Item ``i`` of ``second`` with probability ``p`` (drawn from ``(seed, i)``), else of
    ``first``: a pure function of the index, as the samplers' items are."""

    def __init__(self, first: Dataset, second: Dataset, p: float, seed: int = 0):
        self.first, self.second, self.p, self.seed = first, second, float(p), int(seed)

    def __len__(self) -> int:
        return len(self.first)

    def __getitem__(self, index: int) -> dict[str, Any]:
        pick = np.random.default_rng([self.seed, 7919, int(index)]).random() < self.p
        return (self.second if pick else self.first)[index]


def datasets(cfg: TrainConfig) -> tuple[Dataset, Dataset]:
    """``(train, val)`` datasets of a stage. Validation is always Method 1 on the held-back
    songs (its true mix and settings are known), with a seed of its own."""
    source = GeneratedSource(cfg.corpus)
    train_songs, val_songs = split_songs(source, cfg.val_songs)
    sr = cfg.sample_rate
    val = Method1Dataset(source, max_tracks=cfg.max_tracks, segment_s=2 * cfg.seconds, sample_rate=sr,
                         items_per_epoch=cfg.val_items, seed=cfg.seed + 10_000, songs=val_songs)
    if cfg.method == "method1":
        train: Dataset = Method1Dataset(source, max_tracks=cfg.max_tracks, segment_s=2 * cfg.seconds, sample_rate=sr,
                                        items_per_epoch=cfg.items_per_epoch, seed=cfg.seed, songs=train_songs)
        return train, val
    common = dict(min_tracks=cfg.min_tracks, max_tracks=cfg.max_tracks, segment_s=cfg.seconds,
                  sample_rate=sr, items_per_epoch=cfg.items_per_epoch, seed=cfg.seed, songs=train_songs)
    generated = Method2Dataset(source, GeneratedReferences(source, songs=train_songs), **common)
    if cfg.real_reference_prob <= 0:
        return generated, val
    real = Method2Dataset(source, RealReferences(cfg.references, cfg.exclude_references), **common)
    return Choice(generated, real, cfg.real_reference_prob, cfg.seed), val
