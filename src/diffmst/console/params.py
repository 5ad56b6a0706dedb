"""The one table of console parameters, and settings files.

Every parameter of the console is a :class:`ParamSpec` (name, unit, range, default,
scale). A channel strip's parameters form the ordered table :data:`TRACK_PARAMS`, the
master bus's :data:`MASTER_PARAMS`. Tensors of parameters in real units have the
parameters on their last axis in table order: ``(batch, tracks, len(TRACK_PARAMS))`` for
strips and ``(batch, len(MASTER_PARAMS))`` for the master bus.

Names are dotted (``eq.band0.freq_hz``); a settings file nests them as JSON objects::

    {"format": "diffmst-settings", "version": 1,
     "tracks": {"kick": {"gain_db": -3.0, "eq": {"low_shelf": {...}, ...},
                         "compressor": {...}, "pan": 0.5}, ...},
     "master": {"eq": {...}, "compressor": {...}, "gain_db": 0.0}}

Nothing else in the project hard-codes a range: ask this table.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch

from ..errors import DiffmstError
from ..fileio import atomic_write_text


class SettingsError(DiffmstError, ValueError):
    """A settings file or dictionary is invalid; the message names the parameter."""


@dataclass(frozen=True)
class ParamSpec:
    """One console parameter.

    ``scale="log"`` maps normalised values geometrically (frequencies, times, Q, ratio),
    so that a network's sigmoid output spends its range evenly per octave.
    """

    name: str
    unit: str
    min: float
    max: float
    default: float
    scale: str = "lin"  # "lin" or "log"
    doc: str = ""

    def normalize(self, value: float) -> float:
        """Real units -> [0, 1]."""
        if self.scale == "log":
            return (math.log(value) - math.log(self.min)) / (math.log(self.max) - math.log(self.min))
        return (value - self.min) / (self.max - self.min)

    def denormalize(self, u: float) -> float:
        """[0, 1] -> real units."""
        if self.scale == "log":
            return math.exp(math.log(self.min) + u * (math.log(self.max) - math.log(self.min)))
        return self.min + u * (self.max - self.min)


# EQ bands: (key, kind, freq range Hz, default freq Hz). Ranges from the paper's code.
EQ_BANDS: tuple[tuple[str, str, float, float, float], ...] = (
    ("low_shelf", "low_shelf", 20.0, 2000.0, 100.0),
    ("band0", "peaking", 80.0, 2000.0, 400.0),
    ("band1", "peaking", 2000.0, 8000.0, 3000.0),
    ("band2", "peaking", 8000.0, 12000.0, 10000.0),
    ("band3", "peaking", 12000.0, 21000.0, 14000.0),
    ("high_shelf", "high_shelf", 6000.0, 21000.0, 10000.0),
)


def _eq_specs(prefix: str = "eq") -> list[ParamSpec]:
    specs = []
    for key, kind, fmin, fmax, fdef in EQ_BANDS:
        specs += [
            ParamSpec(f"{prefix}.{key}.gain_db", "dB", -12.0, 12.0, 0.0, doc=f"{kind} gain"),
            ParamSpec(f"{prefix}.{key}.freq_hz", "Hz", fmin, fmax, fdef, "log", f"{kind} frequency"),
            ParamSpec(f"{prefix}.{key}.q", "", 0.1, 5.0, 0.707, "log", f"{kind} quality factor"),
        ]
    return specs


def _compressor_specs(prefix: str = "compressor") -> list[ParamSpec]:
    return [
        ParamSpec(f"{prefix}.threshold_db", "dB", -60.0, 0.0, 0.0, doc="level above which gain is reduced"),
        ParamSpec(f"{prefix}.ratio", ":1", 1.0, 10.0, 1.0, "log", "input dB per output dB above threshold"),
        ParamSpec(f"{prefix}.attack_ms", "ms", 5.0, 250.0, 10.0, "log", "10-90% time as gain reduction rises"),
        ParamSpec(f"{prefix}.release_ms", "ms", 10.0, 250.0, 100.0, "log", "10-90% time as gain reduction falls"),
        ParamSpec(f"{prefix}.knee_db", "dB", 3.0, 12.0, 6.0, doc="soft-knee width"),
        ParamSpec(f"{prefix}.makeup_db", "dB", 0.0, 6.0, 0.0, doc="gain after compression"),
    ]


TRACK_PARAMS: tuple[ParamSpec, ...] = tuple(
    [ParamSpec("gain_db", "dB", -48.0, 24.0, 0.0, doc="input gain")]
    + _eq_specs()
    + _compressor_specs()
    + [ParamSpec("pan", "", 0.0, 1.0, 0.5, doc="0 = left, 0.5 = centre, 1 = right (-4.5 dB law)")]
)

MASTER_PARAMS: tuple[ParamSpec, ...] = tuple(
    _eq_specs() + _compressor_specs()
    + [ParamSpec("gain_db", "dB", -24.0, 24.0, 0.0, doc="output gain"),
       ParamSpec("limiter.ceiling_db", "dBTP", -20.0, 0.0, 0.0, doc="true-peak limiter: highest output peak"),
       ParamSpec("limiter.release_ms", "ms", 10.0, 1000.0, 100.0, "log", "true-peak limiter: release time")]
)
# settings files of version 1 had no limiter: read with these values (the defaults)
V1_MISSING = ("limiter.ceiling_db", "limiter.release_ms")
SETTINGS_VERSION = 2

TRACK_INDEX: dict[str, int] = {p.name: i for i, p in enumerate(TRACK_PARAMS)}
MASTER_INDEX: dict[str, int] = {p.name: i for i, p in enumerate(MASTER_PARAMS)}


def table(specs: Sequence[ParamSpec], field: str) -> torch.Tensor:
    """A float64 tensor of one field (``min``, ``max``, ``default``) over a spec table."""
    return torch.tensor([getattr(p, field) for p in specs], dtype=torch.float64)


def _log_mask(specs: Sequence[ParamSpec]) -> torch.Tensor:
    return torch.tensor([p.scale == "log" for p in specs])


def _log_bounds(lo: torch.Tensor, hi: torch.Tensor, log: torch.Tensor):
    """log(min), log(max) for log-scale parameters; 0, 1 elsewhere. Linear parameters may
    have min <= 0: their log would be nan/-inf, and although ``torch.where`` discards that
    branch's value, its gradient (0 * nan) would still poison the backward pass."""
    log_lo = torch.log(torch.where(log, lo, torch.ones_like(lo)))
    log_hi = torch.log(torch.where(log, hi, torch.full_like(hi, math.e)))
    return log_lo, log_hi


