"""Names shared by the corpus generator, its command line and readers (no heavy imports).

Layout of a generated corpus::

    DIR/<song>/<stem>.flac     one file per stem (mono or stereo, same length within a song)
    DIR/<song>/meta.json       written last: a song folder with meta.json is complete

``meta.json`` holds at least ``song``, ``source`` (one of :data:`SOURCES`), ``tempo_bpm``,
``sample_rate``, ``duration_s``, ``licence`` and ``stems``: a list of
``{"name", "file", "instrument", "family", "channels", ...}`` where ``name`` is the file's stem.
"""

FORMAT = "diffmst-song"
VERSION = 1
SOURCES = ("procedural", "mma", "music21")
RENDERERS = ("auto", "fluidsynth", "numpy")
DEFAULT_OUT = "data/corpus"
META = "meta.json"
