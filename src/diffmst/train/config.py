"""A training stage in one table: data, loss, optimiser and budget, read from YAML.

The shipped stages are files in ``diffmst/train/configs/`` (``diffmst train --config
compact-method1`` names one; any other path to a YAML file works too). Keys not in
:class:`TrainConfig` are an error, so a typo never trains with a silent default."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DiffmstError
from ..model.config import PRESETS, ModelConfig

CONFIG_DIR = Path(__file__).parent / "configs"
METHODS = ("method1", "method2")
LOSSES = ("params", "mrstft", "af")


@dataclass(frozen=True)
class TrainConfig:
    """One training stage.

    Data: ``method`` 1 (tracks ``T_B``, reference ``M_rA``, true mix ``M_rB`` and true
    settings) or 2 (tracks of one song, a finished mix of another); ``corpus`` is a
    generated multitrack corpus (``diffmst data generate``), whose last ``val_songs`` songs
    (by name) are held back for validation and never trained on. Method 2 draws its
    references from the Method 2 mixes of the training songs (:class:`~diffmst.data.
    samplers.GeneratedReferences`) and, with probability ``real_reference_prob``, from the
    finished songs in ``references`` (folders; files whose name stem is in
    ``exclude_references`` are skipped: the benchmark's songs).

    The network hears ``seconds`` of tracks and of reference per example (Method 1 cuts
    a segment of twice that into ``T_A`` and ``T_B``).

    Loss: ``loss`` maps ``params`` (L1 between predicted and true normalised settings,
    Method 1 only), ``mrstft`` (to the true mix, Method 1 only) and ``af`` (the paper's AF
    measure to the target, or the reference in Method 2) to weights. The predicted mix is
    brought to -16 LUFS before the audio losses, as in the paper.

    Budget: ``max_steps`` optimiser steps; an epoch is ``items_per_epoch`` items (a
    checkpoint at the end of each: keep epochs a few minutes long); ``init_from`` is a
    checkpoint or weights file of an earlier stage to start from.
    """

    name: str
    method: str = "method1"
    model: str = "compact"
    corpus: str = "data/corpus22"
    val_songs: int = 20
    val_items: int = 24
    references: tuple[str, ...] = ()
    exclude_references: tuple[str, ...] = ()
    real_reference_prob: float = 0.0
    min_tracks: int = 4
    max_tracks: int = 8
    seconds: float = 5.0
    loss: dict = field(default_factory=lambda: {"params": 1.0})
    lr: float = 3e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    grad_clip: float = 1.0
    batch_size: int = 4
    max_steps: int = 2000
    items_per_epoch: int = 400
    num_workers: int = 1
    init_from: str | None = None
    seed: int = 0

    @property
    def model_config(self) -> ModelConfig:
        return PRESETS[self.model]

    @property
    def sample_rate(self) -> int:
        """Everything in training runs at the model's rate (settings are in physical units)."""
        return self.model_config.sample_rate

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["references"], d["exclude_references"] = list(self.references), list(self.exclude_references)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise DiffmstError(f"unknown training config key(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        if "name" not in d:
            raise DiffmstError("a training config needs a name")
        d = dict(d)
        for k in ("references", "exclude_references"):
            if k in d:
                d[k] = tuple(d[k] or ())
        cfg = cls(**d)
        cfg.check()
        return cfg

    def check(self) -> None:
        if self.method not in METHODS:
            raise DiffmstError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.model not in PRESETS:
            raise DiffmstError(f"model must be one of {', '.join(PRESETS)}, got {self.model!r}")
        bad = sorted(set(self.loss) - set(LOSSES))
        if bad or not self.loss or any(float(w) < 0 for w in self.loss.values()):
            raise DiffmstError(f"loss must map some of {', '.join(LOSSES)} to weights >= 0, got {self.loss}")
        if self.method == "method2" and set(self.loss) - {"af"}:
            raise DiffmstError("Method 2 has no true mix or settings: its loss can only be af")
        if not 1 <= self.min_tracks <= self.max_tracks:
            raise DiffmstError(f"need 1 <= min_tracks <= max_tracks, got {self.min_tracks}, {self.max_tracks}")
        if not 0.0 <= self.real_reference_prob <= 1.0:
            raise DiffmstError(f"real_reference_prob must be in [0, 1], got {self.real_reference_prob}")
        if self.real_reference_prob > 0 and not self.references:
            raise DiffmstError("real_reference_prob > 0 needs reference folders (references)")
        for k in ("batch_size", "max_steps", "items_per_epoch", "val_items"):
            if getattr(self, k) < 1:
                raise DiffmstError(f"{k} must be at least 1, got {getattr(self, k)}")


def load_config(name_or_path: str) -> TrainConfig:
    """A shipped stage by name (``compact-method1``) or a YAML file by path."""
    import yaml

    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = CONFIG_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        shipped = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
        raise DiffmstError(f"{name_or_path}: no such training config (shipped: {shipped})")
    try:
        d = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise DiffmstError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(d, dict):
        raise DiffmstError(f"{path}: a training config is a mapping of keys to values")
    return TrainConfig.from_dict(d)
