"""OpenMP settings for torch's and numba's thread pools, applied when ``diffmst`` is imported.

Why: the console's work is thousands of short parallel regions per optimisation step,
alternating between torch (its own bundled libgomp) and numba's ``parallel=True`` kernels
(the system libgomp): two OpenMP runtimes, each with a pool as wide as the machine. By
default a GNU OpenMP thread that finishes its share spins for a while before it sleeps.
On an idle machine that costs little; beside another CPU-bound job it is ruinous: the
spinning threads take the cores from the thread they wait for (and from the other job),
and every region ends a scheduler time slice late. Beside one busy process on 2 cores
``diffmst optimize`` on the demo took 6x (10-15x on a laptop) its idle time; with passive
waiting 1.7x (``benchmarks/contention.py``, docs/benchmarks.md "Under a busy machine").

The runtimes read these variables once, when they are loaded, so :func:`configure` runs
from ``diffmst/__init__.py`` before torch or numba is imported. A value the user set in
the environment always wins, and ``DIFFMST_OMP_DEFAULTS=0`` leaves the environment alone.
Set in ``os.environ``, the values also reach child processes (data-loader workers, tools).
"""

from __future__ import annotations

import os
import sys

#: set to "0" to keep the OpenMP runtimes' own defaults (for benchmarks and comparisons)
SWITCH = "DIFFMST_OMP_DEFAULTS"

#: variables that choose how OpenMP threads wait; if the user set any of them, we set none
WAIT_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")

#: what we set: sleep at once instead of spinning (GNU and LLVM OpenMP read OMP_WAIT_POLICY;
#: Intel's libiomp, which some MKL/torch builds use, reads KMP_BLOCKTIME, in ms)
DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}

#: what :func:`configure` did: {"set": {...}, "kept": {...}, "late": [...]}
applied: dict = {}


def configure(environ=None) -> dict:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` and ``KMP_BLOCKTIME=0`` in ``environ`` (default
    ``os.environ``) unless the user chose how OpenMP threads wait; returns what was set
    and what was kept. (Pool sizes need nothing: torch and numba both size theirs by the
    process's CPU affinity; passive waiting keeps the two pools from fighting over the cores.)

    Call it before torch is imported: its OpenMP runtime reads the environment when
    torch loads, and ``applied["late"]`` says if it was already loaded (numba's runtime
    loads later, at its first parallel kernel).
    """
    env = os.environ if environ is None else environ
    done: dict = {"set": {}, "kept": {}, "late": []}
    if env.get(SWITCH, "1").strip() == "0":
        done["kept"] = {k: env[k] for k in WAIT_VARS if k in env}
    else:
        user = {k: env[k] for k in WAIT_VARS if env.get(k, "") != ""}
        if user:
            done["kept"].update(user)
        else:
            for k, v in DEFAULTS.items():
                env[k] = v
                done["set"][k] = v
    done["late"] = [m for m in ("torch",) if m in sys.modules]
    if environ is None:
        applied.clear()
        applied.update(done)
    return done