def normalize(values: torch.Tensor, specs: Sequence[ParamSpec]) -> torch.Tensor:
    """Real units -> [0, 1], parameters on the last axis (any leading shape)."""
    lo, hi = table(specs, "min").to(values), table(specs, "max").to(values)
    log = _log_mask(specs).to(values.device)
    lin_u = (values - lo) / (hi - lo)
    log_lo, log_hi = _log_bounds(lo, hi, log)
    log_u = (torch.log(values.clamp_min(1e-12)) - log_lo) / (log_hi - log_lo)
    return torch.where(log, log_u, lin_u)


def denormalize(u: torch.Tensor, specs: Sequence[ParamSpec]) -> torch.Tensor:
    """[0, 1] -> real units, parameters on the last axis (differentiable)."""
    lo, hi = table(specs, "min").to(u), table(specs, "max").to(u)
    log = _log_mask(specs).to(u.device)
    lin = lo + u * (hi - lo)
    log_lo, log_hi = _log_bounds(lo, hi, log)
    logv = torch.exp(log_lo + u * (log_hi - log_lo))
    return torch.where(log, logv, lin)


def defaults(specs: Sequence[ParamSpec], *lead: int, dtype=torch.float32) -> torch.Tensor:
    """Default settings, shape ``(*lead, len(specs))``."""
    return table(specs, "default").to(dtype).expand(*lead, len(specs)).clone()


# ----------------------------------------------------------------------------- settings


def _nest(flat: Mapping[str, float]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in flat.items():
        node = out
        *path, leaf = name.split(".")
        for key in path:
            node = node.setdefault(key, {})
        node[leaf] = value
    return out


def _flatten(nested: Mapping[str, Any], where: str, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, where, name + "."))
        else:
            flat[name] = value
    return flat


def values_from_dict(nested: Mapping[str, Any], specs: Sequence[ParamSpec], where: str) -> list[float]:
    """Validate one strip's (or the master's) nested settings and return them in table order.

    Raises :class:`SettingsError` naming ``where`` and the parameter for unknown names,
    missing values, non-numbers and out-of-range values.
    """
    if not isinstance(nested, Mapping):
        raise SettingsError(f"{where}: expected an object of parameters, got {type(nested).__name__}")
    flat = _flatten(nested, where)
    known = {p.name for p in specs}
    unknown = sorted(set(flat) - known)
    if unknown:
        raise SettingsError(f"{where}: unknown parameter '{unknown[0]}' (known: {', '.join(sorted(known))})")
    out = []
    for p in specs:
        if p.name not in flat:
            raise SettingsError(f"{where}: missing parameter '{p.name}'")
        v = flat[p.name]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise SettingsError(f"{where}: parameter '{p.name}' must be a finite number, got {v!r}")
        if not (p.min <= v <= p.max):
            raise SettingsError(
                f"{where}: parameter '{p.name}' = {v} is out of range [{p.min:g}, {p.max:g}] {p.unit}".rstrip()
            )
        out.append(float(v))
    return out


