"""diffmst: mix a song's raw tracks in the style of a reference song (Diff-MST)."""

__version__ = "0.1.0"

# Before torch/numba load: OpenMP threads wait passively (they spin by default, which on a
# busy machine made `diffmst optimize` 10-15x slower; see threads.py). User settings win.
from . import threads as _threads

_threads.configure()

from .pipeline.api import mix, optimize, predict  # noqa: E402  (light: torch loads on first call)
from .pipeline.baseline import equal_loudness_mix  # noqa: E402

__all__ = ["__version__", "equal_loudness_mix", "mix", "optimize", "predict"]
