"""diffmst: mix a song's raw tracks in the style of a reference song (Diff-MST)."""

__version__ = "0.1.0"