def values_to_dict(values: Iterable[float], specs: Sequence[ParamSpec]) -> dict[str, Any]:
    """Table-ordered values -> nested dict (rounded for readability, still exact enough)."""
    return _nest({p.name: round(float(v), 6) for p, v in zip(specs, values)})


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json object hook: a repeated key (two tracks of one name) is an error, not the last one wins."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"'{key}' appears twice in one object (track names must be unique)")
        out[key] = value
    return out


@dataclass
class Settings:
    """Console settings for one song: per-track strips by name, plus the master bus.

    ``track_params`` is ``(tracks, len(TRACK_PARAMS))`` and ``master_params``
    ``(len(MASTER_PARAMS),)``, both float32 in real units, rows in ``track_names`` order.
    """

    track_names: list[str]
    track_params: torch.Tensor
    master_params: torch.Tensor

    @classmethod
    def default(cls, track_names: Sequence[str]) -> "Settings":
        """Neutral console (unity gain, flat EQ, no compression); stereo pairs
        ``name.L``/``name.R`` start hard left/right, everything else centred."""
        tp = defaults(TRACK_PARAMS, len(track_names))
        for i, name in enumerate(track_names):
            if name.endswith(".L"):
                tp[i, TRACK_INDEX["pan"]] = 0.0
            elif name.endswith(".R"):
                tp[i, TRACK_INDEX["pan"]] = 1.0
        return cls(list(track_names), tp, defaults(MASTER_PARAMS))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "diffmst-settings",
            "version": SETTINGS_VERSION,
            "tracks": {
                n: values_to_dict(row.tolist(), TRACK_PARAMS)
                for n, row in zip(self.track_names, self.track_params.detach().cpu())
            },
            "master": values_to_dict(self.master_params.detach().cpu().tolist(), MASTER_PARAMS),
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "settings") -> "Settings":
        if not isinstance(data, Mapping):
            raise SettingsError(f"{where}: expected a JSON object at the top level")
        if data.get("format", "diffmst-settings") != "diffmst-settings":
            raise SettingsError(f"{where}: not a diffmst settings file (format={data.get('format')!r})")
        tracks = data.get("tracks")
        if not isinstance(tracks, Mapping) or not tracks:
            raise SettingsError(f"{where}: 'tracks' must be a non-empty object of track name -> parameters")
        if "master" not in data:
            raise SettingsError(f"{where}: missing 'master' settings")
        version = data.get("version", SETTINGS_VERSION)
        if version not in (1, SETTINGS_VERSION) or isinstance(version, bool):
            raise SettingsError(f"{where}: settings version {version!r} is not supported (this diffmst reads "
                                f"versions 1 and {SETTINGS_VERSION})")
        names = list(tracks)
        rows = [values_from_dict(tracks[n], TRACK_PARAMS, f"{where}: track '{n}'") for n in names]
        master_in = data["master"]
        if version == 1 and isinstance(master_in, Mapping) and "limiter" not in master_in:
            # version 1 had no limiter: it reads with the limiter's defaults
            master_in = {**master_in, "limiter": {n.split(".", 1)[1]: MASTER_PARAMS[MASTER_INDEX[n]].default
                                                  for n in V1_MISSING}}
        master = values_from_dict(master_in, MASTER_PARAMS, f"{where}: master")
        return cls(names, torch.tensor(rows, dtype=torch.float32), torch.tensor(master, dtype=torch.float32))

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> None:
        """Write readable JSON atomically (temp file + rename); never clobbers unless asked."""
        path = Path(path)
        if path.exists() and not overwrite:
            raise DiffmstError(f"{path}: already exists (use --overwrite to replace it)")
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Settings":
        from ..audio import check_input_file

        try:
            path = check_input_file(path, "settings file (JSON)")
        except DiffmstError as e:
            raise SettingsError(str(e)) from None
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise SettingsError(f"{path}: cannot read ({e.strerror})") from None
        except UnicodeDecodeError:
            raise SettingsError(f"{path}: not a settings file (binary, not JSON text; an audio file?)") from None
        try:
            data = json.loads(text, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as e:
            raise SettingsError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
        except ValueError as e:  # a repeated key
            raise SettingsError(f"{path}: {e}") from None
        return cls.from_dict(data, where=str(path))

    def for_tracks(self, names: Sequence[str], where: str = "settings") -> torch.Tensor:
        """Strip parameters reordered to ``names``; every track must have settings."""
        index = {n: i for i, n in enumerate(self.track_names)}
        missing = [n for n in names if n not in index]
        if missing:
            raise SettingsError(f"{where}: no settings for track '{missing[0]}' (have: {', '.join(self.track_names)})")
        return self.track_params[[index[n] for n in names]]
