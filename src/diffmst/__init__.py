"""diffmst: mix a song's raw tracks in the style of a reference song (Diff-MST)."""

__version__ = "0.1.0"

from .optimize import equal_loudness_mix, optimize  # noqa: E402  (light: torch loads on first call)

__all__ = ["__version__", "equal_loudness_mix", "optimize"]
