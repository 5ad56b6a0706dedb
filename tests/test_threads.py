"""diffmst.threads: ``import diffmst`` makes OpenMP threads wait passively unless the user
chose otherwise. Each case runs in a fresh interpreter: the runtimes read the environment
once, when they load."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from diffmst import threads

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")

REPORT_ENV = "import json, os; print(json.dumps({k: os.environ.get(k) for k in ('OMP_WAIT_POLICY', 'KMP_BLOCKTIME', 'GOMP_SPINCOUNT')}))"

# load both OpenMP runtimes: torch's (bundled libgomp) and numba's (its threading layer,
# on the first parallel kernel); OMP_DISPLAY_ENV makes each print its settings on load
RUNTIMES = """
import numpy as np, numba, torch
torch.ones(4).sum()
@numba.njit(parallel=True)
def total(a):
    s = 0.0
    for i in numba.prange(a.size):
        s += a[i]
    return s
assert total(np.ones(1000)) == 1000.0
"""


def run(code: str, **env_set) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in threads.WAIT_VARS + (threads.SWITCH,)}
    env["PYTHONPATH"] = SRC + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(env_set)
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                       check=False)
    assert p.returncode == 0, p.stderr
    return p


def env_after(code: str, **env_set) -> dict:
    return json.loads(run(code + "\n" + REPORT_ENV, **env_set).stdout.strip().splitlines()[-1])


def spin_counts(first: str, **env_set) -> list[str]:
    """GOMP_SPINCOUNT of every GNU OpenMP runtime that loaded (0: threads sleep at once)."""
    p = run(first + "\n" + RUNTIMES, OMP_DISPLAY_ENV="VERBOSE", **env_set)
    return re.findall(r"GOMP_SPINCOUNT = '(\d+)'", p.stderr)


def test_import_sets_passive_wait():
    assert env_after("import diffmst") == {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0", "GOMP_SPINCOUNT": None}


@pytest.mark.parametrize("name,value", [("OMP_WAIT_POLICY", "ACTIVE"), ("GOMP_SPINCOUNT", "1000"),
                                        ("KMP_BLOCKTIME", "200")])
def test_user_setting_wins(name, value):
    got = env_after("import diffmst", **{name: value})
    assert got[name] == value
    assert all(v is None for k, v in got.items() if k != name)  # nothing of ours added either


def test_switch_off_leaves_environment_alone():
    got = env_after("import diffmst", DIFFMST_OMP_DEFAULTS="0")
    assert got == {"OMP_WAIT_POLICY": None, "KMP_BLOCKTIME": None, "GOMP_SPINCOUNT": None}


def test_applied_record():
    code = "import json, diffmst.threads as t, diffmst; print(json.dumps(t.applied))"
    got = json.loads(run(code).stdout.strip())
    assert got == {"set": {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}, "kept": {}, "late": []}
    code = "import torch, json, diffmst.threads as t, diffmst; print(json.dumps(t.applied))"
    got = json.loads(run(code, OMP_WAIT_POLICY="active").stdout.strip())
    assert got == {"set": {}, "kept": {"OMP_WAIT_POLICY": "active"}, "late": ["torch"]}


def test_configure_on_a_mapping():
    env = {"PATH": "/bin"}
    done = threads.configure(env)
    assert env == {"PATH": "/bin", "OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}
    assert done["set"] == threads.DEFAULTS and done["kept"] == {}
    env = {"OMP_WAIT_POLICY": ""}  # set but empty counts as unset
    threads.configure(env)
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"


def test_runtimes_really_wait_passively():
    """The OpenMP runtimes themselves (not just os.environ) end up with passive waiting:
    torch's and numba's, when diffmst is imported first; without our setting they spin."""
    counts = spin_counts("import diffmst")
    if not counts:
        pytest.skip("no GNU OpenMP runtime here (torch/numba built with another threading layer)")
    assert counts == ["0"] * len(counts)  # here two: torch's bundled libgomp and numba's
    assert all(c != "0" for c in spin_counts("import diffmst", DIFFMST_OMP_DEFAULTS="0"))
    assert all(c != "0" for c in spin_counts("import diffmst", OMP_WAIT_POLICY="ACTIVE"))
    # torch imported before diffmst: torch's runtime has already read the environment,
    # numba's loads later and still gets it
    late = spin_counts("import torch, diffmst")
    if len(late) == 2:  # both runtimes are GNU OpenMP, torch's prints first
        assert late[0] != "0" and late[1] == "0"
