"""The allocator setting: takes effect on glibc, nests, can be switched off, keeps results."""

import ctypes.util
import os
import platform
import subprocess
import sys

import pytest

from diffmst.allocator import reuse_freed_memory

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc" and ctypes.util.find_library("c")


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_takes_effect_and_nests():
    with reuse_freed_memory() as outer:
        with reuse_freed_memory() as inner:
            assert outer and inner


def test_switched_off_by_environment():
    code = "from diffmst.allocator import reuse_freed_memory\nwith reuse_freed_memory() as on: print(on)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "DIFFMST_MALLOC": "default"})
    assert out.stdout.strip() == "False"


WORKLOAD = """
import resource, sys
import numpy as np
from diffmst.allocator import reuse_freed_memory

def rounds():  # a step's churn: a few buffers of 12-20 MB, filled, then freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        bufs = [np.empty(n << 20, dtype=np.float32) for n in (4, 3, 5)]
        for b in bufs:
            b.fill(1.0)
        assert sum(float(b[::4096].sum()) for b in bufs) == 3072.0
        del bufs, b
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

with reuse_freed_memory() as on:
    print(int(on), rounds())
"""


def _faults(setting: str) -> tuple[int, int]:
    env = {**os.environ, "DIFFMST_MALLOC": setting}
    out = subprocess.run([sys.executable, "-c", WORKLOAD], capture_output=True, text=True, check=True, env=env)
    on, faults = out.stdout.split()
    return int(on), int(faults)


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_freed_large_blocks_are_reused_not_faulted_in_again():
    """Page faults (minor: fresh zeroed pages) of ten rounds of allocating, filling and
    freeing 48 MB in three buffers, each in a fresh process: with glibc's defaults the freed
    blocks go back to the system and every round faults its pages in again; with the
    setting only the first round does."""
    on, reused = _faults("")
    off, default = _faults("default")
    assert (on, off) == (1, 0)
    assert default > 5 * 1000  # every round faults (>= 1000 even with 2 MB huge pages)
    assert reused < default / 3
