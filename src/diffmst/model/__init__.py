"""The Diff-MST network (torch only; training lives apart and is the only user of Lightning)."""

from .config import COMPACT, PAPER, PRESETS, ModelConfig
from .network import DiffMST, SpectrogramEncoder

__all__ = ["COMPACT", "PAPER", "PRESETS", "DiffMST", "ModelConfig", "SpectrogramEncoder"]
