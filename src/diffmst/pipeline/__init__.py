"""One path for every job on a song (no printing, no argument parsing).

So far: :mod:`.finish` (loudness target and true-peak limit of a rendered mix)."""
