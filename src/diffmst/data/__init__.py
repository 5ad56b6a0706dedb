"""Multitrack data: the generated corpus (sources -> scores -> stems) and loaders.

Generated corpus (``diffmst data generate``): :mod:`.generate` writes
``DIR/<song>/<stem>.flac`` + ``DIR/<song>/meta.json``; music comes from
:mod:`.procedural`, :mod:`.mma` and :mod:`.music21src`, is rendered by :mod:`.fluid`
(fluidsynth) or :mod:`.synth` (numpy), with recording character from :mod:`.character`;
:mod:`.stats` summarises a corpus. Submodules are imported on use (no heavy imports here).
"""
