"""Evaluation: the paper's AF distance on whole songs (:mod:`.metrics`)."""

from .metrics import paper_af, paper_features, song_features

__all__ = ["paper_af", "paper_features", "song_features"]
