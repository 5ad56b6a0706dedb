"""The song pipeline: one path for every job on a song (no printing, no argument parsing).

- :mod:`.options`: the options and their defaults (the command line's come from here);
- :mod:`.song`: tracks and reference loaded and checked, analysis windows;
- :mod:`.baseline`: the equal-loudness settings and mix;
- :mod:`.refine`: Adam on the console settings from any start, against the paper's AF;
- :mod:`.finish`: the whole song rendered, at the target loudness through the limiter;
- :mod:`.result`: :class:`~.result.MixResult`, its report and ``save()``.

``diffmst.optimize`` = song -> baseline -> refine -> finish.
"""
