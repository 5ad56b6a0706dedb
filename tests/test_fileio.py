"""Atomic writers: outputs get the permissions the umask gives any new file (not mkstemp's
private 0600), and a failed write leaves neither a partial output nor a temp file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from diffmst.audio import write_audio
from diffmst.fileio import atomic_path, atomic_write_text


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _png(path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from diffmst.report import _save

    fig = plt.figure(figsize=(1, 1))
    try:
        _save(fig, path)
    finally:
        plt.close(fig)


def _json(path: Path) -> None:
    from diffmst.data.generate import _write_json

    _write_json(path, {"a": 1})


def _weights(path: Path) -> None:
    from diffmst.model import DiffMST, ModelConfig
    from diffmst.model.weights import save_weights

    save_weights(DiffMST(ModelConfig(channels=(4,), dim=8, layers=1, heads=1, ff=8)), path.with_suffix(".safetensors"))


WRITERS = {
    "text": lambda p: atomic_write_text(p, "x\n"),
    "weights": _weights,
    "audio": lambda p: write_audio(p.with_suffix(".flac"), np.zeros((2, 100), np.float32), 44100),
    "report_png": _png,
    "json": _json,
}


def _written(tmp_path: Path) -> Path:
    files = [p for p in tmp_path.iterdir()]
    assert len(files) == 1, files  # the output only: no temp file left
    return files[0]


@pytest.mark.parametrize("writer", sorted(WRITERS))
@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)],
                         ids=["umask022", "umask077", "umask002"])
def test_new_files_get_the_umask_mode(tmp_path, umask, writer, mask, mode):
    umask(mask)
    WRITERS[writer](tmp_path / "out.txt")
    assert stat.S_IMODE(_written(tmp_path).stat().st_mode) == mode


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600)], ids=["umask022", "umask077"])
def test_stats_plot_gets_the_umask_mode(tmp_path, umask, mask, mode):
    import soundfile as sf

    from diffmst.cli import main

    corpus = tmp_path / "c"
    (corpus / "a").mkdir(parents=True)
    sf.write(corpus / "a" / "bass.wav", 0.3 * np.sin(np.arange(44100) * 0.01), 44100)
    umask(mask)
    plot = tmp_path / "s.png"
    assert main(["data", "stats", str(corpus), "--plot", str(plot), "-j", "1"]) == 0
    assert stat.S_IMODE(plot.stat().st_mode) == mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "s.png"]


def test_overwrite_replaces_with_umask_mode(tmp_path, umask):
    p = tmp_path / "a.txt"
    p.write_text("old")
    p.chmod(0o600)
    atomic_write_text(p, "new")
    assert p.read_text() == "new" and stat.S_IMODE(p.stat().st_mode) == 0o644


class Boom(Exception):
    pass


def test_failed_writes_leave_nothing(tmp_path):
    p = tmp_path / "a.txt"
    with pytest.raises(Boom):
        with atomic_path(p) as tmp:
            tmp.write_text("partial")
            raise Boom
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(TypeError):
        atomic_write_text(p, 3)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
    # an existing output survives a failed replacement
    p.write_text("old")
    with pytest.raises(Boom):
        with atomic_path(p) as tmp:
            tmp.write_text("new")
            raise Boom
    assert p.read_text() == "old" and list(tmp_path.iterdir()) == [p]
    # soundfile failing half-way (an impossible sample rate) leaves no temp file either
    with pytest.raises(Exception):
        write_audio(tmp_path / "x.flac", np.zeros((1, 10), np.float32), 0)
    assert list(tmp_path.iterdir()) == [p]


def test_atomic_path_gives_a_fresh_hidden_name_next_to_the_target(tmp_path):
    with atomic_path(tmp_path / "mix.wav", suffix=".wav") as a, atomic_path(tmp_path / "mix.wav", suffix=".wav") as b:
        assert a != b and a.parent == tmp_path and a.name.startswith(".mix.wav.") and a.suffix == ".wav"
        assert a.exists() and a.stat().st_size == 0
