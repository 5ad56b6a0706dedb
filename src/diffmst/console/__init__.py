"""Differentiable mixing console (no network code here)."""

from .console import Console, console, render
from .params import (
    MASTER_PARAMS,
    TRACK_PARAMS,
    ParamSpec,
    Settings,
    SettingsError,
    denormalize,
    normalize,
)

__all__ = [
    "Console", "console", "render", "MASTER_PARAMS", "TRACK_PARAMS", "ParamSpec",
    "Settings", "SettingsError", "denormalize", "normalize",
]
