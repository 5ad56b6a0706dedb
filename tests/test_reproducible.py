"""`diffmst data generate --seed` gives the same bytes in every Python process: nothing may
depend on string hashing (set iteration order, ``hash()``), which PYTHONHASHSEED varies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from diffmst.data.generate import source_available


def _generate(out: Path, hashseed: str, sources: str, seconds: tuple[str, str], stems: tuple[str, str]) -> None:
    env = {**os.environ, "PYTHONHASHSEED": hashseed}
    cmd = [sys.executable, "-m", "diffmst.cli", "data", "generate", "-n", "2", "-o", str(out), "--seed", "11",
           "--seconds", *seconds, "--stems", *stems, "--sources", sources, "--renderer", "numpy", "-j", "1", "-q"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def _files(root: Path) -> dict[str, bytes]:
    out = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        data = p.read_bytes()
        if p.name == "meta.json":  # wall and CPU seconds vary between runs by design
            meta = json.loads(data)
            meta["generator"].pop("wall_s"), meta["generator"].pop("cpu_s")
            data = json.dumps(meta, indent=1).encode()
        out[str(p.relative_to(root))] = data
    return out


def _check(tmp_path: Path, sources: str, seconds=("8", "9"), stems=("4", "6")) -> None:
    runs = {}
    for hashseed in ("0", "1", "2"):
        out = tmp_path / f"h{hashseed}"
        _generate(out, hashseed, sources, seconds, stems)
        runs[hashseed] = _files(out)
    first = runs["0"]
    assert any(k.endswith(".flac") for k in first)
    for hashseed, files in runs.items():
        assert files.keys() == first.keys(), f"PYTHONHASHSEED={hashseed}: other stems"
        for name, data in files.items():
            assert data == first[name], f"PYTHONHASHSEED={hashseed}: {name} differs"


def test_same_seed_same_bytes_in_any_process(tmp_path):
    _check(tmp_path, "procedural")


@pytest.mark.slow
@pytest.mark.skipif(source_available("mma") is not None or source_available("music21") is not None,
                    reason="mma or music21 not installed")
def test_same_seed_same_bytes_in_any_process_all_sources(tmp_path):
    _check(tmp_path, "mma,music21", seconds=("6", "7"), stems=("2", "16"))
